"""Fuzz the dump readers with mutated inputs: every failure must be a one-line DumpError (or
UnreadableMemory for one read).

Run: python tests/fuzz_reader.py [--kind KIND] [--count N] [--seed S]. Prints one summary line
and exits non-zero if any input raised anything else (each is printed with
its mutation, so it can be reproduced with the same seed).  Kinds (KINDS): the ELF cores,
minidumps and Windows dumps of ../shared/corpus (and synthetic Windows dumps), Breakpad symbol
files, and the unpacking paths: those ELF cores compressed (gz, xz, zst, lz4), in apport reports,
and makedumpfile vmcores.  Mutations: truncation, zeroed ranges, bit flips in the first pages
(headers and notes) and anywhere, and overwritten length fields.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
sys.path.insert(0, str(REPO / "src"))

from notmyfault.analysis.minidump import analyze_minidump  # noqa: E402
from notmyfault.dumps import (  # noqa: E402
    DumpError,
    ElfCore,
    Minidump,
    UnreadableMemory,
    Vmcore,
    WindowsKernelDump,
    open_dump,
)
from notmyfault.kernel.windows import analyze_kernel_dump  # noqa: E402
from notmyfault.kernel.winvm import windows_vm  # noqa: E402
from notmyfault.memory.heap import heap_summary  # noqa: E402
from notmyfault.memory.search import search_memory  # noqa: E402
from notmyfault.unwind.minidump import Walker  # noqa: E402
from notmyfault.unwind.windows import fp_chain_frames  # noqa: E402

KINDS = ("elf", "minidump", "windows", "sym", "packed", "apport", "kdump")
"""What can be fuzzed: each reader, and the paths that unpack compressed cores, apport reports and
makedumpfile's vmcores."""
SYMBOL_DIRS = [str(p) for p in sorted(CORPUS.glob("*/symbols")) if p.is_dir()]
"""The corpus' Breakpad symbol directories (x86 STACK WIN, x86_64 STACK CFI)."""


def seeds(kind: str = "elf", limit: int = 1 << 20) -> list[bytes]:
    """The corpus files of ``kind`` (elf: ELF cores; minidump: MDMP files) up to ``limit`` bytes."""
    magic = {"elf": b"\x7fELF", "minidump": b"MDMP", "windows": b"PAGEDU"}[kind]
    out = []
    for p in sorted(CORPUS.glob("*/*")):
        if p.is_file() and p.suffix not in (".txt", ".sym") and p.stat().st_size <= limit:
            data = p.read_bytes()
            if data.startswith(magic):
                out.append(data)
    return out


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    kind = rng.choice(["truncate", "zero", "flip-head", "flip-any", "length", "multi"])
    if kind == "truncate":
        n = rng.randrange(0, len(b))
        return bytes(b[:n]), f"truncate {n}"
    if kind == "zero":
        at = rng.randrange(0, len(b))
        n = rng.randrange(1, 4096)
        b[at : at + n] = bytes(min(n, len(b) - at))
        return bytes(b), f"zero {at}+{n}"
    if kind == "length":
        at = rng.randrange(0, min(len(b), 8192)) & ~3
        value = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(0, 1 << 32)])
        b[at : at + 4] = value.to_bytes(4, "little")
        return bytes(b), f"length {at}={value:#x}"
    flips = rng.randrange(1, 16) if kind == "multi" else 1
    desc = []
    for _ in range(flips):
        at = (
            rng.randrange(0, min(len(b), 8192))
            if kind == "flip-head" or rng.random() < 0.7
            else rng.randrange(0, len(b))
        )
        bit = rng.randrange(8)
        b[at] ^= 1 << bit
        desc.append(f"{at}.{bit}")
    return bytes(b), f"flip {','.join(desc)}"


def exercise_minidump(path: str) -> None:
    with open_dump(path) as md:
        assert isinstance(md, Minidump)
        md.system_info  # noqa: B018 - parsing is the point
        md.misc_info  # noqa: B018
        md.command_line  # noqa: B018
        md.environment  # noqa: B018
        md.proc_status  # noqa: B018
        md.lsb_release  # noqa: B018
        md.linux_maps  # noqa: B018
        md.auxv  # noqa: B018
        md.pid  # noqa: B018
        md.assertion  # noqa: B018
        for m in md.modules:
            m.code_id  # noqa: B018
        analyze_minidump(md)
        for symbols in SYMBOL_DIRS:  # the walker with real CFI / STACK WIN rules over mutated stacks
            for t in md.threads[:1]:
                Walker(md, symbols).frames(t)
        for t in md.threads:
            fp_chain_frames(md, t)


