"""``!poolused``: tagged leak blocks in a dump, by tag (the layout is docs/pool-header.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import UnreadableMemory

MAGIC = b"MYFAULT1"
POOL_NAMES = {1: "paged", 2: "nonpaged", 3: "kernel", 4: "shared"}
_FIELDS = struct.Struct("<4sIQII")


@dataclass(frozen=True)
class TagUsage:
    """Blocks and bytes of one tag in one pool."""

    tag: str
    pool: str
    blocks: int
    bytes: int
    pids: tuple[int, ...]


def pool_usage(core: ElfCore, page: int = 4096) -> list[TagUsage]:
    """Every pool header at the start of a page of the dump, grouped by tag and pool, most bytes first."""
    found: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for addr in core.find_all(MAGIC):
        if addr % page:
            continue
        try:
            tag, pool, size, _seq, pid = _FIELDS.unpack(core.read(addr + 8, _FIELDS.size))
            name = tag.decode("ascii")
        except (UnreadableMemory, UnicodeDecodeError):
            continue
        found.setdefault((name, POOL_NAMES.get(pool, str(pool))), []).append((size, pid))
    usage = [
        TagUsage(tag, pool, len(items), sum(s for s, _ in items), tuple(sorted({p for _, p in items})))
        for (tag, pool), items in found.items()
    ]
    return sorted(usage, key=lambda u: (-u.bytes, u.tag))
