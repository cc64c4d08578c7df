"""``!vm`` for Windows kernel dumps: the memory manager's counters, read where the KDBG points.

The KDBG (KdDebuggerDataBlock) holds the addresses of the memory manager's
variables; the values are read from the dump's memory. Windows XP to 7 name
them all; Windows 8 and later leave most out (0) and keep the KDBG itself
encoded in memory, so a dump of theirs gives only what it names, and says so.

The warning is the seed's: nonpaged pool in use at 90% or more of its
maximum is "Excessive NonPaged Pool Usage" (the picture of a driver leaking
nonpaged pool, as myfault.sys does).
"""

from __future__ import annotations

from dataclasses import dataclass

from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.windump import PAGE, WindowsKernelDump

EXCESSIVE = 0.9
"""Nonpaged pool in use at this share of its maximum or more is excessive."""

COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("Physical Memory", "MmNumberOfPhysicalPages", "pages"),
    ("Available Pages", "MmAvailablePages", "pages"),
    ("ResAvail Pages", "MmResidentAvailablePages", "pages"),
    ("NonPagedPool Usage", "MmAllocatedNonPagedPool", "pages"),
    ("NonPagedPool Max", "MmMaximumNonPagedPoolInBytes", "bytes"),
    ("PagedPool Maximum", "MmSizeOfPagedPoolInBytes", "bytes"),
    ("Committed pages", "MmTotalCommittedPages", "pages"),
    ("Commit limit", "MmTotalCommitLimit", "pages"),
)
"""(WinDbg's label, the KDBG field naming the variable, whether it counts pages or bytes)."""


@dataclass(frozen=True)
class WindowsVm:
    """The counters (in pages; None where the dump does not give them), warnings and notes."""

    counters: dict[str, int | None]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]


def windows_vm(kd: WindowsKernelDump) -> WindowsVm:
    """Read the memory manager's counters from the dump."""
    kdbg = kd.kdbg
    notes: list[str] = []
    if not kdbg:
        notes.append(kd.kdbg_problem or "the dump holds no KDBG")
    word = kd.bits // 8
    counters: dict[str, int | None] = {}
    unnamed, unreadable = [], []
    for label, field, unit in COUNTERS:
        at = kdbg.get(field, 0)
        value = None
        if at:
            try:
                # page counts are 32-bit on every Windows (PFN_COUNT) or a word of which the low 32
                # bits are the count; byte counts are a word (SIZE_T)
                raw = kd.read(at, 4 if unit == "pages" else word)
                value = int.from_bytes(raw, "little")
                if unit == "bytes":
                    value //= PAGE
            except UnreadableMemory:
                unreadable.append(field)
        elif kdbg:
            unnamed.append(field)
        counters[label] = value
    if unnamed:
        notes.append(f"the KDBG does not name {', '.join(unnamed)} (Windows 8 and later leave them out)")
    if unreadable:
        notes.append(f"the dump does not hold {', '.join(unreadable)}")
    warnings = []
    used, most = counters["NonPagedPool Usage"], counters["NonPagedPool Max"]
    if used is not None and most and used >= EXCESSIVE * most:
        warnings.append("Excessive NonPaged Pool Usage")
    return WindowsVm(counters, tuple(warnings), tuple(notes))
