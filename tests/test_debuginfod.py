"""Symbols on demand: a core whose executable is gone, a debuginfod server on the loopback (elfutils'
own, serving the build's directory), and --debuginfod / --no-debuginfod, with what was fetched said
on stderr and kept in the cache by build-id."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_json
from tests.coretools import NULL_WRITE_SOURCE, unlimited_cores

pytestmark = [
    pytest.mark.skipif(
        shutil.which("debuginfod") is None, reason="needs elfutils' debuginfod (./dev test installs it)"
    ),
    pytest.mark.skipif(
        Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
        reason="needs the plain 'core' pattern",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("debuginfod")
    srv, run = root / "srv", root / "run"
    srv.mkdir()
    run.mkdir()
    (root / "nw.c").write_text(NULL_WRITE_SOURCE)
    subprocess.run(["gcc", "-g", "-O1", str(root / "nw.c"), "-o", str(srv / "nw")], check=True)
    shutil.copy(srv / "nw", run / "nw")
    r = subprocess.run(
        [str(run / "nw")], cwd=run, preexec_fn=unlimited_cores, capture_output=True, check=False
    )
    assert r.returncode == -11
    (run / "nw").unlink()  # the core's executable is gone, as on a machine that only kept the core
    build_id = (
        subprocess.run(["eu-readelf", "-n", str(srv / "nw")], capture_output=True, text=True, check=True)
        .stdout.split("Build ID:")[1]
        .split()[0]
    )
    port = _free_port()
    server = subprocess.Popen(
        ["debuginfod", "-F", str(srv), "-p", str(port), "-d", str(root / "db.sqlite")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # until it has scanned the directory
            try:
                with urllib.request.urlopen(f"{url}/buildid/{build_id}/debuginfo", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "debuginfod did not serve the build within 60 s"
            time.sleep(0.5)
        yield {"url": url, "core": str(run / "core"), "root": str(root), "build_id": build_id}
    finally:
        server.terminate()
        server.wait(10)


def test_debuginfod_names_the_frames_and_says_so(served: dict[str, str], tmp_path: Path) -> None:
    env = {"DEBUGINFOD_URLS": served["url"], "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r, s = run_json("stack", served["core"], env=env)
    assert r.returncode == 0, r.stderr
    assert [f["function"] for f in s["threads"][0]["frames"][:2]] == ["store", "main"]
    assert f"debuginfod: asking {served['url']}" in r.stderr
    kept = tmp_path / "cache" / "debuginfod_client" / served["build_id"] / "debuginfo"
    assert kept.is_file()
    assert str(kept) in r.stderr
    r, off = run_json("stack", "--no-debuginfod", served["core"], env=env)
    assert off["threads"][0]["frames"][0]["function"] is None
    assert off["threads"][0]["frames"][0]["location"].startswith("nw+0x")
    assert "debuginfod" not in r.stderr


def test_triage_fetches_only_when_asked(served: dict[str, str], tmp_path: Path) -> None:
    env = {"DEBUGINFOD_URLS": served["url"], "XDG_CACHE_HOME": str(tmp_path / "cache")}
    core = served["core"]
    _, plain = run_json("triage", "ingest", core, "--db", str(tmp_path / "a.db"), env=env)
    assert plain["failed"] == 0
    _, b = run_json("triage", "buckets", "--db", str(tmp_path / "a.db"), env=env)
    assert "store" not in b["buckets"][0]["bucket"]  # no debug info: module+offset
    assert not (tmp_path / "cache" / "debuginfod_client").exists()
    _, asked = run_json("triage", "ingest", core, "--db", str(tmp_path / "b.db"), "--debuginfod", env=env)
    assert asked["failed"] == 0
    _, b = run_json("triage", "buckets", "--db", str(tmp_path / "b.db"), env=env)
    assert "store" in b["buckets"][0]["bucket"]
