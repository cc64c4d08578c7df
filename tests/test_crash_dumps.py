"""Crash every catalog type in a real child process and check the real core file.

The facts come from the core itself: NT_SIGINFO and NT_PRSTATUS read with
pyelftools, the mappings from PT_LOAD and NT_FILE, and the frames from gdb's
backtrace of the core.  They are held both to the catalog (what we promise)
and, for the seed's type and a few others, to literal values written here, so
a wrong catalog entry cannot pass by agreeing with itself.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import struct
from pathlib import Path

import pytest

from notmyfault.base.sigcodes import si_code_name
from notmyfault.faults.catalog import CATALOG, AddressClass, CrashType
from notmyfault.native import myfault
from tests.conftest import run_json
from tests.coretools import Core, gdb_frames, gdb_info_symbol, innermost_own_frame, read_core

pytestmark = pytest.mark.crash

STACK_GUARD_GAP = 1024 * 1024 + 64 * 1024  # kernel stack_guard_gap (256 pages) and some slack


def _crash(entry: CrashType, dump_dir: Path) -> tuple[dict, Core]:
    args = ["crash", entry.name, "--dump-dir", str(dump_dir)]
    r, report = run_json(*args)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}\n{r.stdout}"
    assert report["core_dumped"] is True
    assert report["dump"] is not None, report["reason"]
    path = Path(report["dump"]["path"])
    assert path.is_file()
    assert path.parent == dump_dir
    assert path.stat().st_size == report["dump"]["size"] > 0
    # nothing else is left in the dump directory (the staging directory is gone)
    assert sorted(p.name for p in dump_dir.iterdir()) == [path.name]
    return report, read_core(path)


def _noted_address(report: dict) -> int:
    line = report["myfault_said"][0]
    m = re.search(r"(0x[0-9a-f]+|\(nil\))$", line)
    assert m, line
    return 0 if m.group(1) == "(nil)" else int(m.group(1), 16)


def _myfault_code(core: Core) -> list:
    return [m for m in core.mappings if m.path and "/myfault" in m.path and m.flags & 1]


def _check_address(entry: CrashType, report: dict, core: Core) -> None:
    cls = entry.outcome.address
    addr = core.si_addr
    if cls is AddressClass.NULL:
        assert addr < 4096
        assert core.mapping_at(addr) is None
    elif cls is AddressClass.UNMAPPED:
        assert addr >= 4096
        assert core.mapping_at(addr) is None, f"{addr:#x} is mapped"
        assert addr == _noted_address(report)
    elif cls is AddressClass.MODULE_CODE:
        code = _myfault_code(core)
        assert any(m.start <= addr < m.end for m in code), f"{addr:#x} not in myfault's code"
    elif cls is AddressClass.STACK_GUARD:
        below = [m for m in core.mappings if 0 < m.start - addr <= STACK_GUARD_GAP]
        assert below, f"{addr:#x} is not just below a mapping"
        stack = min(below, key=lambda m: m.start)
        assert stack.start <= core.sp + 4096  # the stack pointer is at the bottom of that mapping
        assert core.mapping_at(addr) is None
    elif cls is AddressClass.BEYOND_EOF:
        assert any("memfd:myfault-bus" in p for p in core.files_at(addr)), core.files_at(addr)
        assert addr == _noted_address(report)
    elif cls is AddressClass.WILD:
        assert addr == myfault.wild_pc()
        assert core.mapping_at(addr) is None
    elif cls is AddressClass.NONE:
        pass
    else:  # pragma: no cover
        raise AssertionError(cls)


@pytest.mark.parametrize("entry", [c for c in CATALOG if not c.takes_signal], ids=lambda c: c.name)
def test_catalog_crash_leaves_the_promised_dump(entry: CrashType, dump_dir: Path) -> None:
    report, core = _crash(entry, dump_dir)
    expected = entry.outcome
    # signal and si_code, from the kernel's note in the core and from the parent's report
    assert core.signo == expected.signal == report["signal"]
    assert si_code_name(core.signo, core.si_code) == expected.si_code_for()
    _check_address(entry, report, core)
    if expected.abort_message:
        assert any(expected.abort_message in line for line in report["stderr"]), report["stderr"]
    # the frames, from gdb
    frames = gdb_frames(core.path)
    if entry.frame is not None:
        assert innermost_own_frame(frames) == entry.frame, frames[:6]
        # ... and it sits in the myfault module
        own = next(f for f in frames if f["name"] == entry.frame)
        assert "myfault" in os.path.basename(str(own["solib"]))
    else:
        _check_stack_scan(entry, core)


def _check_stack_scan(entry: CrashType, core: Core) -> None:
    """stack-trash: the pc is wild, and scanning the stack finds a return address into myfault."""
    assert core.pc == myfault.wild_pc()
    words = core.read(core.sp, 512)
    code = _myfault_code(core)
    hits = [w for (w,) in struct.iter_unpack("<Q", words) if any(m.start <= w < m.end for m in code)]
    assert hits, "no return address into myfault on the stack"
    assert gdb_info_symbol(core.path, hits[0]).startswith(f"{entry.scan_frame} + ")


def test_seed_high_irql_exact(dump_dir: Path) -> None:
    """The seed's crash, held to literal values: SIGSEGV/SEGV_MAPERR reading the unmapped page
    at offset 8, every catchable signal blocked except the one the kernel forced."""
    report, core = _crash(CATALOG[0], dump_dir)
    assert CATALOG[0].name == "high-irql"
    assert (core.signo, core.si_code) == (11, 1)
    assert core.si_addr % 4096 == 8
    assert core.si_addr == _noted_address(report)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGALRM):
        assert core.sighold & (1 << (s - 1)), f"{s.name} not blocked"
    assert not core.sighold & (1 << (signal.SIGSEGV - 1))  # the kernel unblocks a forced fault
    assert report["signal_name"] == "SIGSEGV"
    if platform.machine() == "x86_64":
        assert gdb_frames(core.path)[0]["name"] == "myfault_high_irql"


def test_null_deref_blocks_nothing(dump_dir: Path) -> None:
    _, core = _crash(next(c for c in CATALOG if c.name == "null-deref"), dump_dir)
    assert (core.signo, core.si_code, core.si_addr) == (11, 1, 0)
    assert not core.sighold & (1 << (signal.SIGINT - 1))


def test_stack_overflow_recurses_deep(dump_dir: Path) -> None:
    _, core = _crash(next(c for c in CATALOG if c.name == "stack-overflow"), dump_dir)
    frames = gdb_frames(core.path)
    assert len(frames) == 64  # gdb_frames stops at 64: the recursion is deeper
    assert {f["name"] for f in frames} == {"myfault_stack_overflow"}


@pytest.mark.parametrize(
    ("sig", "dumps"), [("SIGQUIT", True), ("6", True), ("SIGTERM", False), ("USR1", False)]
)
def test_signal_type(sig: str, dumps: bool, dump_dir: Path) -> None:
    r, report = run_json("crash", "signal", "--signal", sig, "--dump-dir", str(dump_dir))
    signo = int(sig) if sig.isdigit() else signal.Signals["SIG" + sig.removeprefix("SIG")].value
    assert report["signal"] == signo
    assert report["core_dumped"] is dumps
    if dumps:
        assert r.returncode == 0
        core = read_core(report["dump"]["path"])
        assert (core.signo, si_code_name(core.signo, core.si_code)) == (signo, "SI_TKILL")
        assert innermost_own_frame(gdb_frames(core.path)) == "myfault_signal"
    else:
        assert r.returncode == 1
        assert "without a core dump" in report["reason"]
        assert list(dump_dir.iterdir()) == []


def test_ballast_makes_the_dump_big(dump_dir: Path) -> None:
    r, report = run_json("crash", "5", "--ballast", "64MiB", "--dump-dir", str(dump_dir))
    assert r.returncode == 0, r.stderr
    assert report["dump"]["size"] > 64 * 1024 * 1024
    assert report["dump"]["allocated"] > 64 * 1024 * 1024  # touched, so really in the dump


def test_in_process_crash_dies_and_leaves_core(dump_dir: Path) -> None:
    """--in-process crashes notmyfault itself; the relative core_pattern writes into --dump-dir."""
    r, report = run_json("crash", "null-deref", "--in-process", "--dump-dir", str(dump_dir))
    assert r.returncode == -signal.SIGSEGV
    assert report["pid"] > 0
    assert report["verdict"] == "will-dump"
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith(("|", "/")) or not pattern:
        pytest.skip(f"core_pattern {pattern!r} does not write into the working directory")
    cores = list(dump_dir.iterdir())
    assert len(cores) == 1
    assert report["expected_dump"] is not None
    assert cores[0].match(report["expected_dump"])  # the prediction named the file the kernel wrote
    assert report["replaces"] == []
    core = read_core(cores[0])
    assert (core.signo, core.si_addr) == (11, 0)
    assert innermost_own_frame(gdb_frames(core.path)) == "myfault_null_deref"


def test_in_process_warns_before_replacing_a_dump(dump_dir: Path) -> None:
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    uses_pid = Path("/proc/sys/kernel/core_uses_pid").read_text().strip() == "1"
    if pattern != "core" or uses_pid:
        pytest.skip("only a plain 'core' pattern makes successive dumps share a name")
    (dump_dir / "core").write_bytes(b"an older dump")
    r, report = run_json("crash", "abort", "--in-process", "--dump-dir", str(dump_dir))
    assert r.returncode == -signal.SIGABRT
    assert report["replaces"] == [str(dump_dir / "core")]
    assert (dump_dir / "core").read_bytes()[:4] == b"\x7fELF"  # the kernel did replace it
