"""The ``!analyze -v`` page for minidumps: the exception (or signal), the stack, the blame.

The stack: frame 0 from the exception's context, then the frame-pointer chain
through the stack memory the dump holds (marked ``frame pointer``); where a
chain ends in a module-less word, nothing is guessed.  Names come from
Breakpad symbol files (``--symbols DIR``: DIR/<debug file>/<debug id>/<name>.sym)
when they are given; otherwise frames are module+offset, as WinDbg without
symbols.
"""

from __future__ import annotations

import bisect
import contextlib
import ntpath
import os
import struct
from dataclasses import dataclass
from functools import lru_cache

from notmyfault.analysis.blame import choose
from notmyfault.analysis.classes import CRASH_CLASSES
from notmyfault.analysis.crash import CrashAnalysis, decode_bytes
from notmyfault.analysis.unwind import Frame
from notmyfault.analysis.wincodes import ACCESS_KINDS, exception_class, exception_name
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.minidump import Minidump, Module, Thread
from notmyfault.dumps.windump import Driver, WindowsKernelDump
from notmyfault.dumps.windump import Thread as KernelThread
from notmyfault.sigcodes import si_code_name

MAX_FRAMES = 64
FAULT_SIGNALS = (4, 5, 7, 8, 11)
"""SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV: the signals whose si_addr is the fault address."""


@dataclass(frozen=True)
class SymbolFile:
    """What a Breakpad .sym file says: functions (with their lines) and public symbols, by RVA."""

    funcs: list[tuple[int, int, str]]
    """(rva, size, name), sorted."""
    lines: list[tuple[int, int, int, str]]
    """(rva, size, line, file), sorted."""
    publics: list[tuple[int, str]]

    def lookup(self, rva: int) -> tuple[str | None, int | None, str | None, int | None]:
        """(function, offset from it, file, line) for ``rva``."""
        i = bisect.bisect_right(self.funcs, (rva, 1 << 64, "")) - 1
        if i >= 0 and self.funcs[i][0] <= rva < self.funcs[i][0] + self.funcs[i][1]:
            start, _size, name = self.funcs[i]
            j = bisect.bisect_right(self.lines, (rva, 1 << 64, 0, "")) - 1
            file = line = None
            if j >= 0 and self.lines[j][0] <= rva < self.lines[j][0] + self.lines[j][1]:
                line, file = self.lines[j][2], self.lines[j][3]
            return name, rva - start, file, line
        k = bisect.bisect_right(self.publics, (rva, "\uffff")) - 1
        if k >= 0:
            return self.publics[k][1], rva - self.publics[k][0], None, None
        return None, None, None, None


def parse_sym(text: str) -> SymbolFile:
    """Parse a Breakpad symbol file (FILE, FUNC, line and PUBLIC records; STACK records are skipped)."""
    files: dict[int, str] = {}
    funcs, lines, publics = [], [], []
    in_func = False
    for raw in text.splitlines():
        parts = raw.split(" ")
        try:
            if parts[0] == "FILE":
                files[int(parts[1])] = " ".join(parts[2:])
            elif parts[0] == "FUNC":
                rest = parts[2:] if parts[1] == "m" else parts[1:]
                funcs.append((int(rest[0], 16), int(rest[1], 16), " ".join(rest[3:])))
                in_func = True
            elif parts[0] == "PUBLIC":
                rest = parts[2:] if parts[1] == "m" else parts[1:]
                publics.append((int(rest[0], 16), " ".join(rest[2:])))
                in_func = False
            elif parts[0] in ("MODULE", "INFO", "STACK", "INLINE", "INLINE_ORIGIN"):
                in_func = parts[0].startswith("INLINE") and in_func
            elif in_func and len(parts) == 4:
                lines.append(
                    (int(parts[0], 16), int(parts[1], 16), int(parts[2]), files.get(int(parts[3]), "?"))
                )
        except (IndexError, ValueError):
            continue  # a malformed record is skipped, as Breakpad does
    return SymbolFile(sorted(funcs), sorted(lines), sorted(publics))


@lru_cache(maxsize=64)
def _load_sym(path: str) -> SymbolFile | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_sym(f.read())
    except OSError:
        return None


