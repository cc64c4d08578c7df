"""``s -a``: find a string or bytes in the dumped memory, and in the mapped files the dump left out.

Code and read-only data of libraries are file-backed and usually not in a core
(coredump_filter leaves them out); a hit there is searched in the mapped file
on disk and says so (``source: file``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notmyfault.dumps import is_minidump
from notmyfault.dumps.buildid import file_usable
from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.unwind.names import module_matches, short_name

if TYPE_CHECKING:
    from notmyfault.dumps.minidump import Minidump
    from notmyfault.dumps.windump import WindowsKernelDump

MAX_HITS = 10_000


@dataclass(frozen=True)
class Hit:
    """One place where the pattern is."""

    address: int
    where: str
    """module+0xoff for a mapped file, or the region's kind."""
    source: str
    """dump or file."""
    module: str | None


def _where(core: ElfCore, addr: int) -> tuple[str, str | None]:
    f = core.file_at(addr)
    if f is None:
        return "anonymous memory", None
    return f"{short_name(f.path)}+{addr - core.file_base(f.path):#x}", f.path


def search(core: ElfCore, pattern: bytes, module: str | None = None) -> list[Hit]:
    """Every address where ``pattern`` starts; ``module`` restricts the search to one module's mappings."""
    hits: list[Hit] = []
    seen: set[int] = set()

    def wanted(path: str | None) -> bool:
        return module is None or module_matches(path, module)

    for addr in core.find_all(pattern):
        where, path = _where(core, addr)
        if wanted(path):
            hits.append(Hit(addr, where, "dump", path))
            seen.add(addr)
        if len(hits) >= MAX_HITS:
            return hits
    for f in core.files:
        if not wanted(f.path):
            continue
        seg = core.segment_at(f.start)
        if seg is not None and seg.filesz >= min(seg.memsz, f.end - seg.vaddr):
            continue  # dumped: already searched
        if not file_usable(core, f.path, f.path):
            continue  # another build than the one in the dump: its bytes would mislead
        try:
            with open(f.path, "rb") as fh:
                fh.seek(f.file_offset)
                data = fh.read(f.end - f.start)
        except OSError:
            continue
        pos = data.find(pattern)
        while pos >= 0:
            addr = f.start + pos
            if addr not in seen:
                where, path = _where(core, addr)
                hits.append(Hit(addr, where, "file", path))
                seen.add(addr)
            if len(hits) >= MAX_HITS:
                return hits
            pos = data.find(pattern, pos + 1)
    return sorted(hits, key=lambda h: h.address)


def has_module(dump: ElfCore | Minidump | WindowsKernelDump, module: str) -> bool:
    """True if ``module`` (a short name, file name or path) names one of the dump's modules."""
    if isinstance(dump, ElfCore):
        paths = [f.path for f in dump.files]
    elif is_minidump(dump):
        paths = [m.name for m in dump.modules]
    else:
        paths = [d.name for d in dump.drivers]
    return any(module_matches(p, module) for p in paths)


def search_memory(dump: Minidump | WindowsKernelDump, pattern: bytes, module: str | None = None) -> list[Hit]:
    """Every address of ``pattern`` in a minidump's or a kernel dump's memory (``module``: only in its image)."""
    hits: list[Hit] = []
    for start, size in dump.regions():
        for base, data, own in _chunks(dump, start, size, len(pattern)):
            at = data.find(pattern)
            while at != -1 and at < own and len(hits) < MAX_HITS:  # hits past ``own``: the next chunk's
                addr = base + at
                m = dump.module_at(addr)
                if module is None or (m is not None and module_matches(m.name, module)):
                    where = f"{short_name(m.name)}+{addr - m.base:#x}" if m else "memory"
                    hits.append(Hit(addr, where, "dump", m.name if m else None))
                at = data.find(pattern, at + 1)
    return hits


CHUNK = 1 << 20


def _chunks(
    dump: Minidump | WindowsKernelDump, start: int, size: int, overlap: int
) -> Iterator[tuple[int, bytes, int]]:
    """The readable parts of [start, start + size) as (address, bytes, own length), in pieces of up to
    1 MiB (4 KiB where the dump has holes), each running ``overlap - 1`` bytes past its own length into
    the next so that no hit falls between two."""
    at, end = start, start + size
    while at < end:
        n = min(CHUNK, end - at)
        try:
            data = dump.read(at, min(n + overlap - 1, end - at))
        except UnreadableMemory:
            step = 0x1000 - at % 0x1000
            n = min(step, end - at)
            try:
                data = dump.read(at, min(n + overlap - 1, end - at))
            except UnreadableMemory:
                try:
                    data = dump.read(at, n)  # the page is here, the next one is not
                except UnreadableMemory:
                    at += n
                    continue
        yield at, data, n
        at += n
