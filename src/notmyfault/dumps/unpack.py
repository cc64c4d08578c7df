"""Dumps that systems keep packed, unpacked for the readers.

- systemd-coredump stores cores compressed: ``core.*.zst`` (its default),
  ``.lz4`` or ``.xz``; others keep ``.gz`` ones.  They are recognised by their
  magic and decompressed, streaming, into a temporary file.
- kdump-tools and RHEL's kdump keep makedumpfile's compressed vmcores (``KDUMP``, or flattened):
  they become ELF vmcores (kdump.py);
- apport keeps ``/var/crash/*.crash``: an RFC 822-style report whose
  ``CoreDump: base64`` field holds a gzip stream, base64-encoded a block per
  continuation line (apport's problem_report format).  The core is streamed out
  the same way, and the report's text fields are kept (ExecutablePath,
  Package, ProcCmdline, ...).

The unpacked file is sparse (runs of zero bytes are skipped, as the kernel
leaves them in a core), lives in a private temporary directory, and is removed
when the dump is closed or the process exits (or, when the process was killed,
by its parent or the next run).  Writing stops, with a one-line error, before it
would leave less than ``FREE_FLOOR`` bytes free, or go past the size an ELF
core's own headers give, or past ``max_unpacked()``; a stream that does not
start as a dump is refused at its first bytes.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import lzma
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from notmyfault.base import format_size, private_temp_dir
from notmyfault.dumps.errors import DumpError
from notmyfault.dumps.linkmap import header_tables

ZSTD, LZ4, XZ, GZIP = b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"\xfd7zXZ\x00", b"\x1f\x8b"
APPORT = b"ProblemType:"
KDUMP, KDUMP_FLAT = b"KDUMP   ", b"makedumpfile"
"""makedumpfile's compressed vmcore, and its flattened form (makedumpfile -F, QEMU's kdump formats)."""
PACKINGS = {ZSTD: "zstd", LZ4: "lz4", XZ: "xz", GZIP: "gzip"}
"""Compressed-stream magic -> name."""
CHUNK = 1 << 20
FREE_FLOOR = 512 << 20
"""Unpacking stops before the temporary file system has less than this free."""
MAX_UNPACKED = 32 << 30
"""By default no dump is believed to unpack to more than this (systemd-coredump's own limit on what
it stores); ``--max-unpacked`` (``NOTMYFAULT_MAX_UNPACKED``) raises it. An ELF core is bounded
further by the size its own headers give."""
MAX_UNPACKED_ENV = "NOTMYFAULT_MAX_UNPACKED"
HEAD = 4 << 20
"""How much of the unpacked stream is kept to learn its size from its headers (an ELF core's program
headers: 56 bytes each)."""
DUMP_MAGICS = (b"\x7fELF", b"MDMP", b"PAGE", KDUMP, KDUMP_FLAT)
"""What an unpacked dump starts with (ELF cores and vmcores, minidumps, Windows kernel dumps,
makedumpfile's vmcores); a stream that starts otherwise is refused at once."""
_MORE = -1


def max_unpacked() -> int:
    """The most bytes a packed dump may unpack to: ``$NOTMYFAULT_MAX_UNPACKED`` (bytes), else
    MAX_UNPACKED."""
    text = os.environ.get(MAX_UNPACKED_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else MAX_UNPACKED


def implied_size(head: bytes) -> int | None:
    """The size an unpacked ELF file's headers give it (the end of its last segment, section header
    table or program header table), from ``head``, its first bytes; None if they cannot tell (not
    ELF, or PN_XNUM program headers); ``_MORE`` (-1) if ``head`` is too short to tell yet."""
    if not head.startswith(b"\x7fELF"):
        return None
    if len(head) < 64:
        return _MORE
    wide, order, phoff, phentsize, phnum, shoff, shentsize, shnum = header_tables(head)
    if phnum == 0xFFFF or (phnum and phentsize < (56 if wide else 32)):
        return None
    table_end = phoff + phnum * phentsize
    if table_end > HEAD:
        return None
    if table_end > len(head):
        return _MORE
    end = max(table_end, shoff + shnum * shentsize if shoff else 0)
    word, off_at, size_at = ("Q", 8, 32) if wide else ("I", 4, 16)
    for i in range(phnum):
        at = phoff + i * phentsize
        (offset,) = struct.unpack_from(order + word, head, at + off_at)
        (filesz,) = struct.unpack_from(order + word, head, at + size_at)
        end = max(end, int(offset) + int(filesz))
    return int(end)


REPORT_FIELDS = ("ExecutablePath", "Package", "ProcCmdline", "Signal", "Date", "ProblemType", "Uname")
"""The apport report fields shown beside the analysis."""


@dataclass
class Unpacked:
    """A packed dump and the temporary file it was unpacked to."""

    source: str
    """The file the user gave."""
    path: str
    """The unpacked dump."""
    packing: str
    """zstd, lz4, xz, gzip or apport."""
    report: dict[str, str] = field(default_factory=dict)
    """apport: the report's text fields (the core excluded)."""


def packing_of(head: bytes) -> str | None:
    """zstd, lz4, xz, gzip or apport when ``head`` (a file's first bytes) starts a packed dump."""
    for magic, name in PACKINGS.items():
        if head.startswith(magic):
            return name
    if head.startswith(KDUMP):
        return "kdump"
    if head.startswith(KDUMP_FLAT):
        return "kdump-flattened"
    return "apport" if head.startswith(APPORT) else None


_TEMP_DIR: str | None = None


def _temp_dir() -> str:
    """This process's directory for unpacked dumps: removed at exit, and, when the process is
    killed (a triage worker at its timeout), by its parent or by the next run (base.files)."""
    global _TEMP_DIR
    if _TEMP_DIR is None or not os.path.isdir(_TEMP_DIR):
        _TEMP_DIR = private_temp_dir("unpacked")
        atexit.register(shutil.rmtree, _TEMP_DIR, ignore_errors=True)
    return _TEMP_DIR


def _temp_file(source: str) -> tuple[int, str]:
    """A new temporary file for what ``source`` unpacks to (named after it, in the private directory)."""
    return tempfile.mkstemp(prefix=os.path.basename(source)[:40] + ".", dir=_temp_dir())


class _SparseWriter:
    """Writes a stream to a file, skipping whole zero blocks (they read back as zeros), within limits."""

    def __init__(self, out: IO[bytes], source: str, directory: str) -> None:
        self.out, self.source, self.directory, self.size = out, source, directory, 0
        self.zero = bytes(4096)
        self.limit = max_unpacked()
        self.head: bytearray | None = bytearray()
        """The stream's first bytes, until its size is learnt from them (then None)."""
        self.implied: int | None = None
        self._check_space()  # before the first byte, then every 64 MiB

    def _learn(self, data: bytes) -> None:
        """Refuse a stream that is no dump, and bound one whose headers give its size."""
        head = self.head
        assert head is not None
        head += data[: HEAD - len(head)]
        if len(head) < len(DUMP_MAGICS[-1]) and len(head) < HEAD:
            return
        if not head.startswith(DUMP_MAGICS):
            raise DumpError(
                f"{self.source} does not unpack to a dump (it starts with {bytes(head[:8]).hex(' ')}): "
                "refused (a decompression bomb?)"
            )
        size = implied_size(bytes(head))
        if size == _MORE and len(head) < HEAD:
            return
        self.head = None  # learnt: kept no longer
        if size is not None and size >= 0:
            self.implied = size
            self.limit = min(self.limit, size)

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.head is not None:
            self._learn(data)
        self.size += len(data)
        if self.size > self.limit:
            if self.implied is not None and self.limit == self.implied:
                raise DumpError(
                    f"{self.source} unpacks past the {self.implied} bytes its own ELF headers give: "
                    "refused (a decompression bomb?)"
                )
            raise DumpError(
                f"{self.source} unpacks to more than {format_size(self.limit)}: refused (a decompression "
                "bomb?); --max-unpacked SIZE raises the limit"
            )
        for at in range(0, len(data), 4096):
            block = data[at : at + 4096]
            if block == self.zero[: len(block)]:
                self.out.seek(len(block), os.SEEK_CUR)
            else:
                self.out.write(block)
        if self.size % (64 * CHUNK) < len(data):
            self._check_space()

    def _check_space(self) -> None:
        st = os.statvfs(self.directory)
        if st.f_bavail * st.f_frsize < FREE_FLOOR:
            raise DumpError(
                f"{self.source}: unpacking it would leave less than {FREE_FLOOR >> 20} MiB free in "
                f"{self.directory}: set TMPDIR to a larger file system"
            )

    def close(self) -> None:
        self.out.truncate(self.size)  # a trailing zero run was skipped, not written
        self.out.close()


def _decompressor(packing: str) -> Any:
    if packing == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()
    if packing == "lz4":
        import lz4.frame  # type: ignore[import-untyped]

        return lz4.frame.LZ4FrameDecompressor()
    if packing == "xz":
        return lzma.LZMADecompressor()
    return zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip


PIECE = 2048
"""Compressed bytes handed to a decompressor at a time: what one call can expand to is bounded by it
(zstd's worst case, RLE blocks, is about 40,000 to 1: some 80 MiB), where a whole chunk of a
crafted file could expand to gigabytes in memory before any limit is checked."""


def decompressed(f: IO[bytes], packing: str) -> Iterator[bytes]:
    """The decompressed bytes of ``f``, a bounded piece at a time (concatenated frames and members
    included)."""
    d = _decompressor(packing)
    while chunk := f.read(CHUNK):
        for at in range(0, len(chunk), PIECE):
            raw = chunk[at : at + PIECE]
            while raw:
                if d.eof:  # another frame or member follows (it may start anywhere, a piece's edge too)
                    d = _decompressor(packing)
                try:
                    out = d.decompress(raw)
                except Exception as e:  # each library has its own error (zstandard.ZstdError, ...)
                    raise DumpError(f"{f.name}: its {packing} data is corrupt ({e})") from None
                yield out
                raw = d.unused_data if d.eof else b""
    if not d.eof:
        raise DumpError(f"{f.name} is truncated: its {packing} stream ends early")


def report_header(lines: Iterable[bytes]) -> tuple[dict[str, str], bytes]:
    """An apport report's text fields (base64 ones left out), read from ``lines`` up to its CoreDump
    field, and the line it stopped at: the ``CoreDump:`` line (the core's blocks follow it), a line
    that is not ``Key: value``, or b"" at the end."""
    fields: dict[str, str] = {}
    key: str | None = None
    for raw in lines:
        if raw.startswith(b" ") and key is not None:
            if key in fields:
                fields[key] += "\n" + raw[1:].rstrip(b"\n").decode(errors="replace")
            continue
        name, sep, value = raw.partition(b":")
        if not sep or name == b"CoreDump":
            return fields, raw
        key = name.decode("ascii", errors="replace")
        if value.strip() != b"base64":
            fields[key] = value.strip().decode(errors="replace")
    return fields, b""


def _apport(f: IO[bytes], source: str) -> tuple[dict[str, str], Iterator[bytes] | None]:
    """The report's text fields, and a stream of its CoreDump's bytes (None when it has none)."""
    fields, stop = report_header(f)
    if not stop:
        return fields, None
    _, sep, value = stop.partition(b":")
    if not sep:
        raise DumpError(f"{source} is not an apport report: a line has no 'Key:' ({stop[:40]!r})")
    if value.strip() != b"base64":
        raise DumpError(f"{source}: its CoreDump field is not base64 data")
    return fields, _apport_core(f, source)


def _apport_core(f: IO[bytes], source: str) -> Iterator[bytes]:
    """apport's CoreDump: a base64 block per continuation line; the first is a gzip header (or, in old
    reports, the blocks are plain zlib), the rest raw deflate, the last with the gzip trailer."""
    d: Any = None
    for raw in f:
        if not raw.startswith(b" "):
            break  # the next field
        try:
            block = base64.b64decode(raw.strip(), validate=True)
        except binascii.Error:
            raise DumpError(f"{source}: its CoreDump holds a line that is not base64") from None
        if d is None:
            if block.startswith(b"\x1f\x8b\x08"):
                d = zlib.decompressobj(-zlib.MAX_WBITS)
                block = _strip_gzip_header(block, source)
            else:
                d = zlib.decompressobj()
        try:
            yield d.decompress(block)
        except zlib.error as e:
            raise DumpError(f"{source}: its CoreDump is corrupt ({e})") from None
    if d is None:
        raise DumpError(f"{source}: its CoreDump field is empty")


def _strip_gzip_header(block: bytes, source: str) -> bytes:
    flags, at = block[3], 10
    if flags & 4:  # FEXTRA
        at += 2 + int.from_bytes(block[at : at + 2], "little")
    for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & bit:
            end = block.find(b"\0", at)
            if end < 0:
                raise DumpError(f"{source}: its CoreDump's gzip header is cut short")
            at = end + 1
    if flags & 2:  # FHCRC
        at += 2
    return block[at:]


def unpack(source: str) -> Unpacked:
    """Unpack ``source`` (a compressed core or an apport report) into a temporary file."""
    try:
        f = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise DumpError(f"cannot open {source}: {e.strerror}") from None
    with f:
        packing = packing_of(f.read(16))
        f.seek(0)
        if packing is None:
            raise DumpError(f"{source} is not a packed dump")
        report: dict[str, str] = {}
        if packing.startswith("kdump"):
            return _unpack_kdump(source, packing)
        if packing == "apport":
            report, chunks = _apport(f, source)
            if chunks is None:
                raise DumpError(f"{source} is an apport report without a core (no CoreDump field)")
        else:
            chunks = decompressed(f, packing)
        fd, path = _temp_file(source)
        try:
            out = _SparseWriter(os.fdopen(fd, "wb"), source, os.path.dirname(path))
        except DumpError:
            os.unlink(path)
            raise
        try:
            for chunk in chunks:
                out.write(chunk)
        except BaseException as e:  # nothing half-written is left behind, whatever stopped it
            out.close()
            os.unlink(path)
            if isinstance(e, (OSError, EOFError, lzma.LZMAError, zlib.error, RuntimeError, ValueError)):
                raise DumpError(f"{source}: its {packing} data is corrupt or truncated ({e})") from None
            raise
        out.close()
    return Unpacked(source, path, packing, report)


def _unpack_kdump(source: str, packing: str) -> Unpacked:
    from notmyfault.dumps.kdump import to_elf

    fd, path = _temp_file(source)
    try:
        with os.fdopen(fd, "wb") as out:
            to_elf(source, out, _temp_dir())
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(e, OSError):
            raise DumpError(f"{source}: cannot unpack it: {e}") from None
        raise
    return Unpacked(source, path, packing)


def origin(dump: object) -> str:
    """The file the user named for ``dump``: the packed one, where it was unpacked to a temporary file."""
    info = getattr(dump, "unpacked", None)
    return info.source if isinstance(info, Unpacked) else str(getattr(dump, "path", ""))


def report_fields(dump: object) -> dict[str, str]:
    """An apport report's text fields, for a dump unpacked from one ({} otherwise)."""
    info = getattr(dump, "unpacked", None)
    return dict(info.report) if isinstance(info, Unpacked) else {}


def remove_unpacked(info: Unpacked) -> None:
    """Remove the temporary file ``info`` names."""
    with contextlib.suppress(OSError):
        os.unlink(info.path)


def discard(dump: object) -> None:
    """Remove the temporary file a dump was unpacked to, if it was (its readers call this on close)."""
    info = getattr(dump, "unpacked", None)
    if isinstance(info, Unpacked):
        remove_unpacked(info)
