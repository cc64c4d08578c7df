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
import struct

from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.minidump import Minidump, Module, Thread
from notmyfault.dumps.windump import Driver, WindowsKernelDump
from notmyfault.dumps.windump import Thread as KernelThread
from notmyfault.unwind.frames import Frame
from notmyfault.unwind.symfile import SymbolFile, SymbolStore, load_sym, sym_path

MAX_FRAMES = 4096
"""A frame-pointer chain is followed this far at most: a Windows kernel stack (24 KiB on x64, 12 KiB on
x86) holds at most 1,536 frames of two words, so no real chain is cut by it."""


Symbols = str | SymbolStore | None
"""Where Breakpad symbol files are: a directory, a store (directories, a cache, symbol servers), or none."""


def symbol_file(symbols: Symbols, module: Module | Driver) -> SymbolFile | None:
    """The module's Breakpad symbols from ``symbols`` (the layout of symbol stores), if there."""
    if not symbols or not isinstance(module, Module) or not module.debug_id:
        return None
    debug_file = module.debug_file or module.name
    if isinstance(symbols, SymbolStore):
        return symbols.find(debug_file, module.debug_id)
    return load_sym(sym_path(symbols, debug_file, module.debug_id))


Dump = Minidump | WindowsKernelDump
"""The dumps whose stacks are walked here: minidumps and Windows kernel (triage) dumps."""


def frame_at(md: Dump, index: int, pc: int, sp: int | None, how: str, symbols: Symbols = None) -> Frame:
    """The frame at ``pc``, named by the module's Breakpad symbols when given, else (kernel dumps)
    by the nearest export of the driver's image when the dump holds its export table."""
    module = md.module_at(pc if how == "context" else pc - 1)
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


def fp_chain_frames(md: Dump, thread: Thread | KernelThread, symbols: Symbols = None) -> list[Frame]:
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