def symbol_file(symbols: str | None, module: Module | Driver) -> SymbolFile | None:
    """The module's Breakpad symbols under ``symbols`` (the layout of symbol stores), if there."""
    if not symbols or not isinstance(module, Module) or not module.debug_id:
        return None
    debug_file = ntpath.basename(module.debug_file or module.name) or os.path.basename(module.name)
    stem = debug_file[:-4] if debug_file.lower().endswith(".pdb") else debug_file
    return _load_sym(os.path.join(symbols, debug_file, module.debug_id, stem + ".sym"))


Dump = Minidump | WindowsKernelDump
"""The dumps whose stacks are walked here: minidumps and Windows kernel (triage) dumps."""


def frame_at(md: Dump, index: int, pc: int, sp: int | None, how: str, symbols: str | None = None) -> Frame:
    """The frame at ``pc``, named by the module's Breakpad symbols when given, else (kernel dumps)
    by the nearest export of the driver's image when the dump holds its export table."""
    module = md.module_at(pc)
    if module is None:
        return Frame(index, pc, sp, None, None, None, None, None, how, None)
    name = offset = file = line = None
    # a return address points after the call: look up the call itself
    look = pc - module.base - (0 if how == "context" else 1)
    syms = symbol_file(symbols, module)
    if syms is not None:
        name, offset, file, line = syms.lookup(look)
    elif isinstance(md, WindowsKernelDump) and isinstance(module, Driver):
        exports = md.image(module).exports
        i = bisect.bisect_right(exports, (look, "\uffff")) - 1
        if i >= 0:
            name, offset = exports[i][1], look - exports[i][0]
    if offset is not None and how != "context":
        offset += 1
    return Frame(index, pc, sp, module.name, name, offset, file, line, how, module.base)


def minidump_frames(md: Dump, thread: Thread | KernelThread, symbols: str | None = None) -> list[Frame]:
    """The thread's frames, innermost first: the context, then its frame-pointer chain.

    The chain is the same on x86, x86_64 and aarch64: the frame pointer
    points at the caller's saved frame pointer, with the return address (the
    saved link register) one word above it.
    """
    if thread.pc is None:
        return []
    frames = [frame_at(md, 0, thread.pc, thread.sp, "context", symbols)]
    word = 4 if md.arch == "x86" else 8
    fmt = "<II" if word == 4 else "<QQ"
    if frames[0].module is None and thread.sp is not None and md.arch in ("x86", "x86_64"):
        # a wild pc (a call through a bad pointer): the call left its return address at sp
        with contextlib.suppress(UnreadableMemory):
            (ret,) = struct.unpack(fmt[0] + fmt[1], md.read(thread.sp, word))
            if md.module_at(ret) is not None:
                frames.append(frame_at(md, 1, ret, thread.sp + word, "return address at sp", symbols))
    fp = thread.fp
    while fp and len(frames) < MAX_FRAMES:
        try:
            saved, ret = struct.unpack(fmt, md.read(fp, 2 * word))
        except UnreadableMemory:
            break
        if md.module_at(ret) is None:
            break
        frames.append(frame_at(md, len(frames), ret, fp + 2 * word, "frame pointer", symbols))
        if saved <= fp:  # the chain must climb the stack
            break
        fp = saved
    return frames


def analyze_minidump(md: Minidump, symbols: str | None = None) -> CrashAnalysis:
    """Analyse a minidump: the ``!analyze -v`` page as the same result object as for ELF cores."""
    exc = md.exception
    linux = md.system_info is not None and md.system_info.platform_id >= 0x8000
    crashed = md.threads[0] if md.threads else None
    frames = tuple(minidump_frames(md, crashed, symbols)) if crashed is not None else ()
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
        uid=None,
        crashed_tid=crashed.tid if crashed else None,
        signal=code if linux else None,
        signal_name=name if linux else None,
        # old Breakpad writers left the si_code out (0): then it is not known, not SI_USER
        si_code=exc.flags if exc and linux and exc.flags else None,
        si_code_name=si_code_name(exc.code, exc.flags) if exc and linux and exc.flags else None,
        fault_address=fault_address,
        sender_pid=None,
        access=access,
        access_source=source,
        fault_pc=crashed.pc if crashed else None,
        instruction=insn,
        blocked_signals=(),
        crash_class=crash_class,
        description=CRASH_CLASSES[crash_class],
        blamed=blamed,
        blame_reason=choice.reason,
        bucket=bucket,
        abort_message=None,
        frames=frames,
        notes=tuple(notes),
        dump_kind="minidump",
        exception_code=None if linux else code,
        exception_name=None if linux else name,
        exception_parameters=() if linux else params,
    )
