"""Stacks of Windows-style dumps (minidumps, Windows kernel dumps): naming frames and walking the
frame-pointer chain.

A frame is named by the module's Breakpad symbol file when ``--symbols DIR`` gives one
(DIR/<debug file>/<debug id>/<name>.sym), else, in a kernel dump, by the nearest export of the
driver's image when the dump holds its export table; otherwise it stays module+offset, as in
WinDbg without symbols. The chain is the same on x86, x86_64 and aarch64: the frame pointer points
at the caller's saved frame pointer, with the return address one word above it.
"""

from __future__ import annotations

import bisect
import contextlib
import ntpath
import os
import struct
from dataclasses import dataclass
from functools import lru_cache

from notmyfault.analysis.unwind import Frame
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.minidump import Minidump, Module, Thread
from notmyfault.dumps.windump import Driver, WindowsKernelDump
from notmyfault.dumps.windump import Thread as KernelThread

MAX_FRAMES = 64


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


def fp_chain_frames(md: Dump, thread: Thread | KernelThread, symbols: str | None = None) -> list[Frame]:
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
