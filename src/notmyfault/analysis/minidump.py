"""The ``!analyze -v`` page for minidumps: the exception (or signal), the stack, the blame.

The stack: frame 0 from the exception's context, then the frame-pointer chain
through the stack memory the dump holds (marked ``frame pointer``); where a
chain ends in a module-less word, nothing is guessed.  Names come from
Breakpad symbol files (``--symbols DIR``: DIR/<debug file>/<debug id>/<name>.sym)
when they are given; otherwise frames are module+offset, as WinDbg without
symbols.
"""

from __future__ import annotations

import contextlib

from notmyfault.analysis.blame import choose
from notmyfault.analysis.classes import CRASH_CLASSES
from notmyfault.analysis.crash import CrashAnalysis, decode_bytes
from notmyfault.analysis.wincodes import ACCESS_KINDS, exception_class, exception_name
from notmyfault.analysis.winframes import fp_chain_frames
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.minidump import Minidump
from notmyfault.sigcodes import si_code_name

FAULT_SIGNALS = (4, 5, 7, 8, 11)
"""SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV: the signals whose si_addr is the fault address."""


def analyze_minidump(md: Minidump, symbols: str | None = None) -> CrashAnalysis:
    """Analyse a minidump: the ``!analyze -v`` page as the same result object as for ELF cores."""
    exc = md.exception
    linux = md.system_info is not None and md.system_info.platform_id >= 0x8000
    crashed = md.threads[0] if md.threads else None
    frames = tuple(fp_chain_frames(md, crashed, symbols)) if crashed is not None else ()
    code = exc.code if exc else None
    params = exc.parameters if exc else ()
    name = exception_name(code, params, linux) if code is not None else None
    insn = None
    if crashed is not None and crashed.pc is not None:
        with contextlib.suppress(UnreadableMemory):  # Breakpad keeps the code around the pc
            insn = decode_bytes(md.read(crashed.pc, 16), crashed.pc, md.arch)
    access, source = None, "not known"
    if exc and not linux and code == 0xC0000005 and params:
        access, source = (
            ACCESS_KINDS.get(params[0]),
            "the exception's first parameter",
        )
    elif insn is not None and insn.access:
        access, source = insn.access, f"the faulting instruction ({insn.text})"
    fault_address = None
    if exc:
        # Windows: the address an access violation touched is the second parameter;
        # Breakpad on Linux stores the signal's si_addr as the exception address
        av = code == 0xC0000005 and len(params) > 1 and not linux
        if av:
            fault_address = params[1]
        elif not linux or code in FAULT_SIGNALS:  # other signals' si_addr is not an address
            fault_address = exc.address
    if linux and exc and crashed is not None and fault_address == crashed.pc and code in (11, 7):
        access, source = "execute", "the fault address is the program counter"
    crash_class = exception_class(code, params, fault_address, linux, access)
    choice = choose([f.module for f in frames])
    blamed = frames[choice.index] if choice.index is not None else None
    bucket = f"{crash_class}:{blamed.symbolic() if blamed else '?'}"
    notes = []
    if frames and all(f.function is None for f in frames):
        notes.append("no symbols: frames are module+offset (give --symbols DIR with Breakpad .sym files)")
    main = md.modules[0].name if md.modules else None
    return CrashAnalysis(
        path=md.path,
        arch=md.arch,
        pid=md.misc_info.process_id,
        executable=main,
        command_line=md.command_line,
        crashed_tid=crashed.tid if crashed else None,
        signal=code if linux else None,
        signal_name=name if linux else None,
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
        bucket=bucket,
        frames=frames,
        notes=tuple(notes),
        dump_kind="minidump",
        exception_code=None if linux else code,
        exception_name=None if linux else name,
        exception_parameters=() if linux else params,
    )
