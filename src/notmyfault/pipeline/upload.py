"""Uploads: what a Breakpad or Crashpad client sends, checked before anything is kept.

The format is Breakpad's (and Socorro's collector's): a POST of multipart form data, the minidump
in the file part ``upload_file_minidump``, the annotations as plain fields (``prod``, ``ver``,
``guid``, ...), the whole body optionally gzip-compressed (``Content-Encoding: gzip``, as
Crashpad sends it). An ELF core comes the same way in ``upload_file_core``, plain or
zstd-compressed, with its metadata as fields. The answer is the crash id, as Socorro's collector
gives it (``CrashID=bp-ID``), which Crashpad keeps as the report's id.

Everything is bounded: the body, the decompressed body, the number and size of fields, and a
core's decompressed size. A field name is a word (no path, no control character); a value may
hold anything printable (it is escaped wherever it is shown) but no control character. A refusal
is :class:`Rejected`, an HTTP status with a one-line reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from notmyfault.pipeline.store import Dropped, Store

MINIDUMP_FIELD = "upload_file_minidump"
CORE_FIELD = "upload_file_core"
DUMP_FIELDS = (MINIDUMP_FIELD, CORE_FIELD)
FIELD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
"""An annotation's name: a word (Breakpad's and Crashpad's keys are), never a path."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ELF, ZSTD, MDMP = b"\x7fELF", b"\x28\xb5\x2f\xfd", b"MDMP"
PRODUCT_KEYS = ("prod", "ProductName", "product")
VERSION_KEYS = ("ver", "Version", "version")


@dataclass(frozen=True)
class UploadLimits:
    """The bounds of one upload."""

    max_body: int = 256 << 20
    """The body as sent (Content-Length, or counted)."""
    max_decompressed: int = 1 << 30
    """The body after gzip, and an ELF core after zstd."""
    max_fields: int = 256
    max_field: int = 64 << 10
    """One annotation's value."""
    max_files: int = 16
    rate: int = 600
    """At most this many uploads of one product are kept per ``interval`` seconds (429 past it)."""
    interval: float = 60.0


class Rejected(Exception):
    """An upload refused: ``status`` (4xx, or 5xx when the store cannot take it) and a reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_annotations(fields: Iterable[tuple[str, str]], limits: UploadLimits) -> dict[str, str]:
    """The annotations of an upload, checked: names are words, values have no control characters
    and are at most ``max_field`` long; a name given twice keeps its last value. Rejected (400)
    naming the first field that is not right."""
    out: dict[str, str] = {}
    for n, (name, value) in enumerate(fields):
        if n >= limits.max_fields:
            raise Rejected(413, f"more than {limits.max_fields} fields")
        if not FIELD_NAME.match(name):
            raise Rejected(400, f"field name {name[:64]!r} is not a word (letters, digits, '_', '.', '-')")
        if len(value) > limits.max_field:
            raise Rejected(413, f"field {name} is {len(value)} characters long, over {limits.max_field}")
        if _CONTROL.search(value):
            raise Rejected(400, f"field {name} holds control characters")
        out[name] = value
    return out


def first(annotations: dict[str, str], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` the annotations have, non-empty."""
    for k in keys:
        if annotations.get(k):
            return annotations[k]
    return None


