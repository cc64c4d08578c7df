"""Dump readers, chosen by the file's magic.

ELF process cores are read by every command; minidumps (``MDMP``) and Windows
kernel dumps (``PAGEDUMP``, ``PAGEDU64``) by ``analyze``, ``stack``, ``regs``,
``modules``, ``search`` and ``disasm`` (:func:`open_any`); Linux kernel vmcores (ELF cores that
carry a VMCOREINFO note) by every analysis command, through drgn.
"""

from __future__ import annotations

import os

from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.minidump import MAGIC as MINIDUMP_MAGIC
from notmyfault.dumps.minidump import Minidump
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
]

MINIDUMP_COMMANDS = "analyze, stack, regs, modules, search and disasm"
KERNEL_DUMP_COMMANDS = "analyze, stack, regs, modules, vm, search and disasm"
_FOREIGN = {
    b"MDMP": f"a minidump: {MINIDUMP_COMMANDS} read minidumps, this one reads ELF process cores so far",
    b"PAGE": f"a Windows kernel crash dump: {KERNEL_DUMP_COMMANDS} read those, this one reads ELF process cores",
    b"KDUM": "a compressed kernel dump (makedumpfile)",
}


def open_dump(path: str | os.PathLike[str]) -> ElfCore:
    """Open a dump by its magic; raise DumpError with one line for anything that is not one."""
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as e:
        raise DumpError(f"cannot open {os.fspath(path)}: {e.strerror}") from None
    for prefix, what in _FOREIGN.items():
        if magic.startswith(prefix):
            if prefix in (b"MDMP", b"PAGE"):
                raise DumpError(f"{os.fspath(path)} is {what}")
            raise DumpError(f"{os.fspath(path)} is {what}; notmyfault reads Linux ELF process cores so far")
    core = ElfCore(path)
    if is_vmcore(core):
        core.close()
        raise DumpError(f"{os.fspath(path)} is a Linux kernel vmcore: {VMCORE_COMMANDS} read those")
    return core


VMCORE_COMMANDS = "analyze, stack, regs, vm, poolused, modules, search and disasm"


def open_any(path: str | os.PathLike[str]) -> ElfCore | Minidump | WindowsKernelDump | Vmcore:
    """Open an ELF process core, a Linux kernel vmcore, a minidump or a Windows kernel dump by its magic
    (see :func:`open_dump`)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as e:
        raise DumpError(f"cannot open {os.fspath(path)}: {e.strerror}") from None
    if magic.startswith(MINIDUMP_MAGIC):
        return Minidump(os.fspath(path))
    if magic in (MAGIC32, MAGIC64):
        return WindowsKernelDump(os.fspath(path))
    if magic.startswith(b"\x7fELF"):
        core = ElfCore(path)
        return Vmcore(path, core) if is_vmcore(core) else core
    return open_dump(path)
