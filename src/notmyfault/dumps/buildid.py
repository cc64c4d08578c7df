"""GNU build-ids: of a module as the dump saw it (its ELF header page is dumped), and of a file on disk.

A file on disk is used in place of memory the dump left out (code, read-only
data) only when its build-id equals the one in the dump: a rebuilt library at
the same path would otherwise give wrong instructions and wrong search hits.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import IO

from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import UnreadableMemory


def _note_build_id(stream: IO[bytes]) -> str | None:
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(stream)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_NOTE":
                for note in seg.iter_notes():  # type: ignore[attr-defined]
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return str(note["n_desc"])
    except Exception:
        return None
    return None


@lru_cache(maxsize=256)
def file_build_id(path: str) -> str | None:
    """The GNU build-id of the ELF file at ``path``, or None."""
    try:
        with open(path, "rb") as f:
            return _note_build_id(f)
    except OSError:
        return None


def page_build_id(page: bytes) -> str | None:
    """The GNU build-id in an ELF header page (64-bit little-endian), or None.

    Parsed by hand: the dump holds only the first page of a mapped ELF file,
    and pyelftools cannot open a fragment (it reaches for the section headers
    at the end of the file).
    """
    if len(page) < 64 or page[:4] != b"\x7fELF" or page[4] != 2 or page[5] != 1:
        return None
    (phoff,) = struct.unpack_from("<Q", page, 32)
    phentsize, phnum = struct.unpack_from("<HH", page, 54)
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 56 > len(page):
            return None
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", page, at)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, min(p_offset + p_filesz, len(page))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", page, pos)
            name_at = pos + 12
            desc_at = name_at + ((namesz + 3) & ~3)
            if desc_at + descsz > len(page):
                break
            if ntype == 3 and page[name_at : name_at + namesz] == b"GNU\0":
                return page[desc_at : desc_at + descsz].hex()
            pos = desc_at + ((descsz + 3) & ~3)
    return None


def dumped_build_id(core: ElfCore, path: str) -> str | None:
    """The build-id of the module mapped from ``path``, read from its ELF header page in the dump."""
    for f in core.files:
        if f.path == path and f.file_offset == 0:
            try:
                found = page_build_id(core.read(f.start, 4096))
            except UnreadableMemory:
                continue
            if found:
                return found
    return None


def file_usable(core: ElfCore, dump_path: str, disk_path: str) -> bool:
    """True if the file at ``disk_path`` may stand in for the dump's ``dump_path`` (build-ids agree,
    or the dump records none to compare)."""
    mine = dumped_build_id(core, dump_path)
    if mine is None:
        return True
    return file_build_id(disk_path) == mine
