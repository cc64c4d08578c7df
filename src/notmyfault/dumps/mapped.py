"""A dump file mapped read-only, with bounds-checked access: what the minidump and Windows readers share."""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from typing import TypeVar

from notmyfault.dumps.errors import DumpError
from notmyfault.dumps.unpack import discard

_D = TypeVar("_D", bound="MappedDump")


class MappedDump:
    """A read-only map of ``path``; every read is checked against the file's size (a DumpError past it)."""

    def __init__(self, path: str, least: int) -> None:
        """Map ``path``; raise DumpError if it cannot be opened or holds fewer than ``least`` bytes."""
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise DumpError(f"cannot open {path}: {e.strerror}") from None
        try:
            self.size = os.fstat(fd).st_size
            if self.size < least:
                raise DumpError(f"{path} is truncated: {self.size} bytes, less than its {least}-byte header")
            self._map: mmap.mmap | None = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Unmap the file."""
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        discard(self)

    def __enter__(self: _D) -> _D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bytes(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > self.size or self._map is None:
            raise DumpError(f"{self.path} is truncated or corrupt: {what} lies past the end of the file")
        return self._map[offset : offset + size]

    def _unpack(self, fmt: str, offset: int, what: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self._bytes(offset, struct.calcsize(fmt), what))
