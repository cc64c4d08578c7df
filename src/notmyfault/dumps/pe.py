"""PE images as a dump holds them in memory: headers, x64 unwind data, exports and version resources.

A loaded image lies in memory by its sections' virtual addresses, not as its
file does. The headers are parsed by pefile from the image's first page; for
the export and resource directories, the section that holds each one is read
from memory and put back at its file offset, so that pefile reads it as it
would read the file. The x64 unwind data (``.pdata``'s RUNTIME_FUNCTION
entries and the UNWIND_INFO they point to) is read here, entry by entry, by
binary search: an image's whole table is never loaded for one lookup.

Every read goes through the dump's ``read``; memory the dump lacks (a page
never written to it, or paged out) gives None or an empty answer, never a
guess.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from notmyfault.dumps.errors import UnreadableMemory

Reader = Callable[[int, int], bytes]
"""The dump's virtual memory: read(address, size) -> bytes, or UnreadableMemory."""

HEADER_BYTES = 0x1000
MAX_SECTION = 16 << 20
"""A directory's section bigger than this is not read (the whole section is read to parse it)."""
MAX_FILE = 64 << 20
MAX_CODES = 255
EXPORT, RESOURCE, EXCEPTION = 0, 2, 3
RUNTIME_FUNCTION = 12


@dataclass(frozen=True)
class UnwindCode:
    """One UNWIND_CODE: the prolog offset after the operation, the operation, its info and operands."""

    prolog_offset: int
    op: int
    info: int
    operand: int
    """The operand that follows in the next one or two slots (an offset or a size), or 0."""


@dataclass(frozen=True)
class UnwindInfo:
    """A function's UNWIND_INFO (x64): prolog size, frame register, codes, and a chained function."""

    begin: int
    """The function's start (RVA)."""
    end: int
    flags: int
    prolog_size: int
    frame_register: int
    frame_offset: int
    codes: tuple[UnwindCode, ...]
    chained: tuple[int, int, int] | None
    """(begin, end, unwind info RVA) of the function entry this one continues, if chained."""


UWOP_PUSH_NONVOL, UWOP_ALLOC_LARGE, UWOP_ALLOC_SMALL, UWOP_SET_FPREG = 0, 1, 2, 3
UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR, UWOP_EPILOG, UWOP_SPARE = 4, 5, 6, 7
UWOP_SAVE_XMM128, UWOP_SAVE_XMM128_FAR, UWOP_PUSH_MACHFRAME = 8, 9, 10
UNW_FLAG_CHAININFO = 4


def _slots(op: int, info: int) -> int:
    """How many 2-byte slots an unwind code takes (its own and its operands')."""
    if op == UWOP_ALLOC_LARGE:
        return 2 if info == 0 else 3
    if op in (UWOP_SAVE_NONVOL, UWOP_SAVE_XMM128, UWOP_EPILOG):
        return 2
    if op in (UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR):
        return 3
    return 1


def parse_unwind_info(data: bytes, begin: int, end: int) -> UnwindInfo:
    """Decode an UNWIND_INFO from ``data`` (its bytes, 4 + 2 * 256 + 12 at most); ValueError if bad."""
    if len(data) < 4:
        raise ValueError("unwind info is cut short")
    version_flags, prolog, count, frame = struct.unpack_from("<BBBB", data, 0)
    version, flags = version_flags & 7, version_flags >> 3
    if version not in (1, 2):
        raise ValueError(f"unwind info version {version}")
    if 4 + 2 * count > len(data):
        raise ValueError("unwind codes run past the data")
    slots = struct.unpack_from(f"<{count}H", data, 4)
    codes = []
    i = 0
    while i < count:
        offset, op_info = slots[i] & 0xFF, slots[i] >> 8
        op, info = op_info & 0xF, op_info >> 4
        n = _slots(op, info)
        if op > UWOP_PUSH_MACHFRAME or op == UWOP_SPARE or i + n > count:
            raise ValueError(f"unwind code {op} at slot {i} is not valid")
        operand = 0
        if op == UWOP_ALLOC_LARGE:
            operand = slots[i + 1] * 8 if info == 0 else slots[i + 1] | slots[i + 2] << 16
        elif op in (UWOP_SAVE_NONVOL, UWOP_SAVE_XMM128):
            operand = slots[i + 1] * (8 if op == UWOP_SAVE_NONVOL else 16)
        elif op in (UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR):
            operand = slots[i + 1] | slots[i + 2] << 16
        if op != UWOP_EPILOG:  # version 2's epilog descriptions do not unwind a prolog
            codes.append(UnwindCode(offset, op, info, operand))
        i += n
    chained = None
    if flags & UNW_FLAG_CHAININFO:
        at = 4 + 2 * (count + (count & 1))
        if at + RUNTIME_FUNCTION > len(data):
            raise ValueError("the chained function entry runs past the data")
        chained = struct.unpack_from("<III", data, at)
    return UnwindInfo(begin, end, flags, prolog, frame & 0xF, frame >> 4, tuple(codes), chained)


