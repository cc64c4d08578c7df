"""Inlined frames' names: which modules' DWARF is read again for qualified names (unwind.inlines).

drgn names an inlined C++ function by its bare DWARF name, so a stack with inlined frames was re-read
from DWARF with pyelftools. For C, whose functions have no namespaces, that read bought nothing and
cost 0.25 s (glibc's aranges) of an analysis: it is now skipped for a C program's modules whose
symbols are all C's, and still made for C++ (even one whose every function was inlined into main, so
that it has no mangled symbol at all).
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
from pathlib import Path

import pytest

import notmyfault
from notmyfault.unwind import inlines
from notmyfault.unwind.inlines import names_namespaces
from tests.coretools import unlimited_cores

plain_cores = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)

CPP = """\
namespace ns {
__attribute__((always_inline)) inline int deref(volatile int *p) { return *p; }
}
int main(int argc, char **) { return ns::deref((volatile int *)(long)(argc - 1)); }
"""
C = """\
__attribute__((always_inline)) static inline int deref(volatile int *p) { return *p; }
int main(int argc, char **argv) { (void)argv; return deref((volatile int *)(long)(argc - 1)); }
"""


def libc() -> str:
    name = ctypes.util.find_library("c")
    assert name
    path = next(
        p for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64")
        if os.path.exists(p := os.path.join(d, name))
    )  # fmt: skip
    return path


def crash(tmp_path: Path, source: str, compiler: str, suffix: str) -> tuple[Path, Path]:
    (tmp_path / f"a.{suffix}").write_text(source)
    exe = tmp_path / "a"
    subprocess.run([compiler, "-O2", "-g", "-o", str(exe), str(tmp_path / f"a.{suffix}")], check=True)
    r = subprocess.run([str(exe)], cwd=tmp_path, preexec_fn=unlimited_cores, timeout=60, check=False)
    assert r.returncode == -11
    return exe, tmp_path / "core"


def test_which_files_name_namespaces(tmp_path: Path) -> None:
    assert names_namespaces(libc()) is False
    stdcxx = Path("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
    if stdcxx.exists():
        assert names_namespaces(str(stdcxx)) is True
    # what it cannot tell, it does not rule out
    (tmp_path / "text").write_text("not ELF")
    assert names_namespaces(str(tmp_path / "text")) is True
    assert names_namespaces(str(tmp_path / "absent")) is True
    headless = bytearray(Path(libc()).read_bytes()[:4096])
    headless[40:48] = bytes(8)  # e_shoff: no section headers, so no symbol table to look at
    (tmp_path / "headless").write_bytes(bytes(headless))
    assert names_namespaces(str(tmp_path / "headless")) is True


@pytest.mark.crash
@plain_cores
def test_a_cpp_program_without_mangled_symbols_keeps_qualified_inline_names(tmp_path: Path) -> None:
    exe, core = crash(tmp_path, CPP, "g++", "cc")
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    assert " _Z" not in symbols  # the case the symbols alone would get wrong
    assert names_namespaces(str(exe)) is False
    with notmyfault.open(core) as dump:
        frames = dump.stacks().threads[0].frames
    assert frames[0].how == "inline"
    assert frames[0].function.startswith("ns::deref")
    assert frames[1].function == "main"


@pytest.mark.crash
@plain_cores
def test_a_c_program_s_inlined_frames_are_not_read_again(tmp_path: Path) -> None:
    _, core = crash(tmp_path, C, "gcc", "c")
    inlines.chains.cache_clear()
    with notmyfault.open(core) as dump:
        frames = dump.stacks().threads[0].frames
    assert [(f.function, f.how) for f in frames[:2]] == [("deref", "inline"), ("main", "context")]
    assert inlines.chains.cache_info().misses == 0  # no DWARF was parsed with pyelftools
