"""A smaller core for the Python frame reader: only the segments the interpreter's state can reach.

pystack reads a core through elfutils, whose core reader walks every PT_LOAD and, for each, reads
the whole run of adjacent segments after it: quadratic in a run's length, and every page of it
touched. A process that leaked 2 GB in 30,000 blocks left a core that took pystack 4 s and 1.9 GiB,
while the Python frames it wanted lay in 17 MB. So, for a large core, the reader gets a core of its
own: the same notes, and only the segments a reader of the interpreter's state can reach.

**Reachable**, as a conservative garbage collector (Boehm's) defines it:

- the roots: every segment of a mapped file (the interpreter's and its libraries' code and data,
  ``_PyRuntime`` among them), the vDSO and every segment that holds a thread's stack pointer;
- then every segment that a pointer-aligned word of a reachable segment points into.

A word is tested by the 64 KiB granule it falls in: a granule that a candidate segment only partly
covers keeps that segment whole, and so does a word that is no pointer but looks like one, so the
test can keep a segment too many, never one too few. The scan goes in waves (the segments the last
wave reached, in file order) and each wave is one pass of ``notmyfault.native.scan`` over the file:
done word by word in Python it was most of what ``analyze`` spent on a 2 GB core. The segments
kept are bounded by a budget in bytes: past it, a reachable segment is left out (the reader
then says what it could not read; it never reads zeros in its place, since a left-out segment is
absent from the new core, not empty).

The copy is made with ``copy_file_range`` (no pass through this process) into a temporary file next
to nothing else, and removed by the caller. Only 64-bit little-endian cores are reduced, the only
ones pystack reads.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
from array import array
from dataclasses import dataclass

from notmyfault.dumps.elfcore import PN_XNUM, ElfCore, Segment
from notmyfault.dumps.linkmap import AT_SYSINFO_EHDR, PT_LOAD, PT_NOTE
from notmyfault.native import scan

REDUCE_ABOVE = 64 << 20
"""Bytes of memory in a core above which the Python frame reader gets a reduced one."""
BUDGET = 512 << 20
"""Bytes of segments a reduced core may hold."""
GRANULE_BYTE = 2
"""A pointer is tested by its granule: the address less its low GRANULE_BYTE bytes (64 KiB)."""
MAX_GRANULES = 1 << 18
"""Granules at most in the candidates' table: a larger core is tested by coarser ones (16 MiB)."""
KEY_MASK = 0xFFFF_FFFF
"""A granule is keyed by 32 bits of it: a word's higher bits, zero in a user address, are not
looked at, so a word that is no pointer may keep a segment, and a pointer always does."""
CHUNK = 1 << 20
"""Bytes copied at a time where the kernel cannot copy (``_copy``)."""

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")


@dataclass(frozen=True)
class Reduction:
    """A reduced core and what it left out."""

    path: str
    kept: int
    """Segments kept."""
    kept_bytes: int
    left: int
    """Segments left out (unreachable, or past the budget)."""
    left_bytes: int
    over_budget: int
    """Reachable segments left out for the budget."""


def reachable(core: ElfCore, budget: int = BUDGET) -> tuple[list[Segment], int]:
    """The segments of ``core`` its roots reach (see the module's text), in address order, and how
    many reachable ones the ``budget`` left out."""
    segments = [s for s in core.segments if s.memsz]
    starts = [s.vaddr for s in segments]
    vdso = core.auxv.get(AT_SYSINFO_EHDR)
    roots: set[int] = set()
    for at in (vdso, *(t.sp for t in core.threads)):  # the vDSO's segment, each thread's stack's
        i = bisect.bisect_right(starts, at) - 1 if at is not None else -1
        if i >= 0 and at is not None and at < segments[i].end:
            roots.add(i)
    for f in core.files:  # the segments each mapped file overlaps
        i = max(bisect.bisect_right(starts, f.start) - 1, 0)
        while i < len(segments) and segments[i].vaddr < f.end:
            if segments[i].end > f.start:
                roots.add(i)
            i += 1
    kept = set(roots)  # indices into segments
    used = sum(segments[i].filesz for i in roots)
    queue = sorted(i for i in roots if segments[i].filesz)
    candidates = [i for i in range(len(segments)) if i not in kept and segments[i].filesz]
    shift = GRANULE_BYTE
    if sum((segments[i].filesz >> (8 * shift)) + 2 for i in candidates) > MAX_GRANULES:
        shift += 1  # 16 MiB granules: the table stays small however big the core
    bits = 8 * shift

    def granules(s: Segment) -> range:
        return range(s.vaddr >> bits, ((s.vaddr + s.filesz - 1) >> bits) + 1)

    keys: set[int] = set()  # the candidates' granules, each keyed by its low 32 bits
    aliased: dict[int, list[int]] = {}  # the candidates whose granules do not fit 32 bits, by key
    for i in candidates:
        g = granules(segments[i])
        if g.stop <= KEY_MASK:
            keys.update(g)
        else:
            for h in g:
                keys.add(h & KEY_MASK)
                aliased.setdefault(h & KEY_MASK, []).append(i)
    order = [segments[i].vaddr for i in candidates]
    decided = set(kept)
    over = 0

    def overlapping(key: int) -> list[int]:
        """The undecided candidates in the granule ``key`` (and in those it aliases)."""
        lo, hi = key << bits, (key + 1) << bits
        j = bisect.bisect_left(order, hi) - 1
        found = []
        while j >= 0 and segments[candidates[j]].vaddr + segments[candidates[j]].filesz > lo:
            found.append(candidates[j])
            j -= 1
        return [i for i in (*found, *aliased.get(key, ())) if i not in decided]

    with open(core.path, "rb") as src:  # read, not mapped: the scanned pages stay out of our resident set
        while queue and keys:  # a wave: every segment reached by the last one, scanned in one pass
            wave = sorted(queue, key=lambda i: segments[i].offset)
            queue.clear()
            skips = [-segments[i].vaddr % 8 for i in wave]  # words aligned in memory, not in the file
            ranges = [
                (segments[i].offset + k, segments[i].filesz - k) for i, k in zip(wave, skips, strict=True)
            ]
            for key in scan.granules(src.fileno(), ranges, shift, array("I", keys)):
                if key not in keys:
                    continue  # an earlier hit of this wave decided its granule
                keys.discard(key)
                for i in overlapping(key):
                    decided.add(i)
                    t = segments[i]
                    inner = granules(t)
                    if inner.stop <= KEY_MASK:
                        keys.difference_update(inner[1:-1])  # the ends may hold a neighbour
                    if used + t.filesz > budget:
                        over += 1
                        continue
                    kept.add(i)
                    used += t.filesz
                    queue.append(i)
    return [segments[i] for i in sorted(kept)], over


