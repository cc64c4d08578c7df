"""makedumpfile's compressed vmcores, turned into the ELF vmcores the readers take.

kdump-tools (Debian, Ubuntu) and RHEL's kdump keep the crashed kernel's memory in makedumpfile's
``kdump-compressed`` format (``makedumpfile -c``, magic ``KDUMP   ``): a ``disk_dump_header``, a
``kdump_sub_header`` (where VMCOREINFO and the ELF notes lie), two bitmaps of page frames (valid,
dumped), then a ``page_desc`` per dumped page (offset, size, compression flags) and the pages.
makedumpfile's ``-F`` and QEMU's ``dump-guest-memory -z`` write the same data "flattened" for a
pipe (magic ``makedumpfile``): big-endian (offset, size) records to be put back in place, as
``makedumpfile -R`` does.  Layouts: makedumpfile's diskdump_mod.h.

The pages are decompressed (zlib, zstd; LZO and snappy are named and refused) into an ELF core
of physical memory: a PT_NOTE with the dump's notes (registers of every CPU) and VMCOREINFO, and a
PT_LOAD for each run of dumped page frames.  Pages makedumpfile excluded (free, cache, zero) are
left out, as in the original: reading one is an error, not zeros.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from typing import IO

from notmyfault.dumps.errors import DumpError

KDUMP_MAGIC, FLAT_MAGIC = b"KDUMP   ", b"makedumpfile"
DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY = 0x1, 0x2, 0x4
DUMP_DH_COMPRESSED_ZSTD = 0x20
MACHINES = {"x86_64": 62, "aarch64": 183, "ppc64le": 21, "s390x": 22}
"""utsname machine -> ELF e_machine (the kernels kdump runs on)."""
MAX_PAGES = 1 << 32


def _flat_records(f: IO[bytes], source: str) -> Iterator[tuple[int, bytes]]:
    """(offset, data) of a flattened dump, in file order."""
    f.seek(4096)  # the flattened header: signature, type, version, padding
    while True:
        head = f.read(16)
        if len(head) < 16:
            raise DumpError(f"{source} is truncated: its flattened records end without their end mark")
        offset, size = struct.unpack(">qq", head)
        if offset == -1:
            return
        if offset < 0 or size < 0 or size > 1 << 30:
            raise DumpError(f"{source} is corrupt: a flattened record claims {size} bytes at {offset}")
        data = f.read(size)
        if len(data) < size:
            raise DumpError(f"{source} is truncated: a flattened record is cut short")
        yield offset, data


def unflatten(source: str, out: IO[bytes]) -> None:
    """Put a flattened dump's records in place in ``out`` (makedumpfile -R)."""
    with open(source, "rb") as f:
        for offset, data in _flat_records(f, source):
            out.seek(offset)
            out.write(data)
    out.flush()


