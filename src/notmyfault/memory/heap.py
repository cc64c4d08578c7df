"""What a dump says of glibc's main heap (the brk area) when no tagged blocks tell the story.

The heap is found by walking it: glibc's chunks lie end to end, each with its
size in the word before its memory, from the start of the brk area to the
top chunk at its end.  An anonymous writable mapping after the executable
whose chunk chain runs exactly from its start to its end is the main arena's
heap; nothing else is called a heap.  The walk needs no symbols and no debug
information of the C library.

What the dump alone can say of each chunk: its size, and whether it is in use
by the PREV_INUSE bit of the chunk after it.  Chunks that sit in tcache or the
fast bins keep that bit set, so "in use" counts are an upper bound; chunks in
the other bins are free for sure.  Heaps of other threads' arenas (mmapped
64 MiB areas) and mmapped chunks (large blocks) are not walked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from notmyfault.dumps.elfcore import PF_W, ElfCore, Segment
from notmyfault.dumps.errors import UnreadableMemory

SIZE_SZ = 8
"""The size of a chunk's size field: glibc's INTERNAL_SIZE_T on 64-bit targets."""
MIN_CHUNK = 32
ALIGN = 16
PREV_INUSE = 1
PAGE = 4096
NEAR_EXECUTABLE = 1 << 30
"""How far after the executable the brk area may start (ASLR moves it up to 32 MiB on x86_64)."""
MAX_CHUNKS = 5_000_000
CLASS_LIMITS = (32, 64, 128, 256, 512, 1024, 4096, 16384, 65536, 131072)
"""Upper bounds (bytes, chunk size with header) of the size classes; the last class is everything larger."""
ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class Chunk:
    """One chunk of the heap."""

    address: int
    """Where its header starts; the memory malloc returned is 16 bytes on."""
    size: int
    """With its header."""
    in_use: bool
    """By the PREV_INUSE bit of the next chunk (tcache and fast-bin chunks look in use)."""


@dataclass(frozen=True)
class SizeClass:
    """Chunks of one size class."""

    upto: int | None
    """Largest chunk size in the class (with its header); None for the last, open class."""
    chunks: int
    bytes: int
    in_use: int
    in_use_bytes: int


@dataclass(frozen=True)
class HeapSummary:
    """glibc's main heap in a dump."""

    start: int
    end: int
    chunks: int
    """Chunks walked, the top chunk not counted."""
    in_use: int
    in_use_bytes: int
    free: int
    free_bytes: int
    top: int
    """Bytes in the top chunk (never handed out yet, or given back)."""
    classes: tuple[SizeClass, ...]


@dataclass(frozen=True)
class HeapResult:
    """The heap, or why nothing can be said of it."""

    heap: HeapSummary | None
    reason: str | None


def _valid(field: int, at: int, end: int) -> bool:
    size = field & ~0x7
    return size >= MIN_CHUNK and size % ALIGN == 0 and at + size <= end


class _Words:
    """64-bit words of a segment, read a window at a time (a heap of gigabytes is never read whole)."""

    WINDOW = 1 << 20

    def __init__(self, core: ElfCore, seg: Segment) -> None:
        self.core, self.seg = core, seg
        self.base = -1
        self.data = b""

    def at(self, offset: int) -> int:
        """The little-endian word at ``offset`` into the segment (UnreadableMemory past the dump)."""
        if not self.base <= offset < self.base + len(self.data) - 7:
            self.base = offset
            self.data = self.core.read(self.seg.vaddr + offset, min(self.WINDOW, self.seg.memsz - offset))
        (value,) = struct.unpack_from("<Q", self.data, offset - self.base)
        return int(value)


def _walk(core: ElfCore, seg: Segment) -> list[Chunk] | None:
    """Every chunk of ``seg`` before the top chunk, or None if it is not a heap.

    The top chunk is the last one: it ends at the end of the area, or within
    its last page (the rest of the page after the program break).
    """
    if seg.filesz < seg.memsz or seg.memsz < 2 * MIN_CHUNK:
        return None
    try:
        return _chain(_Words(core, seg), seg)
    except UnreadableMemory:
        return None


def _chain(words: _Words, seg: Segment) -> list[Chunk] | None:
    end = seg.memsz
    if not words.at(SIZE_SZ) & PREV_INUSE:  # the first chunk has no chunk before it
        return None
    chunks: list[Chunk] = []
    at = 0
    while True:
        field = words.at(at + SIZE_SZ)
        if not _valid(field, at, end):
            return None
        nxt = at + (field & ~0x7)
        if end - nxt < 2 * SIZE_SZ:
            break  # the top chunk
        after = words.at(nxt + SIZE_SZ)
        if not _valid(after, nxt, end):
            if end - nxt < PAGE:
                break  # the top chunk, and past the break the rest of the last page
            return None
        chunks.append(Chunk(seg.vaddr + at, field & ~0x7, bool(after & PREV_INUSE)))
        at = nxt
        if len(chunks) > MAX_CHUNKS:
            return None
    return chunks or None


def main_heap(core: ElfCore) -> tuple[Segment, list[Chunk]] | None:
    """The segment that holds glibc's main heap, with its chunks; None when there is none to find."""
    if core.arch not in ARCHES or core.elfclass != 64:
        return None
    files = core.files
    if not files:
        return None
    exe = files[0].path
    exe_end = max(f.end for f in files if f.path == exe)
    for seg in core.segments:
        if seg.vaddr < exe_end or seg.vaddr - exe_end >= NEAR_EXECUTABLE or not seg.flags & PF_W:
            continue
        if core.file_at(seg.vaddr) is not None:
            continue
        chunks = _walk(core, seg)
        if chunks is not None:
            return seg, chunks
    return None


def heap_summary(core: ElfCore) -> HeapResult:
    """glibc's main heap by size class, or the reason nothing is known of it."""
    if core.arch not in ARCHES or core.elfclass != 64:
        return HeapResult(None, f"the glibc heap walk knows 64-bit x86_64 and aarch64 only, not {core.arch}")
    found = main_heap(core)
    if found is None:
        return HeapResult(
            None,
            "no glibc main heap in this dump (no anonymous mapping after the executable holds a chunk "
            "chain from its start to its end: the program used no brk heap, or it was not dumped)",
        )
    seg, chunks = found
    walked = sum(c.size for c in chunks)
    classes = []
    lower = 0
    for upto in (*CLASS_LIMITS, None):
        members = [c for c in chunks if c.size > lower and (upto is None or c.size <= upto)]
        if members:
            used = [c.size for c in members if c.in_use]
            classes.append(SizeClass(upto, len(members), sum(c.size for c in members), len(used), sum(used)))
        lower = upto or lower
    in_use = [c.size for c in chunks if c.in_use]
    free = [c.size for c in chunks if not c.in_use]
    return HeapResult(
        HeapSummary(
            start=seg.vaddr,
            end=seg.end,
            chunks=len(chunks),
            in_use=len(in_use),
            in_use_bytes=sum(in_use),
            free=len(free),
            free_bytes=sum(free),
            top=seg.memsz - walked,
            classes=tuple(classes),
        ),
        None,
    )