def worth_reducing(core: ElfCore) -> bool:
    """Whether the Python frame reader should get a reduced copy of ``core``: a whole 64-bit
    little-endian core with more than ``REDUCE_ABOVE`` bytes of memory."""
    if core.elfclass != 64 or not core.little_endian or sys.byteorder != "little" or core.truncated:
        return False
    return sum(s.filesz for s in core.segments) > REDUCE_ABOVE


def reduce_core(core: ElfCore, directory: str, budget: int = BUDGET) -> Reduction | None:
    """A reduced copy of ``core`` in ``directory`` for the Python frame reader; None when it is not
    worth one (``worth_reducing``) or nothing would be left out."""
    if not worth_reducing(core):
        return None
    total = sum(s.filesz for s in core.segments)
    keep, over = reachable(core, budget)
    if len(keep) == len([s for s in core.segments if s.memsz]):
        return None
    path = os.path.join(directory, "python.core")
    _write(core, keep, path)
    kept_bytes = sum(s.filesz for s in keep)
    return Reduction(path, len(keep), kept_bytes, len(core.segments) - len(keep), total - kept_bytes, over)


def _write(core: ElfCore, keep: list[Segment], path: str, extended: bool = False) -> None:
    """Write a core with ``core``'s header and notes and the ``keep`` segments' data to ``path``
    (``extended``: its count of program headers in section 0 (PN_XNUM), as it is from 65,535 on)."""
    with open(core.path, "rb") as src:
        ident, etype, machine, version, entry, _phoff, _shoff, flags, ehsize, *_ = _EHDR.unpack(
            src.read(_EHDR.size)
        )
    page = 4096
    notes = list(core.note_ranges)
    count = len(notes) + len(keep)
    xnum = extended or count >= PN_XNUM
    at = _EHDR.size + count * _PHDR.size + (_SHDR.size if xnum else 0)
    rows: list[bytes] = []
    copies: list[tuple[int, int, int]] = []  # (source offset, size, destination offset)
    for offset, size in notes:
        rows.append(_PHDR.pack(PT_NOTE, 0, at, 0, 0, size, 0, 1))
        copies.append((offset, size, at))
        at += size
    for s in keep:
        at += -at % page
        rows.append(_PHDR.pack(PT_LOAD, s.flags, at, s.vaddr, 0, s.filesz, s.memsz, page))
        copies.append((s.offset, s.filesz, at))
        at += s.filesz
    shoff = _EHDR.size + count * _PHDR.size if xnum else 0
    header = _EHDR.pack(
        ident, etype, machine, version, entry, _EHDR.size, shoff, flags, ehsize, _PHDR.size,
        PN_XNUM if xnum else count, _SHDR.size if xnum else 0, 1 if xnum else 0, 0,
    )  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(core.path, "rb") as src, os.fdopen(fd, "wb", closefd=False) as out:
            out.write(header)
            out.write(b"".join(rows))
            if xnum:
                out.write(_SHDR.pack(0, 0, 0, 0, 0, 0, 0, count, 0, 0))
            out.flush()
            for offset, size, dest in copies:
                _copy(src.fileno(), fd, offset, size, dest)
            os.ftruncate(fd, at)
    finally:
        os.close(fd)


def _copy(src: int, dst: int, offset: int, size: int, dest: int) -> None:
    """Copy ``size`` bytes at ``offset`` of ``src`` to ``dest`` of ``dst``, in the kernel when it can."""
    while size:
        try:
            done = os.copy_file_range(src, dst, min(size, 1 << 30), offset, dest)
        except OSError:
            done = 0
        if not done:  # a file system without it, or the source ends early: by hand
            data = os.pread(src, min(size, CHUNK), offset)
            if not data:
                raise OSError(f"the core ends before offset {offset}")
            done = os.pwrite(dst, data, dest)
        offset, size, dest = offset + done, size - done, dest + done
