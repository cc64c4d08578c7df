"""Type stub for the native module scan (src/notmyfault/native/user/scan.c)."""

from array import array
from collections.abc import Sequence

def granules(fd: int, ranges: Sequence[tuple[int, int]], shift: int, keys: array[int], /) -> list[int]:
    """The distinct ``keys`` (32-bit unsigned ints) that some 8-byte word of the (offset, size)
    ``ranges`` of file ``fd`` holds in its bytes ``shift`` to ``shift + 3``, ascending."""
