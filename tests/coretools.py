"""Test helpers: read facts from real core files with pyelftools and gdb.

These are deliberately independent of notmyfault's own code (the analyzer
does not exist yet, and when it does the tests must not grade it by itself).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

HERE = Path(__file__).parent
SYSTEM_LIBS = ("libc.so", "libc-", "ld-linux", "libpthread", "libgcc_s", "libstdc++", "linux-vdso")


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    flags: int  # p_flags: 1 X, 2 W, 4 R
    path: str | None  # from NT_FILE, None for anonymous memory


@dataclass(frozen=True)
class Core:
    path: str
    machine: str
    signo: int
    si_code: int
    si_addr: int
    sighold: int
    pc: int
    sp: int
    mappings: tuple[Mapping, ...]

    def mapping_at(self, addr: int) -> Mapping | None:
        for m in self.mappings:
            if m.start <= addr < m.end:
                return m
        return None

    def files_at(self, addr: int) -> list[str]:
        return [m.path for m in self.mappings if m.path and m.start <= addr < m.end]

    def read(self, addr: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            elf = ELFFile(f)
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_memsz"]:
                    off = addr - seg["p_vaddr"]
                    if off + size > seg["p_filesz"]:
                        raise ValueError(f"{addr:#x}+{size} is not in the file")
                    f.seek(seg["p_offset"] + off)
                    return f.read(size)
        raise ValueError(f"{addr:#x} is not in the core")


# Offsets into struct elf_prstatus on x86_64 and aarch64 (64-bit).
PRSTATUS_SIGHOLD = 24
PRSTATUS_REGS = 112
X86_64_REGS = (
    "r15",
    "r14",
    "r13",
    "r12",
    "rbp",
    "rbx",
    "r11",
    "r10",
    "r9",
    "r8",
    "rax",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "orig_rax",
    "rip",
    "cs",
    "eflags",
    "rsp",
    "ss",
)


def read_core(path: str | os.PathLike[str]) -> Core:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        machine = elf.header["e_machine"]
        loads: list[tuple[int, int, int]] = []
        files: list[tuple[int, int, str]] = []
        prstatus = siginfo = None
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                loads.append((seg["p_vaddr"], seg["p_vaddr"] + seg["p_memsz"], seg["p_flags"]))
            elif seg["p_type"] == "PT_NOTE":
                for note in seg.iter_notes():
                    if note["n_type"] == "NT_PRSTATUS" and prstatus is None:
                        prstatus = note["n_desc"]
                    elif note["n_type"] == "NT_SIGINFO":
                        siginfo = note["n_desc"]
                    elif note["n_type"] == "NT_FILE":
                        d = note["n_desc"]
                        for entry, name in zip(d["Elf_Nt_File_Entry"], d["filename"], strict=False):
                            fname = name.decode() if isinstance(name, bytes) else name
                            files.append((entry["vm_start"], entry["vm_end"], fname))
    assert prstatus is not None, "core lacks NT_PRSTATUS"
    assert siginfo is not None, "core lacks NT_SIGINFO"
    signo, _errno, code = struct.unpack_from("<iii", siginfo, 0)
    (addr,) = struct.unpack_from("<Q", siginfo, 16)
    (sighold,) = struct.unpack_from("<Q", prstatus, PRSTATUS_SIGHOLD)
    if machine == "EM_X86_64":
        regs = dict(zip(X86_64_REGS, struct.unpack_from("<21Q", prstatus, PRSTATUS_REGS), strict=False))
        pc, sp = regs["rip"], regs["rsp"]
    elif machine == "EM_AARCH64":
        regs_a = struct.unpack_from("<34Q", prstatus, PRSTATUS_REGS)
        pc, sp = regs_a[32], regs_a[31]
    else:
        raise NotImplementedError(machine)
    maps = []
    for start, end, flags in loads:
        path_ = next((p for s, e, p in files if s <= start < e), None)
        maps.append(Mapping(start, end, flags, path_))
    for s, e, p in files:  # file mappings the dump holds no bytes of (e.g. past EOF)
        if not any(m.start <= s < m.end for m in maps):
            maps.append(Mapping(s, e, 0, p))
    return Core(str(path), machine, signo, code, addr, sighold, pc, sp, tuple(maps))


def gdb_path() -> str:
    gdb = shutil.which("gdb")
    assert gdb, "gdb is needed to check frames: install it (apt-get install gdb), as .ci/run does"
    return gdb


def _gdb_script(
    core: str | os.PathLike[str],
    script: str,
    marker: str,
    exe: str | None,
    gdb: str | None = None,
    load_offset: int | None = None,
) -> list[dict[str, object]]:
    """Run tests/SCRIPT inside gdb (or ``gdb``, such as gdb-multiarch) on ``core`` and return the JSON
    it prints after ``marker``. ``load_offset``: where a PIE executable was loaded, for a core that
    does not say (gdb relocates a PIE by NT_FILE, which qemu-user's cores lack)."""
    exe = exe or os.path.realpath(sys.executable)
    files = [exe, str(core)]
    if load_offset is not None:
        files = ["-ex", f"symbol-file -o {load_offset:#x} {exe}", "-c", str(core)]
    cmd = [gdb or gdb_path(), "-batch", "-nx", "-ex", "set pagination off", *files, "-x", str(HERE / script)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    for line in out.stdout.splitlines():
        if line.startswith(marker):
            return json.loads(line[len(marker) :])
    raise AssertionError(f"gdb printed no {marker}:\n{out.stdout}\n{out.stderr}")


def gdb_frames(core: str | os.PathLike[str], exe: str | None = None) -> list[dict[str, object]]:
    """The crashing thread's frames (name, pc, solib), innermost first (from gdb)."""
    return _gdb_script(core, "gdb_frames.py", "FRAMES=", exe)


def gdb_info_symbol(core: str | os.PathLike[str], addr: int, exe: str | None = None) -> str:
    exe = exe or os.path.realpath(sys.executable)
    out = subprocess.run(
        [gdb_path(), "-batch", "-nx", exe, str(core), "-ex", f"info symbol {addr:#x}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def is_system(frame: dict[str, object]) -> bool:
    solib = frame.get("solib") or ""
    return any(s in os.path.basename(str(solib)) for s in SYSTEM_LIBS)


def innermost_own_frame(frames: list[dict[str, object]]) -> str | None:
    """The innermost named frame outside the C library and the loader."""
    for fr in frames:
        if fr["name"] and not is_system(fr):
            return str(fr["name"])
    return None


def gdb_threads(core: str | os.PathLike[str], exe: str | None = None) -> list[dict[str, object]]:
    """Every thread of the core with its frame names, innermost first (from gdb)."""
    return _gdb_script(core, "gdb_threads.py", "THREADS=", exe)


def gdb_stacks(
    core: str | os.PathLike[str],
    exe: str | None = None,
    gdb: str | None = None,
    load_offset: int | None = None,
) -> list[dict[str, object]]:
    """Every thread's whole stack as gdb walks it: tid, frames (pc, name, kind), and why it stopped
    (``gdb``: another gdb, gdb-multiarch for a core of another architecture; ``load_offset``: see
    ``_gdb_script``)."""
    return _gdb_script(core, "gdb_stacks.py", "STACKS=", exe, gdb, load_offset)


def physical_pcs(thread: dict[str, Any]) -> list[int]:
    """The pcs of a thread of ``stack --json``, without its inline and tail-call frames (they share a
    pc with a physical one): what gdb's and eu-stack's walks list."""
    return [int(f["pc"], 16) for f in thread["frames"] if f["trust"] not in ("inline", "tail call")]


def gdb_physical_pcs(core: str | os.PathLike[str], exe: str) -> list[int]:
    """The pcs of the first thread gdb walks in ``core``, without its inline and tail-call frames."""
    frames = gdb_stacks(core, exe)[0]["frames"]
    return [int(f["pc"]) for f in frames if f["kind"] not in ("inline", "tailcall")]  # type: ignore[attr-defined]


def pool_blocks(
    core: str | os.PathLike[str], magic: bytes = b"MYFAULT1"
) -> list[tuple[str, int, int, int, int]]:
    """Scan the start of every page of every PT_LOAD for a pool header.

    Returns (tag, pool, size, seq, pid) for each header found.  Independent of
    notmyfault's own header parser on purpose.
    """
    import mmap

    found = []
    with open(core, "rb") as f:
        elf = ELFFile(f)
        segments = [
            (seg["p_offset"], seg["p_filesz"]) for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"
        ]
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            for offset, filesz in segments:
                for page in range(offset, offset + filesz - 31, 4096):
                    if mm[page : page + 8] == magic:
                        tag, pool, size, seq, pid = struct.unpack_from("<4sIQII", mm, page + 8)
                        found.append((tag.decode(), pool, size, seq, pid))
        finally:
            mm.close()
    return found


NULL_WRITE_SOURCE = """#include <stdio.h>
__attribute__((noinline)) void store(int *p) { *p = 10; }
int main(int argc, char **argv) { int *p = argc > 5 ? (int *)argv : 0; store(p); printf("%d\\n", *p); return 0; }
"""
"""A program that writes through NULL in store(), called from main()."""


def unlimited_cores() -> None:
    """preexec_fn: let the child leave a core of any size."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def crash_program(build: list[str], exe: Path, cwd: Path, signal: int = 11) -> Path:
    """Build with ``build``, run ``exe`` in ``cwd`` until it dies by ``signal``, and return its core
    (the kernel's plain 'core' pattern)."""
    subprocess.run(build, cwd=cwd, check=True, capture_output=True)
    r = subprocess.run([str(exe)], cwd=cwd, preexec_fn=unlimited_cores, capture_output=True, check=False)
    assert r.returncode == -signal, (exe, r.returncode, r.stderr)
    core = cwd / "core"
    assert core.is_file(), f"{exe} left no core in {cwd}"
    return core


FRAMES_C = Path(__file__).resolve().parent.parent / "bench" / "bugs" / "frames.c"
"""The frame matrix's crashing program (deep and runaway recursion, signal frames, wild calls...)."""


def build_frames(cc: str, exe: Path, link: str = "-static") -> Path:
    """bench/bugs/frames.c built with ``cc`` at -O2 with debug info (``link``: -static or -pie) as ``exe``."""
    subprocess.run([cc, "-O2", "-g", link, "-w", "-o", str(exe), str(FRAMES_C)], check=True)
    return exe


def null_write_core(directory: Path, flags: tuple[str, ...] = ("-g", "-O1")) -> Path:
    """The core of NULL_WRITE_SOURCE built with gcc ``flags`` in ``directory`` (as ``nw``)."""
    (directory / "nw.c").write_text(NULL_WRITE_SOURCE)
    exe = directory / "nw"
    return crash_program(["gcc", *flags, str(directory / "nw.c"), "-o", str(exe)], exe, directory)


def build_id(path: str | os.PathLike[str]) -> str:
    """The build-id of an ELF file, as elfutils' eu-readelf reads it (not our reader)."""
    readelf = subprocess.run(["eu-readelf", "-n", str(path)], capture_output=True, text=True, check=True)
    return readelf.stdout.split("Build ID:")[1].split()[0]


@contextlib.contextmanager
def debuginfod_server(directory: Path, db: Path, build_id: str, timeout: float) -> Iterator[str]:
    """elfutils' debuginfod serving ``directory`` on the loopback, once it serves ``build_id``'s debug
    file (it answers HEAD with 400 in 0.188: the file is asked for, one byte read); yields its URL."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen(
        ["debuginfod", "-F", str(directory), "-p", str(port), "-d", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:  # until it has scanned the directory
            try:
                with urllib.request.urlopen(f"{url}/buildid/{build_id}/debuginfo", timeout=10) as resp:
                    if resp.status == 200 and resp.read(1):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"debuginfod did not serve {build_id} within {timeout:.0f} s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def by_thread(text: str, thread: str, frame: str) -> dict[int, list[tuple[str, ...]]]:
    """A peer's stack listing split by thread: the regular expression ``thread`` finds a thread's
    header (its id the first group), ``frame`` one of its frames (the groups are kept, in order)."""
    import re

    threads: dict[int, list[tuple[str, ...]]] = {}
    current: list[tuple[str, ...]] = []
    for line in text.splitlines():
        if m := re.match(thread, line):
            current = threads.setdefault(int(m.group(1)), [])
        elif m := re.match(frame, line):
            current.append(m.groups())
    return threads
