"""Dump readers, chosen by the file's magic.

Only ELF process cores are read for now; kernel vmcores, Windows dumps and
minidumps are later stages and are refused with a message saying so.
"""

from __future__ import annotations

import os

from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import DumpError, UnreadableMemory

__all__ = ["DumpError", "ElfCore", "UnreadableMemory", "open_dump"]

_FOREIGN = {
    b"MDMP": "a minidump",
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
            raise DumpError(f"{os.fspath(path)} is {what}; notmyfault reads Linux ELF process cores so far")
    return ElfCore(path)