def crash_time(annotations: dict[str, str]) -> str | None:
    """When the crash happened, where the client said: ``time`` (ISO 8601, as ``submit --store``
    forwards it) or Breakpad's ``CrashTime`` (seconds since the epoch); UTC ISO 8601, or None."""
    text = annotations.get("time") or annotations.get("CrashTime") or ""
    try:
        if text.isdigit():
            when = dt.datetime.fromtimestamp(int(text), dt.timezone.utc)
        else:
            when = dt.datetime.fromisoformat(text)
            when = when.replace(tzinfo=when.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return when.isoformat()


@dataclass(frozen=True)
class Upload:
    """A checked upload, ready to store."""

    field: str
    """Which dump it is: upload_file_minidump or upload_file_core."""
    annotations: dict[str, str]
    client: str | None
    attachments: tuple[str, ...] = ()
    """The names of other file parts (not kept)."""


def _copy_limited(source: BinaryIO, dest: BinaryIO, limit: int, what: str) -> tuple[int, bytes]:
    """Copy ``source`` to ``dest``; (bytes, first 8 bytes). Rejected (413) past ``limit``."""
    n, head = 0, b""
    while chunk := source.read(1 << 20):
        if not head:
            head = chunk[:8]
        n += len(chunk)
        if n > limit:
            raise Rejected(413, f"{what} is over {limit} bytes")
        dest.write(chunk)
    return n, head


def _zstd_elf_size(path: str, limit: int) -> int:
    """The decompressed size of a zstd file that must hold an ELF core; Rejected if it does not,
    if it is corrupt, or past ``limit`` (a zstd bomb: decompression stops there)."""
    import zstandard

    n, head = 0, b""
    try:
        with open(path, "rb") as f:
            reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
            while chunk := reader.read(1 << 20):
                if not head:
                    head = chunk[:4]
                    if head != ELF:
                        raise Rejected(400, f"{CORE_FIELD} is zstd, but not of an ELF core")
                n += len(chunk)
                if n > limit:
                    raise Rejected(413, f"{CORE_FIELD} decompresses to over {limit} bytes")
    except zstandard.ZstdError as e:
        raise Rejected(400, f"{CORE_FIELD} is not valid zstd: {e}") from None
    if n == 0:
        raise Rejected(400, f"{CORE_FIELD} is empty once decompressed")
    return n


def receive(store: Store, dump: BinaryIO, upload: Upload, limits: UploadLimits) -> str:
    """Keep an upload in the store (whole, queued) and return its crash id; Rejected if the dump
    is not what its field says, too large, or the store's limits refuse it (rate: 429, quota 507)."""
    store_limits = store.limits()
    product = first(upload.annotations, PRODUCT_KEYS)
    try:
        store.admit(f"upload:{product or '?'}", limits.rate, limits.interval)
    except Dropped as e:
        raise Rejected(429, str(e)) from None
    with store.begin() as pending:
        name = "upload.dmp" if upload.field == MINIDUMP_FIELD else "core.raw"
        with open(pending.file(name), "xb") as out:
            raw, head = _copy_limited(dump, out, limits.max_decompressed, upload.field)
        if raw == 0:
            raise Rejected(400, f"{upload.field} is empty")
        packing = None
        if upload.field == MINIDUMP_FIELD:
            if head[:4] != MDMP:
                raise Rejected(
                    400, f"{MINIDUMP_FIELD} is not a minidump (it starts with {head[:4]!r}, not b'MDMP')"
                )
        elif head[:4] == ZSTD:
            raw = _zstd_elf_size(pending.file(name), limits.max_decompressed)
            os.rename(pending.file(name), pending.file("core.zst"))
            name, packing = "core.zst", "zstd"
        elif head[:4] == ELF:
            from notmyfault.pipeline.collect import compress_into

            with open(pending.file(name), "rb") as f:
                compress_into(f, pending.file("core.zst"), limits.max_decompressed)
            os.unlink(pending.file(name))
            name, packing = "core.zst", "zstd"
        else:
            raise Rejected(400, f"{CORE_FIELD} is neither an ELF core nor zstd (it starts with {head[:4]!r})")
        path = pending.file(name)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        meta: dict[str, Any] = {
            "source": "upload",
            "received_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "client": upload.client,
            "annotations": upload.annotations,
            "product": product,
            "version": first(upload.annotations, VERSION_KEYS),
            "time": crash_time(upload.annotations),
            "host": upload.annotations.get("host"),
            "attachments": list(upload.attachments),
            "raw_size": raw,
            "size": os.path.getsize(path),
            "sha256": digest.hexdigest(),
            "packing": packing,
        }
        try:
            return pending.commit(meta, name, store_limits)
        except Dropped as e:
            raise Rejected(507, str(e)) from None