SYM_LAYOUT = {
    # a symbol file's place in the corpus -> the dump whose module it serves
    "rust-minidump/symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym": "rust-minidump/test.dmp",
    "breakpad-linux_null_read_av/symbols/null_read_av/7B7D1968FF0D47AE4366E9C3A7E1B6750/null_read_av.sym": (
        "breakpad-linux_null_read_av/linux_null_read_av.dmp"
    ),
}
SYM_DIR = tempfile.mkdtemp(prefix="nmf-fuzz-sym-")
atexit.register(shutil.rmtree, SYM_DIR, ignore_errors=True)


def sym_seeds() -> list[bytes]:
    """The Breakpad symbol files of the corpus that serve a dump here (STACK WIN for x86, STACK CFI for x86_64)."""
    return [(CORPUS / rel).read_bytes() for rel in SYM_LAYOUT if (CORPUS / rel).exists()]


def exercise_sym(path: str) -> None:
    """A mutated symbol file, parsed and used to walk both dumps it could serve."""
    from notmyfault.unwind import symfile

    data = Path(path).read_bytes()
    symfile.parse_sym(data.decode("utf-8", errors="replace"))
    symfile._parse_file.cache_clear()
    for rel, dump in SYM_LAYOUT.items():
        target = Path(SYM_DIR) / Path(rel).relative_to(Path(rel).parts[0], "symbols")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        with open_dump(str(CORPUS / dump)) as md:
            assert isinstance(md, Minidump)
            walker = Walker(md, SYM_DIR)
            for t in md.threads:
                walker.frames(t)


def synthetic_windows() -> list[bytes]:
    """Our own 32- and 64-bit triage dumps, 64-bit full and bitmap dumps, a 32-bit PAE full dump with
    a KDBG, an ARM64 full dump (tests/windump_synth.py), and the MinGW-built driver crashed in unicorn
    (tests/winfault.py: PE headers, unwind data, exports and a version resource in memory)."""
    sys.path.insert(0, str(REPO))
    from tests import winfault
    from tests.windump_synth import paged_dump, paged_dump_32, paged_dump_arm64, seed_d1

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in (
            ("t32", lambda p: seed_d1(32).write(p)),
            ("t64", lambda p: seed_d1(64).write(p)),
            ("full", lambda p: paged_dump(p, "full")),
            ("xp", lambda p: paged_dump_32(p)),
            ("bitmap", lambda p: paged_dump(p, "bitmap")),
            ("arm64", paged_dump_arm64),
        ):
            out.append(write(Path(tmp) / name).read_bytes())
        image = winfault.build(Path(tmp))
        winfault.crash(image, Path(tmp) / "winfault.dmp")
        out.append((Path(tmp) / "winfault.dmp").read_bytes())
    return out


def exercise_windows(path: str) -> None:
    with open_dump(path) as kd:
        assert isinstance(kd, WindowsKernelDump)
        kd.system_time  # noqa: B018 - parsing is the point
        kd.triage  # noqa: B018
        kd.drivers  # noqa: B018
        analyze_kernel_dump(kd)
        windows_vm(kd)
        for d in kd.drivers[:4]:
            kd.image(d).version  # noqa: B018 - pefile over what the mutated memory holds
        for start, size in kd.regions()[:4]:
            with contextlib.suppress(UnreadableMemory):  # a full dump's mapped ranges may be absent
                kd.read(start, min(size, 64))
        search_memory(kd, b"Leak")


def exercise(path: str) -> None:
    with open_dump(path, ElfCore) as core:
        exercise_core(core)


def exercise_core(core: ElfCore) -> None:
    """Every part of an ELF core's reading, and the heap walk over it."""
    core.threads  # noqa: B018 - parsing is the point
    sig = core.siginfo
    core.process  # noqa: B018
    files = core.files
    t = core.threads[0]
    for addr in (t.pc, t.sp, sig.addr if sig else None, files[0].start if files else None):
        if addr is not None:
            with contextlib.suppress(UnreadableMemory):
                core.read(addr, 64)
    for _ in zip(range(50), core.find_all(b"MYFAULT1"), strict=False):
        pass
    core.auxv  # noqa: B018
    core.environment  # noqa: B018
    core.images  # noqa: B018 - the link map walk follows pointers read from the dump
    for f in [f for f in files if f.file_offset == 0][:8]:
        core.image_at(f.start)
    heap_summary(core)  # the heap walk follows sizes read from the dump: it must stay in bounds


