"""Dump readers, chosen by the file's magic.

ELF process cores are read by every command; minidumps (``MDMP``) by
``analyze``, ``stack``, ``regs`` and ``modules`` (:func:`open_any`).  Kernel
vmcores and Windows kernel dumps are later stages and are refused with a
message saying so.
"""

from __future__ import annotations

import os

from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.minidump import Minidump

__all__ = ["DumpError", "ElfCore", "Minidump", "UnreadableMemory", "open_any", "open_dump"]

MINIDUMP_COMMANDS = "analyze, stack, regs and modules"
_FOREIGN = {
    b"MDMP": f"a minidump: {MINIDUMP_COMMANDS} read minidumps, this one reads ELF process cores so far",
    b"PAGE": "a Windows kernel crash dump",
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
            if prefix == b"MDMP":
                raise DumpError(f"{os.fspath(path)} is {what}")
            raise DumpError(f"{os.fspath(path)} is {what}; notmyfault reads Linux ELF process cores so far")
    return ElfCore(path)


def open_any(path: str | os.PathLike[str]) -> ElfCore | Minidump:
    """Open an ELF process core or a minidump by its magic (see :func:`open_dump` for the errors)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise DumpError(f"cannot open {os.fspath(path)}: {e.strerror}") from None
    if magic == b"MDMP":
        return Minidump(os.fspath(path))
    return open_dump(path)