class PeImage:
    """A PE image loaded at ``base`` in a dump's memory."""

    def __init__(self, read: Reader, base: int) -> None:
        """Keep the reader; nothing is read until it is asked for."""
        self._read = read
        self.base = base
        self.problem: str | None = None
        """Why the headers could not be read, once they were asked for and could not."""

    @cached_property
    def _header_page(self) -> bytes | None:
        """The image's first page (its headers), read once; None if the dump lacks it."""
        try:
            return self._read(self.base, HEADER_BYTES)
        except UnreadableMemory:
            self.problem = "its image's headers are not in the dump"
            return None

    @cached_property
    def headers(self) -> Any | None:
        """pefile's view of the headers (fast-loaded: no directory parsed), or None if not in the dump."""
        import pefile  # type: ignore[import-untyped]

        data = self._header_page
        if data is None:
            return None
        try:
            return pefile.PE(data=data, fast_load=True)
        except pefile.PEFormatError as e:
            self.problem = f"its image's headers are not a PE image ({e.value})"
        except (struct.error, ValueError, IndexError) as e:
            self.problem = f"its image's headers are corrupt ({e})"
        return None

    def _directory(self, index: int) -> tuple[int, int]:
        """(RVA, size) of a data directory, or (0, 0)."""
        pe = self.headers
        if pe is None or index >= len(pe.OPTIONAL_HEADER.DATA_DIRECTORY):
            return 0, 0
        d = pe.OPTIONAL_HEADER.DATA_DIRECTORY[index]
        return int(d.VirtualAddress), int(d.Size)

    # ------------------------------------------------------------- unwind data

    def function_entry(self, rva: int) -> tuple[int, int, int] | None:
        """The RUNTIME_FUNCTION (begin, end, unwind info RVA) whose range holds ``rva``, or None for a
        leaf function (which has none); UnreadableMemory if a page of ``.pdata`` it needs is absent."""
        table, size = self._directory(EXCEPTION)
        count = min(size // RUNTIME_FUNCTION, 1 << 20)
        lo, hi = 0, count
        while lo < hi:
            mid = (lo + hi) // 2
            begin, end, info = struct.unpack(
                "<III", self._read(self.base + table + RUNTIME_FUNCTION * mid, RUNTIME_FUNCTION)
            )
            if rva < begin:
                hi = mid
            elif rva >= end:
                lo = mid + 1
            else:
                return begin, end, info
        return None

    @cached_property
    def has_unwind_table(self) -> bool:
        """True if the image's exception directory (``.pdata``) is in the dump."""
        table, size = self._directory(EXCEPTION)
        if self.headers is None:
            return False
        if not size:
            self.problem = "its image has no exception directory"
            return False
        try:
            self._read(self.base + table, RUNTIME_FUNCTION)
        except UnreadableMemory:
            self.problem = "its image's .pdata is not in the dump"
            return False
        return True

    def unwind_info(self, entry: tuple[int, int, int]) -> UnwindInfo | None:
        """The UNWIND_INFO of a RUNTIME_FUNCTION entry, or None if it is not in the dump or corrupt."""
        begin, end, at = entry
        try:
            head = self._read(self.base + (at & ~1), 4)
            count = head[2]
            data = head + self._read(self.base + (at & ~1) + 4, 2 * (count + 1) + RUNTIME_FUNCTION)
        except UnreadableMemory:
            return None
        try:
            return parse_unwind_info(data, begin, end)
        except ValueError:
            return None

    # ------------------------------------------------------------- exports and resources

    def _as_file(self, index: int) -> Any | None:
        """pefile over a file rebuilt from memory: the headers and the section holding directory
        ``index`` put back at their file offsets (the other sections left as zeros)."""
        import pefile

        pe = self.headers
        rva, size = self._directory(index)
        if pe is None or not size:
            return None
        section = next(
            (
                s
                for s in pe.sections
                if s.VirtualAddress <= rva < s.VirtualAddress + max(s.Misc_VirtualSize, 1)
            ),
            None,
        )
        if section is None or section.SizeOfRawData > MAX_SECTION or section.Misc_VirtualSize > MAX_SECTION:
            return None
        raw_at, raw_size = int(section.PointerToRawData), int(section.SizeOfRawData)
        length = min(raw_size, int(section.Misc_VirtualSize) or raw_size)
        if raw_at + raw_size > MAX_FILE:
            return None
        try:
            body = self._read(self.base + section.VirtualAddress, length)
        except UnreadableMemory:
            return None
        file = bytearray(max(raw_at + raw_size, HEADER_BYTES))
        file[:HEADER_BYTES] = self._header_page or b""
        file[raw_at : raw_at + length] = body
        logging.getLogger("pefile").setLevel(logging.ERROR)
        try:
            out = pefile.PE(data=bytes(file), fast_load=True)
            out.parse_data_directories(directories=[index])
        except (pefile.PEFormatError, struct.error, ValueError, IndexError):
            return None
        return out

    @cached_property
    def exports(self) -> list[tuple[int, str]]:
        """The named exports as (RVA, name), sorted; empty if the export directory is not in the dump."""
        pe = self._as_file(EXPORT)
        if pe is None or not hasattr(pe, "DIRECTORY_ENTRY_EXPORT"):
            return []
        out = {
            (int(s.address), s.name.decode("ascii", errors="replace"))
            for s in pe.DIRECTORY_ENTRY_EXPORT.symbols
            if s.name and s.address and not s.forwarder
        }
        return sorted(out)

    @cached_property
    def version(self) -> dict[str, str]:
        """The version resource: "File version" and "Product version" from VS_FIXEDFILEINFO, then
        the strings of its StringFileInfo (CompanyName, FileDescription, ...); empty if not in the dump."""
        pe = self._as_file(RESOURCE)
        out: dict[str, str] = {}
        if pe is None:
            return out
        for fixed in getattr(pe, "VS_FIXEDFILEINFO", [])[:1]:
            for label, ms, ls in (
                ("File version", fixed.FileVersionMS, fixed.FileVersionLS),
                ("Product version", fixed.ProductVersionMS, fixed.ProductVersionLS),
            ):
                out[label] = f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}"
        for info in getattr(pe, "FileInfo", []):
            for entry in info:
                for table in getattr(entry, "StringTable", []):
                    for key, value in table.entries.items():
                        name = key.decode("utf-8", errors="replace")
                        out.setdefault(name, value.decode("utf-8", errors="replace"))
        return out
