"""GNU build-ids: of a module as the dump saw it (its ELF header page is dumped), and of a file on disk.

A file on disk is used in place of memory the dump left out (code, read-only
data) only when its build-id equals the one in the dump: a rebuilt library at
the same path would otherwise give wrong instructions and wrong search hits.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from functools import lru_cache
from typing import IO

from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.linkmap import NT_GNU_BUILD_ID, header_tables, notes_in


def build_id_text(value: object) -> str:
    """A build-id as hex text, however a reader holds it (drgn's modules give bytes)."""
    return value.hex() if isinstance(value, bytes) else str(value)


def stream_build_id(stream: IO[bytes]) -> str | None:
    """The GNU build-id of the ELF file in ``stream``: from its PT_NOTE segments, else its SHT_NOTE
    sections (a relocatable object such as a kernel module has no segments; a Go program's PT_NOTE
    holds only Go's note); None if it has none.

    Read by hand from the ELF header, the program headers and the notes: a few small reads, not a
    parse of the whole file (pyelftools took 13 ms a library, and search asked for 31 of them)."""
    try:
        head = _read(stream, 0, 64)
        if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            return None
        wide, order, phoff, phentsize, phnum, shoff, shentsize, shnum = header_tables(head)
        parts: list[tuple[int, int, int]] = []  # (offset, size, alignment) of each note area
        table = _read(stream, phoff, phentsize * min(phnum, MAX_HEADERS)) if phoff and phentsize else b""
        for i in range(len(table) // phentsize if phentsize else 0):
            if wide:
                p_type, _, p_offset, _, _, p_filesz, _, p_align = struct.unpack_from(
                    order + "IIQQQQQQ", table, i * phentsize
                )
            else:
                p_type, p_offset, _, _, p_filesz, _, _, p_align = struct.unpack_from(
                    order + "IIIIIIII", table, i * phentsize
                )
            if p_type == 4:  # PT_NOTE
                parts.append((p_offset, p_filesz, p_align))
        found = _build_id_in(stream, parts, order)
        if found is not None:
            return found
        parts = []  # a Go program's PT_NOTE holds only its own note: the GNU one is in a section
        if shoff and shentsize:
            table = _read(stream, shoff, shentsize * min(shnum, MAX_HEADERS))
            for i in range(len(table) // shentsize):
                if wide:
                    _, sh_type, _, _, sh_offset, sh_size, _, _, sh_align, _ = struct.unpack_from(
                        order + "IIQQQQIIQQ", table, i * shentsize
                    )
                else:
                    _, sh_type, _, _, sh_offset, sh_size, _, _, sh_align, _ = struct.unpack_from(
                        order + "IIIIIIIIII", table, i * shentsize
                    )
                if sh_type == 7:  # SHT_NOTE
                    parts.append((sh_offset, sh_size, sh_align))
        return _build_id_in(stream, parts, order)
    except (OSError, struct.error, ValueError):
        return None


def _build_id_in(stream: IO[bytes], parts: list[tuple[int, int, int]], order: str) -> str | None:
    """The GNU build-id in the note areas ``parts`` (offset, size, alignment) of ``stream``."""
    for offset, size, align in parts:
        data = _read(stream, offset, min(size, MAX_NOTES))
        for name, ntype, desc in notes_in(data, order, 8 if align == 8 else 4):
            # only the GNU owner's: a kernel's Xen notes reuse type 3 for something else
            if ntype == NT_GNU_BUILD_ID and name == b"GNU":
                return desc.hex()
    return None


MAX_HEADERS = 4096
"""Program or section headers read at most (a crafted count is not followed further)."""
MAX_NOTES = 1 << 20
"""Bytes of one note area read at most."""


def _read(stream: IO[bytes], offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


@lru_cache(maxsize=256)
def file_build_id(path: str) -> str | None:
    """The GNU build-id of the ELF file at ``path``, or None."""
    try:
        with open(path, "rb") as f:
            return stream_build_id(f)
    except OSError:
        return None


NT_FDO_PACKAGING_METADATA = 0xCAFE1A7E
"""The package note (https://systemd.io/ELF_PACKAGE_METADATA/): JSON naming the package and version."""


def page_notes(page: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """The notes (name, type, desc) in an ELF header page (64-bit little-endian) that lie within the page.

    Parsed by hand: the dump holds only the first page of a mapped ELF file,
    and pyelftools cannot open a fragment (it reaches for the section headers
    at the end of the file).
    """
    if len(page) < 64 or page[:4] != b"\x7fELF" or page[4] != 2 or page[5] != 1:
        return
    (phoff,) = struct.unpack_from("<Q", page, 32)
    phentsize, phnum = struct.unpack_from("<HH", page, 54)
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 56 > len(page):
            return
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", page, at)
        if p_type != 4:  # PT_NOTE
            continue
        yield from notes_in(page[p_offset : min(p_offset + p_filesz, len(page))])


def page_build_id(page: bytes) -> str | None:
    """The GNU build-id in an ELF header page (64-bit little-endian), or None."""
    for name, ntype, desc in page_notes(page):
        if ntype == NT_GNU_BUILD_ID and name == b"GNU":
            return desc.hex()
    return None


def page_package(page: bytes) -> dict[str, str] | None:
    """The package note in an ELF header page ({"type", "name", "version", ...}), or None."""
    for name, ntype, desc in page_notes(page):
        if ntype == NT_FDO_PACKAGING_METADATA and name == b"FDO":
            return _package_json(desc)
    return None


_FDO_TYPES = (NT_FDO_PACKAGING_METADATA, "NT_FDO_PACKAGING_METADATA")  # pyelftools may name it


def _package_json(desc: bytes) -> dict[str, str] | None:
    try:
        meta = json.loads(desc.rstrip(b"\0"))
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    return {str(k): str(v) for k, v in meta.items() if isinstance(v, (str, int, float))}


@lru_cache(maxsize=256)
def file_package(path: str) -> dict[str, str] | None:
    """The package note of the ELF file at ``path``, or None."""
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            for seg in ELFFile(f).iter_segments():
                if seg["p_type"] == "PT_NOTE":
                    for note in seg.iter_notes():  # type: ignore[attr-defined]
                        if note["n_name"] == "FDO" and note["n_type"] in _FDO_TYPES:
                            return _package_json(bytes(note["n_descdata"]))
    except Exception:
        return None
    return None


def _header_pages(core: ElfCore, path: str) -> Iterator[bytes]:
    """The ELF header pages, in the dump, of the module mapped from ``path``."""
    for f in core.files:
        if f.path == path and f.file_offset == 0:
            with contextlib.suppress(UnreadableMemory):
                yield core.read(f.start, 4096)


def dumped_package(core: ElfCore, path: str) -> dict[str, str] | None:
    """The package note of the module mapped from ``path``, read from its ELF header page in the dump."""
    return next((found for page in _header_pages(core, path) if (found := page_package(page))), None)


def dumped_build_id(core: ElfCore, path: str) -> str | None:
    """The build-id of the module mapped from ``path``, read from its ELF header page in the dump."""
    return next((found for page in _header_pages(core, path) if (found := page_build_id(page))), None)


def file_usable(core: ElfCore, dump_path: str, disk_path: str) -> bool:
    """True if the file at ``disk_path`` may stand in for the dump's ``dump_path`` (build-ids agree,
    or the dump records none to compare)."""
    mine = dumped_build_id(core, dump_path)
    if mine is None:
        return True
    return file_build_id(disk_path) == mine
