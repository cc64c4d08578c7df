"""Differential tests against gdb on cores of programs nobody here wrote.

Debian's own /usr/bin/sleep killed by SIGSEGV from another process, and the
Python interpreter crashing in ctypes (strlen on NULL): our stack must have
gdb's physical frames, and the analysis must say who did it.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_json
from tests.coretools import gdb_frames

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)


def _unlimited() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _only_core(d: Path) -> Path:
    cores = [p for p in d.iterdir() if p.name.startswith("core")]
    assert len(cores) == 1, cores
    return cores[0]


def _physical(pcs: list[int]) -> list[int]:
    return [pc for i, pc in enumerate(pcs) if i == 0 or pc != pcs[i - 1]]


def _compare_with_gdb(core: Path, exe: str, n: int = 4) -> dict:
    r, stacks = run_json("stack", str(core))
    assert r.returncode == 0
    ours = stacks["threads"][0]["frames"]
    theirs = [f for f in gdb_frames(core, exe) if f["kind"] != "tailcall"]
    ours_pcs, theirs_pcs = _physical([int(f["pc"], 16) for f in ours]), _physical([f["pc"] for f in theirs])
    k = min(n, len(theirs_pcs))
    assert ours_pcs[:k] == theirs_pcs[:k]
    assert _unalias(ours[0]["function"]) == _unalias(theirs[0]["name"])
    return stacks


def _unalias(name: str | None) -> str:
    """glibc gives one function several names (__GI___clock_nanosleep, __clock_nanosleep,
    clock_nanosleep); tools pick different ones, so compare the bare name."""
    name = name or ""
    return name.removeprefix("__GI_").lstrip("_")


@pytest.mark.skipif(shutil.which("sleep") is None, reason="no sleep binary")
def test_debian_sleep_killed_by_sigsegv(tmp_path: Path) -> None:
    exe = os.path.realpath(shutil.which("sleep") or "")
    p = subprocess.Popen([exe, "60"], cwd=tmp_path, preexec_fn=_unlimited)
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGSEGV)
    p.wait()
    core = _only_core(tmp_path)
    _compare_with_gdb(core, exe, n=2)
    _, a = run_json("analyze", str(core))
    assert a["crash_class"] == "KILLED_BY_SIGNAL"  # sent by a process, not a fault
    assert a["signal"]["code_name"] == "SI_USER"
    assert a["signal"]["sender_pid"] == os.getpid()


def test_python_crashing_in_ctypes(tmp_path: Path) -> None:
    exe = os.path.realpath(sys.executable)
    subprocess.run(
        [exe, "-c", "import ctypes; ctypes.string_at(0)"],
        cwd=tmp_path,
        preexec_fn=_unlimited,
        check=False,
        capture_output=True,
    )
    core = _only_core(tmp_path)
    stacks = _compare_with_gdb(core, exe, n=4)
    assert (
        stacks["threads"][0]["frames"][0]["function"].endswith("strlen_avx2")
        or "strlen" in stacks["threads"][0]["frames"][0]["function"]
    )
    _, a = run_json("analyze", str(core))
    assert a["crash_class"] == "NULL_POINTER_READ"
    # every native frame is libc's, ctypes' or the interpreter's: the Python frame that made the call
    assert a["blamed_python"] == {"function": "<module>", "file": "<string>", "line": 1, "library": False}
    assert a["python_callee"] == "ctypes.string_at"
    assert a["probably_caused_by"] == "ctypes.string_at called from <string>:1 <module>"
    # one frame of the runtime (ctypes' own string_at, which called strlen), then the program's
    assert a["bucket"] == "FAULT:python3:strlen | ctypes.string_at | <module>"


def test_exe_and_sysroot_find_a_moved_program(tmp_path: Path) -> None:
    """A program moved after its crash: --exe or --sysroot brings its symbols back."""
    src = tmp_path / "victim.c"
    src.write_text(
        "#include <stddef.h>\n"
        "__attribute__((noinline)) void victim_crash_here(volatile int *p) { *p = 42; }\n"
        "int main(void) { victim_crash_here(NULL); return 0; }\n"
    )
    build = tmp_path / "build"
    build.mkdir()
    exe = build / "victim"
    subprocess.run(["gcc", "-g", "-O1", "-o", str(exe), str(src)], check=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    subprocess.run([str(exe)], cwd=run_dir, preexec_fn=_unlimited, check=False)
    core = _only_core(run_dir)
    sysroot = tmp_path / "sysroot"
    moved = sysroot / str(exe).lstrip("/")
    moved.parent.mkdir(parents=True)
    exe.rename(moved)
    _, bare = run_json("analyze", str(core))
    assert bare["frames"][0]["function"] is None  # the file is gone: no symbols
    assert bare["frames"][0]["location"].startswith("victim+0x")
    _, with_sysroot = run_json("analyze", str(core), "--sysroot", str(sysroot))
    assert with_sysroot["frames"][0]["function"] == "victim_crash_here"
    assert with_sysroot["bucket"] == "FAULT:victim:victim_crash_here"
    _, with_exe = run_json("analyze", str(core), "--exe", str(moved))
    assert with_exe["frames"][0]["function"] == "victim_crash_here"
