"""The ``!analyze -v`` page for minidumps: the exception (or signal), the stack, the blame.

The exception is read by the rules of the operating system the dump names
(wincodes.py).  The stack is walked as minidump-stackwalk walks it (mdwalk.py):
CFI from Breakpad symbol files, frame pointers, then a stack scan, each frame
marked with how it was found.  Names come from Breakpad symbol files
(``--symbols DIR``: DIR/<debug file>/<debug id>/<name>.sym) when they are
given; otherwise frames are module+offset, as WinDbg without symbols.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from notmyfault.analysis.blame import choose
from notmyfault.analysis.classes import CRASH_CLASSES
from notmyfault.analysis.decode import decode_bytes, operand_address
from notmyfault.analysis.result import CrashAnalysis, SystemFacts
from notmyfault.analysis.wincodes import decode_exception, refine_class
from notmyfault.base.sigcodes import si_code_name
from notmyfault.dumps import origin
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.minidump import Minidump
from notmyfault.unwind.minidump import Walker
from notmyfault.unwind.windows import Symbols

NON_CANONICAL = 0xFFFFFFFFFFFFFFFF
"""The address Windows gives an access violation that was a general-protection fault (x86_64: a
non-canonical address, which the processor does not report)."""


def os_kind(md: Minidump) -> str:
    """windows, linux or mac: whose rules the exception record follows."""
    platform = md.system_info.platform_id if md.system_info else 2
    if platform in (0x8101, 0x8102):
        return "mac"
    return "linux" if platform >= 0x8000 else "windows"


def analyze_minidump(md: Minidump, symbols: Symbols = None) -> CrashAnalysis:
    """Analyse a minidump: the ``!analyze -v`` page as the same result object as for ELF cores."""
    exc = md.exception
    kind = os_kind(md)
    linux = kind == "linux"
    crashed = md.threads[0] if md.threads and md.threads[0].tid != md.dump_thread_id else None
    frames = tuple(Walker(md, symbols).frames(crashed)) if crashed is not None else ()
    decoded = decode_exception(kind, exc.code, exc.flags, exc.address, exc.parameters) if exc else None
    insn = None
    if crashed is not None and crashed.pc is not None:
        with contextlib.suppress(UnreadableMemory):  # Breakpad keeps the code around the pc
            insn = decode_bytes(md.read(crashed.pc, 16), crashed.pc, md.arch)
    if decoded is not None and decoded.fault_address == NON_CANONICAL and crashed is not None:
        # a general-protection fault (a non-canonical address) reports no address: the faulting
        # instruction's memory operand, from the registers, names it, and its access is the truth
        touched = None
        if insn is not None and crashed.pc is not None:
            with contextlib.suppress(UnreadableMemory):
                touched = operand_address(md.read(crashed.pc, 16), crashed.pc, md.arch, crashed.regs)
        if touched is not None:
            decoded = replace(decoded, fault_address=touched, access=None, memory=True)
    access, source = None, "not known"
    fault_address = decoded.fault_address if decoded else None
    if decoded is not None and decoded.access is not None:
        access, source = decoded.access, "the exception's first parameter"
    elif decoded is not None and decoded.memory:
        if crashed is not None and fault_address == crashed.pc:
            access, source = "execute", "the fault address is the program counter"
        elif insn is not None and insn.access:
            access, source = insn.access, f"the faulting instruction ({insn.text})"
    # a dump written on request (no exception stream, DUMP_REQUESTED, Crashpad's simulated one) is no crash
    crash_class = refine_class(decoded, access) if decoded else "LIVE_DUMP"
    choice = choose([f.module for f in frames])
    blamed = frames[choice.index] if choice.index is not None else None
    notes = []
    assertion = md.assertion
    if assertion is not None:
        where = f" in {assertion.function}" if assertion.function else ""
        at = f" ({assertion.file}:{assertion.line})" if assertion.file else ""
        notes.append(f"assertion: {assertion.expression or '(no expression)'}{where}{at}")
    if frames and all(f.function is None for f in frames):
        notes.append("no symbols: frames are module+offset (give --symbols DIR with Breakpad .sym files)")
    if any(f.how == "scan" for f in frames):
        notes.append("frames marked 'scan' were found by scanning the stack for return addresses: a guess")
    main = md.modules[0].name if md.modules else None
    code = exc.code if exc else None
    return CrashAnalysis(
        path=origin(md),
        arch=md.arch,
        pid=md.pid,
        executable=main,
        command_line=md.command_line,
        crashed_tid=crashed.tid if crashed else None,
        signal=code if linux else None,
        signal_name=decoded.name if linux and decoded else None,
        # old Breakpad writers left the si_code out (0): then it is not known, not SI_USER
        si_code=exc.flags if exc and linux and exc.flags else None,
        si_code_name=si_code_name(exc.code, exc.flags) if exc and linux and exc.flags else None,
        fault_address=fault_address,
        access=access,
        access_source=source,
        fault_pc=crashed.pc if crashed else None,
        instruction=insn,
        crash_class=crash_class,
        description=CRASH_CLASSES[crash_class],
        blamed=blamed,
        blame_reason=choice.reason,
        frames=frames,
        notes=tuple(notes),
        dump_kind="minidump",
        truncated=md.truncation,
        exception_code=None if linux else code,
        exception_name=None if linux or decoded is None else decoded.name,
        exception_parameters=() if linux or exc is None else exc.parameters,
        exception_address=None if linux or exc is None else exc.address,
        system=_system(md),
    )


def _system(md: Minidump) -> SystemFacts | None:
    """The dump's system info stream as the analysis gives it."""
    si = md.system_info
    if si is None:
        return None
    return SystemFacts(si.os, si.version or None, si.arch, si.cpu_info or None, si.processors)
