"""Dump readers, chosen by the file's magic.

ELF process cores are read by every command; minidumps (``MDMP``) and Windows
kernel dumps (``PAGEDUMP``, ``PAGEDU64``) by ``analyze``, ``stack``, ``regs``,
``modules``, ``search`` and ``disasm`` (:func:`open_any`); Linux kernel vmcores (ELF cores that
carry a VMCOREINFO note) by every analysis command, through drgn.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.minidump import MAGIC as MINIDUMP_MAGIC
from notmyfault.dumps.minidump import Minidump
from notmyfault.dumps.unpack import origin, packing_of, remove_unpacked, report_fields, unpack
from notmyfault.dumps.vmcore import Vmcore, is_vmcore
from notmyfault.dumps.windump import MAGIC32, MAGIC64, WindowsKernelDump

__all__ = [
    "DumpError",
    "ElfCore",
    "Minidump",
    "UnreadableMemory",
    "Vmcore",
    "WindowsKernelDump",
    "open_any",
    "open_dump",
    "origin",
    "report_fields",
]

MINIDUMP_COMMANDS = "analyze, stack, regs, modules, search and disasm"
KERNEL_DUMP_COMMANDS = "analyze, stack, regs, modules, vm, search and disasm"
_FOREIGN = {
    b"MDMP": f"a minidump: {MINIDUMP_COMMANDS} read minidumps, this one reads ELF process cores",
    b"PAGE": f"a Windows kernel crash dump: {KERNEL_DUMP_COMMANDS} read those, this one reads ELF process cores",
}


NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _head(path: str | os.PathLike[str]) -> bytes:
    """The file's first 16 bytes; DumpError for anything that is no regular file (opening a FIFO would
    wait for a writer forever, a device could be read without end)."""
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)
        if kind != stat.S_IFREG:
            what = NOT_REGULAR.get(kind, "not a regular file")
            raise DumpError(f"{os.fspath(path)} is {what}, not a dump file: give the path of a core or dump")
        with open(path, "rb") as f:
            return f.read(16)
    except OSError as e:
        raise DumpError(f"cannot open {os.fspath(path)}: {e.strerror}") from None


def _packed(path: str | os.PathLike[str], opener: Any) -> Any:
    """Unpack ``path`` to a temporary file and open that with ``opener``; the dump removes it on close."""
    info = unpack(os.fspath(path))
    try:
        dump = opener(info.path)
    except DumpError as e:
        remove_unpacked(info)
        raise DumpError(str(e).replace(info.path, f"{info.source} ({info.packing}, unpacked)")) from None
    dump.unpacked = info
    return dump


def open_dump(path: str | os.PathLike[str]) -> ElfCore:
    """Open a dump by its magic (unpacking compressed cores and apport reports); raise DumpError with
    one line for anything that is not one."""
    magic = _head(path)
    if packing_of(magic):
        core: ElfCore = _packed(path, open_dump)
        return core
    for prefix, what in _FOREIGN.items():
        if magic.startswith(prefix):
            if prefix in (b"MDMP", b"PAGE"):
                raise DumpError(f"{os.fspath(path)} is {what}")
            raise DumpError(f"{os.fspath(path)} is {what}")
    core = ElfCore(path)
    if is_vmcore(core):
        core.close()
        raise DumpError(f"{os.fspath(path)} is a Linux kernel vmcore: {VMCORE_COMMANDS} read those")
    return core


VMCORE_COMMANDS = "analyze, stack, regs, vm, poolused, modules, search and disasm"


def open_any(path: str | os.PathLike[str]) -> ElfCore | Minidump | WindowsKernelDump | Vmcore:
    """Open an ELF process core, a Linux kernel vmcore (ELF or makedumpfile's compressed format), a
    minidump or a Windows kernel dump by its magic, unpacking compressed files and apport reports first
    (see :func:`open_dump`)."""
    magic = _head(path)
    if packing_of(magic):
        return _packed(path, open_any)  # type: ignore[no-any-return]
    if magic.startswith(MINIDUMP_MAGIC):
        return Minidump(os.fspath(path))
    if magic[:8] in (MAGIC32, MAGIC64):
        return WindowsKernelDump(os.fspath(path))
    if magic.startswith(b"\x7fELF"):
        core = ElfCore(path)
        return Vmcore(path, core) if is_vmcore(core) else core
    return open_dump(path)
