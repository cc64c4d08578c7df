"""Cores that the kernel did not write: qemu-user's, which carry neither NT_FILE nor NT_SIGINFO.

The same NULL write, built for x86_64 (run under qemu-x86_64) and for aarch64 (dynamic and static,
under qemu-aarch64), crashed, and read back: the modules are found in the process's memory (the
auxiliary vector and the link map), each with the build-id of its file as pyelftools reads it; the
stack names store and main; the class comes from the faulting instruction and the registers (no
signal information says the address); gdb's frames agree on x86_64.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.conftest import run_json
from tests.coretools import gdb_frames

SOURCE = """#include <stdio.h>
__attribute__((noinline)) void store(int *p) { *p = 10; }
int main(int argc, char **argv) { int *p = argc > 5 ? (int *)argv : 0; store(p); printf("%d\\n", *p); return 0; }
"""
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
BUILDS = {
    # name: (compiler and flags, emulator and its arguments)
    "x86_64": (["gcc", "-g", "-O1"], ["qemu-x86_64"]),
    "aarch64": (["aarch64-linux-gnu-gcc", "-g", "-O1"], ["qemu-aarch64", "-L", AARCH64_SYSROOT]),
    "aarch64-static": (["aarch64-linux-gnu-gcc", "-g", "-O1", "-static"], ["qemu-aarch64"]),
}
pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-gcc")),
    reason="needs qemu-user and the aarch64 cross compiler (./dev test installs them)",
)


def _unlimited() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


@pytest.fixture(scope="module")
def cores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """{build: (executable, qemu's core)}."""
    root = tmp_path_factory.mktemp("qemu-cores")
    (root / "nw.c").write_text(SOURCE)
    out = {}
    for name, (cc, emulator) in BUILDS.items():
        run = root / name
        run.mkdir()
        exe = run / "nw"
        subprocess.run([*cc, str(root / "nw.c"), "-o", str(exe)], check=True)
        r = subprocess.run(
            [*emulator, "./nw"], cwd=run, preexec_fn=_unlimited, capture_output=True, check=False
        )
        assert r.returncode != 0
        found = sorted(run.glob("qemu_nw_*.core"))
        assert found, f"qemu wrote no core for {name}: {r.stderr!r}"
        out[name] = (exe, found[0])
    return out


def _build_id(path: str | Path) -> str:
    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec.name == ".note.gnu.build-id":
                for note in sec.iter_notes():  # type: ignore[attr-defined]
                    return str(note["n_desc"])
    raise AssertionError(f"{path} has no build-id")


@pytest.mark.parametrize("build", list(BUILDS))
def test_qemu_core_has_neither_file_nor_siginfo_note(build: str, cores: dict[str, tuple[Path, Path]]) -> None:
    _exe, core = cores[build]
    notes = subprocess.run(["eu-readelf", "-n", str(core)], capture_output=True, text=True, check=True).stdout
    assert "PRSTATUS" in notes
    assert "AUXV" in notes
    assert " FILE" not in notes
    assert "SIGINFO" not in notes


@pytest.mark.parametrize("build", list(BUILDS))
def test_qemu_core_analysed_from_memory(build: str, cores: dict[str, tuple[Path, Path]]) -> None:
    exe, core = cores[build]
    sysroot = ["--sysroot", AARCH64_SYSROOT] if build == "aarch64" else []
    r, a = run_json("analyze", str(core), *sysroot)
    assert r.returncode == 0, r.stderr
    assert a["crash_class"] == "NULL_POINTER_WRITE"
    assert a["signal"]["name"] == "SIGSEGV"
    assert a["signal"]["address"] == "0x0"  # computed: the instruction's base register is 0
    assert a["access"] == "write"
    assert [f["function"] for f in a["frames"][:2]] == ["store", "main"]
    assert a["blamed"]["function"] == "store"
    assert a["bucket"] == "FAULT:nw:store"
    assert a["process"]["executable"] == "./nw"
    assert any("computed from the faulting instruction" in n for n in a["notes"])
    _, mods = run_json("modules", str(core), *sysroot)
    by_name = {m["name"]: m for m in mods["modules"]}
    assert by_name["nw"]["build_id"] == _build_id(exe)
    if build == "x86_64":  # the same libc as this machine's: its build-id read from the link map's image
        libc = by_name["libc"]
        assert libc["path"] == "/lib/x86_64-linux-gnu/libc.so.6"
        assert libc["build_id"] == _build_id("/lib/x86_64-linux-gnu/libc.so.6")
        assert "ld-linux-x86-64" in by_name
    if build == "aarch64":  # libc's headers are not in this core: read from the file under the sysroot
        assert by_name["libc"]["build_id"] == _build_id(f"{AARCH64_SYSROOT}/lib/libc.so.6")


def test_qemu_core_frames_equal_gdbs(cores: dict[str, tuple[Path, Path]]) -> None:
    exe, core = cores["x86_64"]
    _, a = run_json("stack", str(core))
    ours = [(f["function"], int(f["pc"], 16)) for f in a["threads"][0]["frames"][:2]]
    theirs = [(f["name"], f["pc"]) for f in gdb_frames(core, str(exe))[:2]]
    assert ours == theirs


def test_qemu_core_modules_equal_eu_unstrips(cores: dict[str, tuple[Path, Path]]) -> None:
    """eu-unstrip reads the same link map and headers: every module it lists, at the same address
    with the same build-id.  (Of the aarch64 cores it recognises no module: qemu dumps no read-only
    executable mapping there, so the headers are read from the files.)"""
    _exe, core = cores["x86_64"]
    out = subprocess.run(
        ["eu-unstrip", "-n", f"--core={core}"], capture_output=True, text=True, check=False
    ).stdout
    theirs = {int(a, 16): b for a, b in re.findall(r"^0x([0-9a-f]+)\+0x[0-9a-f]+ ([0-9a-f]+)@", out, re.M)}
    assert theirs
    _, mods = run_json("modules", str(core))
    ours = {int(m["start"], 16): m["build_id"] for m in mods["modules"]}
    assert {start: ours.get(start) for start in theirs} == theirs
