"""The native pointer scan (notmyfault.native.scan) against the scan it replaced, word by word in
Python, on random files: every key found, none invented, whatever the ranges, shift and keys."""

from __future__ import annotations

import os
import random
import struct
from array import array
from pathlib import Path

import pytest

from notmyfault.native import scan


def reference(data: bytes, ranges: list[tuple[int, int]], shift: int, keys: set[int]) -> list[int]:
    """Each range read as 8-byte little-endian words from its offset, to the file's end at most."""
    found: set[int] = set()
    for offset, size in ranges:
        chunk = data[offset : offset + size]
        for (word,) in struct.iter_unpack("<Q", chunk[: len(chunk) // 8 * 8]):
            key = (word >> (8 * shift)) & 0xFFFF_FFFF
            if key in keys:
                found.add(key)
    return sorted(found)


def random_file(rng: random.Random, path: Path, words: int, keys: list[int]) -> bytes:
    """Random words, some of them pointers whose granule is one of ``keys`` at shift 2 or 3."""
    out = []
    for _ in range(words):
        r = rng.random()
        if r < 0.02 and keys:
            shift = rng.choice((2, 3))
            low = rng.getrandbits(8 * shift)
            out.append(((rng.choice(keys) << (8 * shift)) | low) & (2**64 - 1))
        elif r < 0.5:
            out.append(0x7F00_0000_0000 | rng.getrandbits(40))  # looks like a pointer, mostly none of ours
        else:
            out.append(rng.getrandbits(64))
    data = struct.pack(f"<{words}Q", *out) + bytes(rng.randrange(8))  # and a partial word at the end
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("seed", range(12))
def test_the_native_scan_finds_what_the_python_scan_found(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    keys = sorted({rng.getrandbits(32) for _ in range(rng.randrange(1, 3000))} | {0xFFFF_FFFF, 0})
    data = random_file(rng, tmp_path / "core", rng.randrange(1, 200_000), keys)
    ranges = []
    for _ in range(rng.randrange(0, 40)):
        offset = rng.randrange(0, len(data) + 64)  # some misaligned, some past the end
        ranges.append((offset, rng.randrange(0, len(data) + 1)))
    table = array("I", rng.sample(keys, k=len(keys)))  # in no order
    with open(tmp_path / "core", "rb") as f:
        for shift in (2, 3):
            want = reference(data, ranges, shift, set(keys))
            assert scan.granules(f.fileno(), ranges, shift, table) == want


def test_a_whole_big_file_in_one_range_and_no_keys(tmp_path: Path) -> None:
    """Past the scan's 8 MiB buffer; and a table of no keys finds nothing."""
    rng = random.Random(7)
    words = (20 << 20) // 8 + 3
    key = 0x7F12_3456
    data = bytearray(os.urandom(words * 8))
    for at in (0, (8 << 20) - 8, 8 << 20, (16 << 20) + 8, len(data) - 8):  # on the buffer's seams
        data[at : at + 8] = struct.pack("<Q", (key << 16) | rng.getrandbits(16))
    (tmp_path / "core").write_bytes(data)
    want = reference(bytes(data), [(0, len(data))], 2, {key, 1, 2, 3})
    with open(tmp_path / "core", "rb") as f:
        assert key in want
        assert scan.granules(f.fileno(), [(0, len(data))], 2, array("I", [key, 1, 2, 3])) == want
        assert scan.granules(f.fileno(), [(0, len(data))], 2, array("I")) == []


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    (tmp_path / "core").write_bytes(bytes(64))
    with open(tmp_path / "core", "rb") as f:
        with pytest.raises(ValueError, match="must not be negative"):
            scan.granules(f.fileno(), [(-8, 8)], 2, array("I", [0]))
        with pytest.raises(ValueError, match="shift must be 0 to 4"):
            scan.granules(f.fileno(), [(0, 8)], 9, array("I", [0]))
        with pytest.raises(ValueError, match="32-bit unsigned"):
            scan.granules(f.fileno(), [(0, 8)], 2, b"\0\0\0")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            scan.granules(f.fileno(), [(0,)], 2, array("I", [0]))  # type: ignore[list-item]
    with pytest.raises(OSError, match="Bad file descriptor"):
        scan.granules(-1, [(0, 8)], 2, array("I", [0]))
