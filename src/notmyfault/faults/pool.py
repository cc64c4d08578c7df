"""The pool header: the first 32 bytes of every block notmyfault leaks.

It is the analog of a Windows pool header: it carries the 4-character tag, so
an analyzer can count tagged blocks and bytes in a dump.  The layout is fixed
(docs/pool-header.md) and written by myfault (myfault.h, struct
myfault_pool_header), in the byte order of the machine, little-endian on
x86_64 and aarch64:

    offset  size  field
    0       8     magic  b"MYFAULT1"
    8       4     tag    4 ASCII characters, padded with spaces
    12      4     pool   1 paged, 2 nonpaged, 3 kernel (a message), 4 shared (shm)
    16      8     size   bytes in the block, header included
    24      4     seq    0-based number of the block within its leak
    28      4     pid    process that leaked it

Paged, nonpaged and shared blocks start on a page boundary, so their headers
are found by looking at the first 8 bytes of every page.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"MYFAULT1"
HEADER = struct.Struct("<8s4sIQII")
HEADER_SIZE = HEADER.size
assert HEADER_SIZE == 32


class PoolCode(IntEnum):
    """The ``pool`` field of the header."""

    PAGED = 1
    NONPAGED = 2
    KERNEL = 3
    SHARED = 4
    """A persistent paged leak's block (``--pool paged --persist``: a System V shm segment)."""

    @property
    def pool_option(self) -> str:
        """The ``--pool`` a block of this code was leaked with (a shared block's is ``paged``)."""
        return "paged" if self is PoolCode.SHARED else self.name.lower()


@dataclass(frozen=True)
class PoolHeader:
    """A decoded pool header."""

    tag: str
    pool: PoolCode
    size: int
    seq: int
    pid: int

    def pack(self) -> bytes:
        """The header's 32 bytes."""
        return HEADER.pack(MAGIC, self.tag.encode("ascii"), int(self.pool), self.size, self.seq, self.pid)


def parse_header(data: bytes) -> PoolHeader | None:
    """Decode a pool header from the first 32 bytes of ``data``; None if it is not one."""
    if len(data) < HEADER_SIZE or data[:8] != MAGIC:
        return None
    _, tag, pool, size, seq, pid = HEADER.unpack_from(data)
    try:
        return PoolHeader(tag.decode("ascii"), PoolCode(pool), size, seq, pid)
    except (UnicodeDecodeError, ValueError):
        return None


def normalize_tag(tag: str) -> str:
    """Check a pool tag (1 to 4 printable ASCII characters) and pad it to 4 with spaces."""
    if not 1 <= len(tag) <= 4 or not all(0x21 <= ord(c) < 0x7F for c in tag):
        raise ValueError(f"a pool tag is 1 to 4 printable ASCII characters without spaces, not {tag!r}")
    return tag.ljust(4)
