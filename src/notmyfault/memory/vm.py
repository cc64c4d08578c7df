"""``!vm``: the memory of the process at the time of the dump, by kind, with warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

from notmyfault.dumps.elfcore import PF_W, PF_X, ElfCore
from notmyfault.memory.heap import HeapResult, main_heap
from notmyfault.memory.pool import TagUsage

EXCESSIVE_NONPAGED = 0.25
"""Tagged nonpaged (locked) blocks above this share of the dumped memory draw a warning."""


@dataclass(frozen=True)
class Region:
    """One mapping, classified."""

    start: int
    end: int
    perms: str
    kind: str
    """stack, heap, file, anonymous."""
    name: str | None
    dumped: int


@dataclass(frozen=True)
class VmSummary:
    """Totals by kind, the biggest regions, and warnings."""

    virtual: int
    dumped: int
    file_backed: int
    anonymous: int
    stacks: int
    heap: int
    executable: int
    writable: int
    pool_paged: int
    pool_nonpaged: int
    biggest: tuple[Region, ...]
    warnings: tuple[str, ...] = field(default=())


def _regions(core: ElfCore, heap_at: int | None) -> list[Region]:
    stack_sps = [t.sp for t in core.threads if t.sp is not None]
    files = core.files
    out = []
    for s in core.segments:
        f = next((m for m in files if m.start <= s.vaddr < m.end), None)
        if f is not None:
            kind, name = "file", f.path
        elif any(s.vaddr <= sp < s.end for sp in stack_sps):
            kind, name = "stack", None
        elif s.vaddr == heap_at:
            kind, name = "heap", "[heap] (glibc's main heap: its chunks chain from start to end)"
        else:
            kind, name = "anonymous", None
        # what the file holds of the segment: none past its end, in a truncated core
        present = max(0, min(s.filesz, core.size - s.offset))
        out.append(Region(s.vaddr, s.end, s.perms, kind, name, present))
    return out


def vm_summary(
    core: ElfCore, pools: list[TagUsage], top: int = 10, heap: HeapResult | None = None
) -> VmSummary:
    """Summarise the process's memory; warn when locked pool blocks dominate.

    ``heap`` is glibc's main heap when the caller has walked it already (else it is walked here).
    """
    if heap is None:
        found = main_heap(core)
        heap_at = found[0].vaddr if found else None
    else:
        heap_at = heap.heap.start if heap.heap else None
    regions = _regions(core, heap_at)

    def total(kind: str) -> int:
        return sum(r.end - r.start for r in regions if r.kind == kind)

    dumped = sum(r.dumped for r in regions)
    nonpaged = sum(u.bytes for u in pools if u.pool == "nonpaged")
    paged = sum(u.bytes for u in pools if u.pool == "paged")
    warnings = []
    if dumped and nonpaged / dumped > EXCESSIVE_NONPAGED:
        warnings.append(
            f"Excessive NonPaged Pool Usage: {nonpaged} bytes of locked (mlocked) tagged blocks, "
            f"{100 * nonpaged / dumped:.0f}% of the dumped memory"
        )
    if dumped and paged / dumped > EXCESSIVE_NONPAGED:
        warnings.append(
            f"Excessive Paged Pool Usage: {paged} bytes of tagged blocks, {100 * paged / dumped:.0f}% of the dumped memory"
        )
    return VmSummary(
        virtual=sum(r.end - r.start for r in regions),
        dumped=dumped,
        file_backed=total("file"),
        anonymous=total("anonymous") + total("heap") + total("stack"),
        stacks=total("stack"),
        heap=total("heap"),
        executable=sum(s.memsz for s in core.segments if s.flags & PF_X),
        writable=sum(s.memsz for s in core.segments if s.flags & PF_W),
        pool_paged=paged,
        pool_nonpaged=nonpaged,
        biggest=tuple(sorted(regions, key=lambda r: r.start - r.end)[:top]),
        warnings=tuple(warnings),
    )