class _Kdump:
    """A kdump-compressed file: header fields and page access (64-bit little-endian layouts)."""

    def __init__(self, f: IO[bytes], source: str) -> None:
        self.f, self.source = f, source
        head = self._read(0, 464, "the header")
        if head[:8] != KDUMP_MAGIC:
            raise DumpError(f"{source} is not a kdump-compressed dump")
        self.version = struct.unpack_from("<i", head, 8)[0]
        uts = head[12:402]
        self.machine = uts[4 * 65 : 5 * 65].split(b"\0", 1)[0].decode(errors="replace")
        self.release = uts[2 * 65 : 3 * 65].split(b"\0", 1)[0].decode(errors="replace")
        (self.block, sub_blocks, bitmap_blocks, max_mapnr) = struct.unpack_from("<iiII", head, 428)
        if self.block not in (4096, 8192, 16384, 65536):
            raise DumpError(f"{source} is corrupt: its block size is {self.block}")
        sub = self._read(self.block, 104, "the sub-header")
        (self.off_info, self.size_info, self.off_note, self.size_note) = struct.unpack_from("<qQqQ", sub, 32)
        if self.version >= 6:
            (mapnr64,) = struct.unpack_from("<Q", sub, 96)
            max_mapnr = mapnr64 or max_mapnr
        if max_mapnr > MAX_PAGES:
            raise DumpError(f"{source} is corrupt: it claims {max_mapnr} page frames")
        self.max_mapnr = max_mapnr
        bitmap_at = self.block * (1 + sub_blocks)
        half = bitmap_blocks * self.block // 2
        self.dumped = self._read(bitmap_at + half, half, "the bitmap of dumped pages")
        self.descs_at = bitmap_at + bitmap_blocks * self.block

    def _read(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or size > 1 << 30:
            raise DumpError(f"{self.source} is corrupt: {what} claims {size} bytes at offset {offset}")
        self.f.seek(offset)
        data = self.f.read(size)
        if len(data) < size:
            raise DumpError(f"{self.source} is truncated: {what} lies past the end")
        return data

    def notes(self) -> bytes:
        """The ELF notes (PRSTATUS of each CPU, ...), with VMCOREINFO added as a note if it is not one."""
        notes = self._read(self.off_note, self.size_note, "the notes") if self.size_note else b""
        if b"VMCOREINFO\0" not in notes and self.size_info:
            info = self._read(self.off_info, self.size_info, "VMCOREINFO")
            name = b"VMCOREINFO\0"
            notes += (
                struct.pack("<III", len(name), len(info), 0)
                + name.ljust(12, b"\0")
                + info.ljust((len(info) + 3) & ~3, b"\0")
            )
        if not notes:
            raise DumpError(f"{self.source} has neither notes nor VMCOREINFO: it is no kernel dump")
        return notes

    def pfns(self) -> Iterator[int]:
        """The dumped page frame numbers, in order."""
        bits = self.dumped
        for byte_index, byte in enumerate(bits):
            if byte:
                base = byte_index * 8
                for bit in range(8):
                    if byte >> bit & 1 and base + bit < self.max_mapnr:
                        yield base + bit

    def page(self, index: int) -> bytes:
        """The ``index``-th dumped page, decompressed."""
        desc = self._read(self.descs_at + 24 * index, 24, "a page descriptor")
        offset, size, flags, _page_flags = struct.unpack("<qIIQ", desc)
        data = self._read(offset, size, "a page")
        if flags & DUMP_DH_COMPRESSED_ZLIB:
            out = zlib.decompressobj().decompress(data, self.block + 1)  # a page, not a bomb
        elif flags & DUMP_DH_COMPRESSED_ZSTD:
            import zstandard

            try:
                out = zstandard.ZstdDecompressor().decompress(data, max_output_size=self.block)
            except zstandard.ZstdError as e:
                raise DumpError(f"{self.source} is corrupt: a zstd page does not decompress ({e})") from None
        elif flags & (DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY):
            kind = "LZO" if flags & DUMP_DH_COMPRESSED_LZO else "snappy"
            raise DumpError(
                f"{self.source} compresses its pages with {kind}, which notmyfault does not decompress: "
                "make it with makedumpfile -c (zlib) or --zstd"
            )
        else:
            out = data
        if len(out) != self.block:
            raise DumpError(f"{self.source} is corrupt: a page decompresses to {len(out)} bytes")
        return out


def to_elf(source: str, out: IO[bytes], scratch: str | None = None) -> None:
    """Write the kdump-compressed (or flattened) dump ``source`` to ``out`` as an ELF vmcore (a
    flattened one is put back in place first, in a temporary file in ``scratch``)."""
    with open(source, "rb") as f:
        magic = f.read(16)
    if magic.startswith(FLAT_MAGIC):
        import tempfile

        with tempfile.TemporaryFile(dir=scratch) as flat:
            unflatten(source, flat)
            _convert(flat, source, out)
        return
    with open(source, "rb") as f:
        _convert(f, source, out)


def _convert(f: IO[bytes], source: str, out: IO[bytes]) -> None:
    try:
        k = _Kdump(f, source)
        notes = k.notes()
        runs: list[list[int]] = []  # [first pfn, count, first dumped index]
        for index, pfn in enumerate(k.pfns()):
            if runs and runs[-1][0] + runs[-1][1] == pfn:
                runs[-1][1] += 1
            else:
                runs.append([pfn, 1, index])
        machine = MACHINES.get(k.machine)
        if machine is None:
            raise DumpError(f"{source}: a kdump of a {k.machine or 'unnamed'} machine is not read")
        _write_elf(out, k, notes, runs, machine)
    except (zlib.error, struct.error, OverflowError, ValueError) as e:
        if isinstance(e, DumpError):
            raise
        raise DumpError(f"{source} is corrupt: {e}") from None


def _write_elf(out: IO[bytes], k: _Kdump, notes: bytes, runs: list[list[int]], machine: int) -> None:
    phnum = 1 + len(runs)
    if phnum >= 0xFFFF:
        raise DumpError(f"{k.source} has {len(runs)} runs of pages: too many for one ELF core")
    header_size = 64 + 56 * phnum
    notes_at = header_size
    data_at = (notes_at + len(notes) + k.block - 1) // k.block * k.block
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr += struct.pack("<HHIQQQIHHHHHH", 4, machine, 1, 0, 64, 0, 0, 64, 56, phnum, 0, 0, 0)
    phdrs = [struct.pack("<IIQQQQQQ", 4, 0, notes_at, 0, 0, len(notes), 0, 0)]
    at = data_at
    for pfn, count, _first in runs:
        size = count * k.block
        phdrs.append(struct.pack("<IIQQQQQQ", 1, 7, at, pfn * k.block, pfn * k.block, size, size, 0))
        at += size
    out.write(ehdr + b"".join(phdrs) + notes)
    zero = bytes(k.block)
    out.seek(data_at)
    for _pfn, count, first in runs:
        for i in range(first, first + count):
            page = k.page(i)
            if page == zero:
                out.seek(k.block, os.SEEK_CUR)
            else:
                out.write(page)
    out.truncate(at)