PACKINGS = ("gzip", "xz", "zstd", "lz4")


def packed_seeds() -> list[bytes]:
    """The small ELF cores of the corpus compressed as systemd-coredump and others keep them."""
    sys.path.insert(0, str(REPO))
    from tests.test_packed_dumps import _packed_bytes

    return [_packed_bytes(data, packing) for data in seeds("elf", 400 << 10) for packing in PACKINGS]


def apport_seeds() -> list[bytes]:
    """The small ELF cores of the corpus in apport .crash reports (problem_report.py's recipe)."""
    sys.path.insert(0, str(REPO))
    from tests.test_packed_dumps import apport_report

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(seeds("elf", 400 << 10)):
            core, report = Path(tmp) / f"core{i}", Path(tmp) / f"r{i}.crash"
            core.write_bytes(data)
            fields = {"ExecutablePath": "/usr/bin/x", "Package": "x 1.0", "ProcCmdline": "x --y"}
            out.append(apport_report(core, report, fields).read_bytes())
    return out


def kdump_seeds() -> list[bytes]:
    """makedumpfile-compressed vmcores (zlib pages and raw pages, x86_64 and aarch64), written to the
    format's layout by tests/test_kdump_format.py."""
    sys.path.insert(0, str(REPO))
    from notmyfault.dumps.kdump import DUMP_DH_COMPRESSED_ZLIB
    from tests.test_kdump_format import kdump

    pages = {0: bytes(range(256)) * 16, 1: b"\xaa" * 4096, 5: b"LEAK" * 1024, 9: bytes(4096)}
    return [kdump(pages, flags, machine) for flags in (DUMP_DH_COMPRESSED_ZLIB, 0)
            for machine in (b"x86_64", b"aarch64")]  # fmt: skip


def exercise_any(path: str) -> None:
    """A packed file (compressed core, apport report, kdump): opened as what it holds, then read."""
    with open_dump(path) as dump:
        if isinstance(dump, ElfCore):
            exercise_core(dump)
        elif isinstance(dump, Vmcore):
            dump.vmcoreinfo  # noqa: B018
            dump.release  # noqa: B018
            core = dump.physical
            for seg in core.segments[:8]:
                with contextlib.suppress(UnreadableMemory):
                    core.read(seg.vaddr, min(seg.memsz, 4096))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--kind", choices=KINDS, default="elf")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    if args.kind == "sym":
        pool = sym_seeds()
    elif args.kind in ("packed", "apport", "kdump"):
        pool = {"packed": packed_seeds, "apport": apport_seeds, "kdump": kdump_seeds}[args.kind]()
    else:
        pool = seeds(args.kind, limit=2 << 20 if args.kind == "windows" else 1 << 20)
    if args.kind == "windows" and pool:
        pool += synthetic_windows()
    run = {
        "elf": exercise,
        "minidump": exercise_minidump,
        "windows": exercise_windows,
        "sym": exercise_sym,
    }.get(args.kind, exercise_any)
    if not pool:
        print("fuzz: no seeds (../shared/corpus is missing)")
        return 2
    tmpdir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="nmf-fuzz-", dir=tmpdir)
    os.close(fd)
    failures = rejected = accepted = 0
    t0 = time.monotonic()
    try:
        for i in range(args.count):
            data, how = mutate(rng, rng.choice(pool))
            Path(path).write_bytes(data)
            try:
                run(path)
                accepted += 1
            except DumpError as e:
                rejected += 1
                if "\n" in str(e):
                    failures += 1
                    print(f"fuzz: input {i} ({how}): a DumpError of several lines: {e!r}")
            except Exception:
                failures += 1
                print(f"fuzz: input {i} ({how}) raised:\n{traceback.format_exc()}")
    finally:
        os.unlink(path)
    print(
        f"fuzz: {args.count} inputs from {len(pool)} seeds in {time.monotonic() - t0:.1f} s: {accepted} read, {rejected} rejected with one line, {failures} failures"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
