"""The lab's kit with debuginfod: only the kernel image package is downloaded; the debug vmlinux
and the guest modules' debug files come by build-id from a debuginfod server (elfutils' own, on the
loopback, serving the debug files of the kit the other lab tests fetched), and the lab runs on them."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from notmyfault.dumps.buildid import file_build_id
from notmyfault.lab.kit import kernel_build_id
from tests.conftest import run_nmf
from tests.coretools import debuginfod_server

pytestmark = [
    pytest.mark.skipif(shutil.which("debuginfod") is None, reason="needs elfutils' debuginfod"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="the lab needs QEMU"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    r = run_nmf("lab", "fetch", "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    kit = json.loads(r.stdout)
    root = tmp_path_factory.mktemp("kit-debuginfod")
    srv = root / "srv"
    srv.mkdir()
    for f in [Path(kit["vmlinux"]), *sorted((Path(kit["root"]) / "debug").glob("*.ko"))]:
        try:
            os.link(f, srv / f.name)
        except OSError:
            shutil.copy(f, srv / f.name)
    build_id = kernel_build_id(Path(kit["vmlinuz"]))
    assert build_id == file_build_id(kit["vmlinux"])
    with debuginfod_server(srv, root / "db.sqlite", build_id, 180) as url:
        yield {"url": url, "release": kit["release"], "build_id": build_id, "root": str(root)}


def test_kit_debug_files_come_by_build_id_and_the_lab_runs_on_them(server: dict[str, str]) -> None:
    cache = Path(server["root"]) / "cache"
    env = {"XDG_CACHE_HOME": str(cache), "DEBUGINFOD_URLS": server["url"]}
    r = run_nmf("lab", "fetch", "--kernel", server["release"], "--json", env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    kit = json.loads(r.stdout)
    assert f"lab: downloading linux-image-{server['release']} (" in r.stderr
    assert "-dbg" not in r.stderr  # the 800 MB debug package was not needed
    assert f"/buildid/{server['build_id']}/debuginfo" in r.stderr
    assert file_build_id(kit["vmlinux"]) == server["build_id"]
    out = Path(server["root"]) / "run"
    r = run_nmf(
        "lab", "run", "--kernel", server["release"], "--out", str(out), "--memory", "256", "--json",
        "--", "crash", "null-deref", env=env, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    run = json.loads(r.stdout)
    assert run["analysis"]["crash_class"] == "null-deref"
    assert run["analysis"]["blamed"]["function"] == "myfault_null_deref"
