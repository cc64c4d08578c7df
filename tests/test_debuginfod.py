"""Symbols on demand: a core whose executable is gone, a debuginfod server on the loopback (elfutils'
own, serving the build's directory), and --debuginfod / --no-debuginfod, with what was fetched said
on stderr and kept in the cache by build-id."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_json
from tests.coretools import build_id, debuginfod_server, null_write_core, unlimited_cores

pytestmark = [
    pytest.mark.skipif(
        shutil.which("debuginfod") is None, reason="needs elfutils' debuginfod (./dev test installs it)"
    ),
    pytest.mark.skipif(
        Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
        reason="needs the plain 'core' pattern",
    ),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("debuginfod")
    srv, run = root / "srv", root / "run"
    srv.mkdir()
    run.mkdir()
    core = null_write_core(run)
    shutil.move(run / "nw", srv / "nw")  # the core's executable is gone, as where only the core was kept
    nw_id = build_id(srv / "nw")  # elfutils' word, not ours
    with debuginfod_server(srv, root / "db.sqlite", nw_id, 60) as url:
        yield {"url": url, "core": str(core), "root": str(root), "build_id": nw_id}


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


BIG = r"""
#include <iostream>
#include <map>
#include <string>
#include <vector>
struct Ledger {
    std::map<std::string, std::vector<long>> entries;
    void post(long *slot, const std::string &who) { entries[who].push_back(*slot); *slot = 1; }
};
int main() {
    Ledger l;
    std::cout << l.entries.size();
    l.post(nullptr, "a");
}
"""


@pytest.fixture(scope="module")
def served_big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A stripped C++ program's core, its debug file (hundreds of KB) served on the loopback."""
    root = tmp_path_factory.mktemp("debuginfod-big")
    srv, run = root / "srv", root / "run"
    srv.mkdir()
    run.mkdir()
    (run / "ledger.cpp").write_text(BIG)
    exe = run / "ledger"
    subprocess.run(["g++", "-O2", "-g", "-o", str(exe), str(run / "ledger.cpp")], check=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(srv / "ledger.debug")], check=True)
    subprocess.run(["strip", "--strip-all", str(exe)], check=True)
    r = subprocess.run([str(exe)], cwd=run, preexec_fn=unlimited_cores, capture_output=True, check=False)
    assert r.returncode == -11
    assert (run / "core").is_file()
    with debuginfod_server(srv, root / "db.sqlite", build_id(exe), 60) as url:
        yield {"url": url, "core": str(run / "core"), "srv": str(srv)}


@pytest.mark.skipif(not shutil.which("g++"), reason="no g++")
def test_a_file_another_process_is_fetching_is_awaited(served_big: dict[str, str], tmp_path: Path) -> None:
    """Two triage workers with dumps of one build ask for its debug file at once: libdebuginfod
    (0.188) fails the second request while the first writes the file under a temporary name (seen
    here: one run in three named no frame). The second waits for the file and loads it. Here the
    other process is played by a thread: a fresh temporary file, the real one 2 s later, and a
    server that cannot be reached."""
    import threading
    import time

    exe = Path(served_big["core"]).parent / "ledger"
    where = tmp_path / "cache" / "debuginfod_client" / build_id(exe)
    where.mkdir(parents=True)
    (where / "debuginfo.Xy12Zq").write_bytes(b"")
    debug = Path(served_big["srv"]) / "ledger.debug"

    def other() -> None:
        time.sleep(2)
        shutil.copy(debug, where / "debuginfo")
        (where / "debuginfo.Xy12Zq").unlink()

    t = threading.Thread(target=other, daemon=True)
    t.start()
    env = {"DEBUGINFOD_URLS": "http://127.0.0.1:1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r, s = run_json("stack", served_big["core"], env={**env, "NOTMYFAULT_DEBUGINFOD": "1"})
    t.join()
    names = [f["function"] or "" for f in s["threads"][0]["frames"]]
    assert any(n.startswith("Ledger::post") for n in names), (names, r.stderr)
    # a failed fetch (libdebuginfod's empty marker) and no file being written: no wait
    (where / "debuginfo").write_bytes(b"")
    start = time.monotonic()
    r, s = run_json("stack", served_big["core"], env={**env, "NOTMYFAULT_DEBUGINFOD": "1"})
    assert r.returncode == 0
    assert time.monotonic() - start < 20
