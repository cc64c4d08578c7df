"""Write small Windows kernel triage dumps for the tests (the way rust-minidump has minidump-synth).

A dump is a header (bug check code and parameters, machine, a context record
whose pc, sp and frame pointer are given), a triage header, a driver list with
names in a string pool, and the call-stack bytes: a frame-pointer chain
through the return addresses given.  32-bit (PAGEDUMP, x86) and 64-bit
(PAGEDU64, x86_64) layouts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SynthDump:
    """What the dump will say."""

    bits: int = 64
    code: int = 0xD1
    params: tuple[int, int, int, int] = (0, 0, 0, 0)
    drivers: list[tuple[str, int, int]] = field(default_factory=list)
    """(name, base, size)."""
    pc: int = 0
    returns: list[int] = field(default_factory=list)
    """The return addresses of the frames above the context, innermost first."""
    top_of_stack: int = 0
    dump_type: int = 4
    processors: int = 2
    stack_words: list[int] | None = None
    """The call stack's words from the context's sp up, as an x64 kernel leaves them (no frame-pointer
    chain: the frame pointer is 0); None: the chain through ``returns``."""

    def write(self, path: Path) -> Path:
        """Write the dump to ``path``."""
        b64 = self.bits == 64
        w = "Q" if b64 else "I"
        header_size = 0x2000 if b64 else 0x1000
        stack_at, drivers_at, strings_at = header_size + 0x1000, header_size + 0x2000, header_size + 0x4000
        # the call stack: frame n at top + 0x20 * n holds (saved fp, return address)
        top = self.top_of_stack or (0xFFFFE00000100000 if b64 else 0xF8900000)
        stack = bytearray(0x20 * (len(self.returns) + 1))
        for i, ret in enumerate(self.returns):
            at = 0x20 * i
            saved = top + 0x20 * (i + 1) if i + 1 < len(self.returns) else 0
            struct.pack_into(f"<{w}{w}", stack, at, saved, ret)
        fp, sp = top, top - 0x10
        if self.stack_words is not None:
            stack = bytearray(struct.pack(f"<{len(self.stack_words)}{w}", *self.stack_words))
            fp, sp = 0, top
        body = bytearray(strings_at + 0x1000)
        if b64:
            body[0:8] = b"PAGEDU64"
            struct.pack_into("<4sII", body, 4, b"DU64", 0xF, 19041)
            struct.pack_into("<III", body, 0x30, 0x8664, self.processors, self.code)
            struct.pack_into("<4Q", body, 0x40, *self.params)
            ctx = 0x348
            struct.pack_into("<Q", body, ctx + 120 + 8 * 4, sp)  # rsp
            struct.pack_into("<Q", body, ctx + 120 + 8 * 5, fp)  # rbp
            struct.pack_into("<Q", body, ctx + 248, self.pc)  # rip
            struct.pack_into("<I", body, 0xF98, self.dump_type)
            struct.pack_into("<Q", body, 0xFA8, 132760615181467095)  # SystemTime: 2021-09-14
            struct.pack_into("<Q", body, 0x1030, 7967053432)
            tri = [0, len(body), 0, ctx, 0xF00, 0, 0, 0, 0, 0, stack_at, len(stack), drivers_at,
                   len(self.drivers), strings_at, 0x1000, 0, 0xFFFFFFFF]  # fmt: skip
            struct.pack_into("<18IQIIQQIIIIII", body, header_size, *tri, top, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        else:
            body[0:8] = b"PAGEDUMP"
            struct.pack_into("<4sII", body, 4, b"DUMP", 0xF, 2600)
            struct.pack_into("<III", body, 0x20, 0x14C, self.processors, self.code)
            struct.pack_into("<4I", body, 0x2C, *self.params)
            ctx = 0x320
            struct.pack_into("<I", body, ctx + 180, fp)  # ebp
            struct.pack_into("<I", body, ctx + 184, self.pc)  # eip
            struct.pack_into("<I", body, ctx + 196, sp)  # esp
            struct.pack_into("<I", body, 0xF88, self.dump_type)
            tri = [0, len(body), 0, ctx, 0x7D0, 0, 0, 0, 0, 0, stack_at, len(stack), drivers_at,
                   len(self.drivers), strings_at, 0x1000, 0, 0xFFFFFFFF]  # fmt: skip
            struct.pack_into("<26I", body, header_size, *tri, top, 0, 0, 0, 0, 0, 0, 0)
        body[stack_at : stack_at + len(stack)] = stack
        name_at = strings_at
        entry = 144 if b64 else 76
        for i, (name, base, size) in enumerate(self.drivers):
            e = drivers_at + entry * i
            struct.pack_into("<I", body, e, name_at)
            if b64:
                struct.pack_into("<QQI", body, e + 8 + 48, base, base + 0x1000, size)
                struct.pack_into("<I", body, e + 8 + 120, 0x1234 + i)
                struct.pack_into("<I", body, e + 8 + 128, 0x5F000000 + i)
            else:
                struct.pack_into("<III", body, e + 4 + 24, base, base + 0x100, size)
                struct.pack_into("<II", body, e + 4 + 64, 0x1234 + i, 0x48000000 + i)
            raw = name.encode("utf-16-le")
            struct.pack_into("<I", body, name_at, len(name))
            body[name_at + 4 : name_at + 4 + len(raw)] = raw
            name_at += 4 + len(raw) + 2
        path.write_bytes(bytes(body))
        return path


def seed_d1(bits: int = 32) -> SynthDump:
    """The seed's crash: BugCheck D1, {e14c0008, 2, 0, f799f579} with myfault.sys at f799f000 (x86).

    The 64-bit one puts myfault.sys at the same offsets of a kernel address.
    """
    if bits == 32:
        nt, myfault = 0x804D7000, 0xF799F000
        return SynthDump(
            bits=32,
            code=0xD1,
            params=(0xE14C0008, 2, 0, myfault + 0x579),
            drivers=[
                ("\\WINDOWS\\system32\\ntoskrnl.exe", nt, 0x214600),
                ("\\??\\C:\\myfault.sys", myfault, 0x1000),
            ],
            pc=myfault + 0x579,
            returns=[myfault + 0x4A2, nt + 0x4F3A, nt + 0x6EA1],
        )
    nt, myfault = 0xFFFFF80002A00000, 0xFFFFF88004E9F000
    return SynthDump(
        bits=64,
        code=0xD1,
        params=(0xFFFFF8A00E14C008, 2, 0, myfault + 0x579),
        drivers=[
            ("\\SystemRoot\\system32\\ntoskrnl.exe", nt, 0x5DF000),
            ("\\??\\C:\\myfault.sys", myfault, 0x7000),
        ],
        pc=myfault + 0x579,
        returns=[myfault + 0x4A2, nt + 0x8B2E9, nt + 0x2C5A1],
    )


KERNEL = 0xFFFFF80000000000
DATA_VA, STACK_VA, BIG_VA = KERNEL + 0x5000, KERNEL + 0x6000, KERNEL + 0x200000
"""Virtual addresses of the data page (module list, names), the stack page, and a 2 MiB large page."""
NT, MYFAULT = 0xFFFFF80002A00000, 0xFFFFF88004E9F000


def kldr_entry64(
    page: bytearray, page_va: int, at: int, nxt: int, base: int, size: int, name: str, name_at: int,
    checksum: int, stamp: int,
) -> None:  # fmt: skip
    """Write a 64-bit KLDR_DATA_TABLE_ENTRY at ``at`` in ``page`` (mapped at ``page_va``): its link
    to ``nxt``, the image's range, its name (UTF-16, stored at ``name_at``), checksum and time stamp."""
    raw = name.encode("utf-16-le")
    page[name_at : name_at + len(raw)] = raw
    struct.pack_into("<Q", page, at, nxt)
    struct.pack_into("<QQI", page, at + 48, base, base + 0x1000, size)
    struct.pack_into("<HHxxxxQ", page, at + 72, len(raw), len(raw), page_va + name_at)
    struct.pack_into("<I", page, at + 120, checksum)
    struct.pack_into("<I", page, at + 128, stamp)


def paged_dump(path: Path, kind: str = "full", loop: bool = False, filler: int = 0) -> Path:
    """A 64-bit x86_64 kernel dump holding physical pages, with page tables that map the kernel
    addresses above: ``kind`` full (DumpType 1, memory runs) or bitmap (DumpType 6, an SDMP bitmap).

    Physical pages: 1 PML4, 2 PDPT, 3 PD, 4 PT, 5 data, 6 stack, 0x200 the first page of a 2 MiB page.
    PsLoadedModuleList holds ntoskrnl.exe and myfault.sys (with ``loop``, myfault's entry points back
    at itself instead of the head). The bug check is the seed's D1 in myfault; the stack holds a return
    address into myfault and one into the kernel. ``filler`` more pages (from 8 on, mapped by nothing)
    sit between them and page 0x200, so that every later page's place in the file depends on them.
    """
    pages: dict[int, bytearray] = {pfn: bytearray(0x1000) for pfn in (1, 2, 3, 4, 5, 6, 0x200)}
    for pfn in range(8, 8 + filler):
        pages[pfn] = bytearray(b"F" * 0x1000)

    def index(va: int, shift: int) -> int:
        return (va >> shift) & 0x1FF

    struct.pack_into("<Q", pages[1], 8 * index(KERNEL, 39), 0x2000 | 3)
    struct.pack_into("<Q", pages[2], 8 * index(KERNEL, 30), 0x3000 | 3)
    struct.pack_into("<Q", pages[3], 8 * index(KERNEL, 21), 0x4000 | 3)
    struct.pack_into("<Q", pages[3], 8 * index(BIG_VA, 21), 0x200000 | 0x83)  # present, writable, large
    struct.pack_into("<Q", pages[4], 8 * index(DATA_VA, 12), 0x5000 | 3)
    struct.pack_into("<Q", pages[4], 8 * index(STACK_VA, 12), 0x6000 | 3)
    pages[0x200][0x10:0x18] = b"BIGPAGE!"
    data = pages[5]
    head, first, second = DATA_VA, DATA_VA + 0x100, DATA_VA + 0x200
    struct.pack_into("<Q", data, 0, first)
    for at, nxt, base, size, name in (
        (0x100, second, NT, 0x5DF000, "\\SystemRoot\\system32\\ntoskrnl.exe"),
        (0x200, second if loop else head, MYFAULT, 0x7000, "\\??\\C:\\myfault.sys"),
    ):
        kldr_entry64(data, DATA_VA, at, nxt, base, size, name, 0x400 + at * 2, 0xABCD, 0x5F5F5F5F)
    struct.pack_into("<QQQ", pages[6], 0x100, MYFAULT + 0x4A2, 0x1234, NT + 0x8B2E9)

    header = bytearray(0x2000)
    header[0:8] = b"PAGEDU64"
    struct.pack_into("<4sII", header, 4, b"DU64", 0xF, 19041)
    struct.pack_into("<QQQQ", header, 0x10, 0x1000, 0, head, 0)
    struct.pack_into("<III", header, 0x30, 0x8664, 1, 0xD1)
    struct.pack_into("<4Q", header, 0x40, 0xFFFFF8A00E14C008, 2, 0, MYFAULT + 0x579)
    ctx = 0x348
    struct.pack_into("<Q", header, ctx + 120 + 8 * 4, STACK_VA + 0x100)  # rsp
    struct.pack_into("<Q", header, ctx + 248, MYFAULT + 0x579)  # rip
    order = sorted(pages)
    if kind == "full":
        struct.pack_into("<I", header, 0xF98, 1)
        runs = [(1, 6), *([(8, filler)] if filler else []), (0x200, 1)]
        struct.pack_into("<IxxxxQ", header, 0x88, len(runs), len(pages))
        for i, (base, count) in enumerate(runs):
            struct.pack_into("<QQ", header, 0x98 + 16 * i, base, count)
        body = bytes(header) + b"".join(bytes(pages[p]) for p in order)
    else:
        struct.pack_into("<I", header, 0xF98, 6)
        bits = 0x201
        bitmap = bytearray((bits + 7) // 8)
        for pfn in order:
            bitmap[pfn // 8] |= 1 << (pfn % 8)
        first_page = 0x3000
        sdmp = bytearray(first_page - 0x2000)
        sdmp[0:8] = b"SDMPDUMP"
        struct.pack_into("<QQQ", sdmp, 0x20, first_page, len(order), bits)
        sdmp[0x38 : 0x38 + len(bitmap)] = bitmap
        body = bytes(header) + bytes(sdmp) + b"".join(bytes(pages[p]) for p in order)
    path.write_bytes(body)
    return path


KERNEL32, DATA32, STACK32 = 0xF7000000, 0xF7005000, 0xF7006000
SEED_VM = {
    "MmNumberOfPhysicalPages": 262010,
    "MmAvailablePages": 166628,
    "MmResidentAvailablePages": 199386,
    "MmAllocatedNonPagedPool": 49746,
    "MmMaximumNonPagedPoolInBytes": 51967 * 4096,
    "MmSizeOfPagedPoolInBytes": 70656 * 4096,
    "MmTotalCommittedPages": 98304,
    "MmTotalCommitLimit": 655360,
}
"""The seed's !vm (its Physical Memory, Available, ResAvail, NonPagedPool Usage and Max, PagedPool
Maximum), and a commit charge and limit the seed does not show."""
KDBG_AT = {"MmNumberOfPhysicalPages": 248, "MmAvailablePages": 424, "MmResidentAvailablePages": 432,
           "MmAllocatedNonPagedPool": 592, "MmMaximumNonPagedPoolInBytes": 256, "MmSizeOfPagedPoolInBytes": 320,
           "MmTotalCommittedPages": 336, "MmTotalCommitLimit": 328}  # fmt: skip
"""KDDEBUGGER_DATA64's offsets, written out here from the published header (not taken from notmyfault)."""
NT32, MYFAULT32 = 0x804D7000, 0xF799F000


def paged_dump_32(path: Path, pae: bool = True) -> Path:
    """The seed's own machine: a 32-bit x86 full dump (Windows XP) with PAE or classic page tables,
    a module list of ntoskrnl.exe and myfault.sys, and the seed's D1 with an EBP chain on the stack.

    Physical pages: 1 top table (PDPT with PAE, else the page directory), 2 PAE's page directory,
    3 page table, 5 data, 6 stack.
    """
    pages: dict[int, bytearray] = {pfn: bytearray(0x1000) for pfn in (1, 2, 3, 5, 6)}
    if pae:
        struct.pack_into("<Q", pages[1], 8 * (KERNEL32 >> 30), 0x2000 | 1)
        struct.pack_into("<Q", pages[2], 8 * ((KERNEL32 >> 21) & 0x1FF), 0x3000 | 3)
        struct.pack_into("<Q", pages[3], 8 * ((DATA32 >> 12) & 0x1FF), 0x5000 | 3)
        struct.pack_into("<Q", pages[3], 8 * ((STACK32 >> 12) & 0x1FF), 0x6000 | 3)
    else:
        struct.pack_into("<I", pages[1], 4 * (KERNEL32 >> 22), 0x3000 | 3)
        struct.pack_into("<I", pages[3], 4 * ((DATA32 >> 12) & 0x3FF), 0x5000 | 3)
        struct.pack_into("<I", pages[3], 4 * ((STACK32 >> 12) & 0x3FF), 0x6000 | 3)
    data = pages[5]
    head, first, second = DATA32, DATA32 + 0x100, DATA32 + 0x200
    struct.pack_into("<I", data, 0, first)
    for at, nxt, base, size, name in (
        (0x100, second, NT32, 0x214600, "\\WINDOWS\\system32\\ntoskrnl.exe"),
        (0x200, head, MYFAULT32, 0x1000, "\\??\\C:\\myfault.sys"),
    ):
        name_at = 0x400 + at * 2
        raw = name.encode("utf-16-le")
        data[name_at : name_at + len(raw)] = raw
        struct.pack_into("<I", data, at, nxt)
        struct.pack_into("<III", data, at + 24, base, base + 0x100, size)
        struct.pack_into("<HHI", data, at + 36, len(raw), len(raw), DATA32 + name_at)
        struct.pack_into("<II", data, at + 64, 0x1234, 0x48025EAB)
    # the KDBG (at 0xA00: the tag, its size, and where the memory manager's variables are, as
    # sign-extended 64-bit addresses) and the variables (at 0xD00) with the seed's !vm numbers
    struct.pack_into("<4sI", data, 0xA00 + 16, b"KDBG", 0x290)
    for i, (name, value) in enumerate(SEED_VM.items()):
        struct.pack_into("<Q", data, 0xA00 + KDBG_AT[name], 0xFFFFFFFF00000000 | DATA32 + 0xD00 + 4 * i)
        struct.pack_into("<I", data, 0xD00 + 4 * i, value)
    # the EBP chain: [ebp] = caller's ebp, [ebp + 4] = return address
    struct.pack_into("<II", pages[6], 0x100, STACK32 + 0x120, MYFAULT32 + 0x4A2)
    struct.pack_into("<II", pages[6], 0x120, STACK32 + 0x140, NT32 + 0x4F3A)
    struct.pack_into("<II", pages[6], 0x140, 0, NT32 + 0x6EA1)

    header = bytearray(0x1000)
    header[0:8] = b"PAGEDUMP"
    struct.pack_into("<4sII", header, 4, b"DUMP", 0xF, 2600)
    struct.pack_into("<IIII", header, 0x10, 0x1000, 0, head, 0)
    struct.pack_into("<III", header, 0x20, 0x14C, 1, 0xD1)
    struct.pack_into("<4I", header, 0x2C, 0xE14C0008, 2, 0, MYFAULT32 + 0x579)
    header[0x5C] = 1 if pae else 0
    struct.pack_into("<I", header, 0x60, DATA32 + 0xA00)  # KdDebuggerDataBlock
    ctx = 0x320
    struct.pack_into("<I", header, ctx + 180, STACK32 + 0x100)  # ebp
    struct.pack_into("<I", header, ctx + 184, MYFAULT32 + 0x579)  # eip
    struct.pack_into("<I", header, ctx + 196, STACK32 + 0xF0)  # esp
    struct.pack_into("<I", header, 0xF88, 1)  # a full dump
    runs = [(1, 3), (5, 2)]
    struct.pack_into("<II", header, 0x64, len(runs), 5)
    for i, (base, count) in enumerate(runs):
        struct.pack_into("<II", header, 0x6C + 8 * i, base, count)
    path.write_bytes(bytes(header) + b"".join(bytes(pages[p]) for p in sorted(pages)))
    return path


class X64Memory:
    """Physical memory being laid out for an x86_64 machine: pages mapped at virtual addresses
    through four-level page tables built as they are needed (page 1 is the PML4).

    With ``arm64``, the tables are ARM64's (4 KiB granule, 48-bit addresses): table and page
    descriptors 0b11, pages with the access flag and PXN set (attribute bits the walk must mask off),
    and ``map_block`` maps 2 MiB blocks (descriptor 0b01)."""

    def __init__(self, arm64: bool = False) -> None:
        self.pages: dict[int, bytearray] = {0: bytearray(0x1000), 1: bytearray(0x1000)}
        self.cr3 = 0x1000
        self.arm64 = arm64
        self.table_bits = 3
        self.page_bits = 3 | 1 << 10 | 1 << 53 if arm64 else 3

    def map_block(self, va: int, data: bytes) -> None:
        """Map 2 MiB at ``va`` (2 MiB aligned) as one large page (x86_64) or block (ARM64) over new,
        aligned physical pages holding ``data``."""
        first = (max(self.pages) + 1 + 511) // 512 * 512
        for i in range(512):
            self.pages[first + i] = bytearray(data[0x1000 * i : 0x1000 * (i + 1)].ljust(0x1000, b"\0"))
        table = self._table(va, (39, 30), create=True)
        bits = 1 | 1 << 10 if self.arm64 else 0x83
        struct.pack_into("<Q", self.pages[table], 8 * ((va >> 21) & 0x1FF), first << 12 | bits)

    def _table(self, va: int, shifts: tuple[int, ...], create: bool = False) -> int:
        """The page number of the table that maps ``va`` after the levels in ``shifts`` (with
        ``create``, making the tables that are missing)."""
        table = 1
        for shift in shifts:
            slot = 8 * ((va >> shift) & 0x1FF)
            (entry,) = struct.unpack_from("<Q", self.pages[table], slot)
            if not entry & 1:
                if not create:
                    raise KeyError(f"{va:#x} is not mapped")
                entry = self._new() << 12 | self.table_bits
                struct.pack_into("<Q", self.pages[table], slot, entry)
            table = entry >> 12 & 0xFFFFFFFFF
        return table

    def pte_address(self, va: int) -> int:
        """The physical address of the page-table entry that maps the page at ``va``."""
        return self._table(va, (39, 30, 21)) << 12 | 8 * ((va >> 12) & 0x1FF)

    def physical_address(self, va: int) -> int:
        """The physical address ``va`` maps to."""
        at = self.pte_address(va)
        (entry,) = struct.unpack_from("<Q", self.pages[at >> 12], at & 0xFFF)
        return (entry >> 12 & 0xFFFFFFFFF) << 12 | va & 0xFFF

    def _new(self) -> int:
        pfn = max(self.pages) + 1
        self.pages[pfn] = bytearray(0x1000)
        return pfn

    def map(self, va: int, data: bytes) -> None:
        """Map ``data`` at ``va`` (page-aligned), a new physical page for each of its pages."""
        assert va % 0x1000 == 0
        for at in range(0, len(data), 0x1000):
            page_va = va + at
            table = self._table(page_va, (39, 30, 21), create=True)
            pfn = self._new()
            self.pages[pfn][: len(data[at : at + 0x1000])] = data[at : at + 0x1000]
            struct.pack_into(
                "<Q", self.pages[table], 8 * ((page_va >> 12) & 0x1FF), pfn << 12 | self.page_bits
            )

    def physical(self) -> bytes:
        """All physical memory, page 0 on."""
        blank = bytes(0x1000)
        return b"".join(bytes(self.pages.get(p, blank)) for p in range(max(self.pages) + 1))


def module_list(memory: X64Memory, va: int, modules: list[tuple[str, int, int]]) -> int:
    """Write a PsLoadedModuleList of (name, base, size) at ``va`` (one page); return its head."""
    data = bytearray(0x1000)
    entries = [va + 0x100 * (i + 1) for i in range(len(modules))]
    struct.pack_into("<Q", data, 0, entries[0] if entries else va)
    for i, (name, base, size) in enumerate(modules):
        nxt = entries[i + 1] if i + 1 < len(entries) else va
        kldr_entry64(
            data, va, 0x100 * (i + 1), nxt, base, size, name, 0x800 + 0x80 * i, 0xC0DE + i, 0x4B0A0000 + i
        )
    memory.map(va, bytes(data))
    return va


X64_CONTEXT_ORDER = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                     "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")  # fmt: skip


def x64_full_dump(
    path: Path,
    physical: bytes,
    cr3: int,
    modules_head: int,
    regs: dict[str, int],
    code: int,
    params: tuple[int, int, int, int],
    machine: int = 0x8664,
) -> Path:
    """A 64-bit full kernel dump (DumpType 1) of ``physical`` as one run, with every register of
    ``regs`` in its context record (x86_64's, or ARM64's with ``machine`` 0xAA64)."""
    header = bytearray(0x2000)
    header[0:8] = b"PAGEDU64"
    struct.pack_into("<4sII", header, 4, b"DU64", 0xF, 19041)
    struct.pack_into("<QQQQ", header, 0x10, cr3, 0, modules_head, 0)
    struct.pack_into("<III", header, 0x30, machine, 1, code)
    struct.pack_into("<4Q", header, 0x40, *params)
    ctx = 0x348
    if machine == 0xAA64:  # ARM64's CONTEXT: x0-x28, fp, lr, sp, pc from offset 8
        for name, value in regs.items():
            at = {"fp": 240, "lr": 248, "sp": 256, "pc": 264}.get(name) or 8 + 8 * int(name[1:])
            struct.pack_into("<Q", header, ctx + at, value)
    else:
        for i, name in enumerate(X64_CONTEXT_ORDER):
            struct.pack_into("<Q", header, ctx + 120 + 8 * i, regs.get(name, 0))
        struct.pack_into("<I", header, ctx + 68, regs.get("eflags", 0))
    struct.pack_into("<I", header, 0xF98, 1)
    pages = len(physical) // 0x1000
    struct.pack_into("<IxxxxQ", header, 0x88, 1, pages)
    struct.pack_into("<QQ", header, 0x98, 0, pages)
    path.write_bytes(bytes(header) + physical)
    return path


ARM64_STACK, ARM64_BLOCK = 0xFFFFF88000106000, 0xFFFFF80000200000


def paged_dump_arm64(path: Path) -> Path:
    """An ARM64 full kernel dump: ARM64 page tables (pages and a 2 MiB block), a module list of
    ntoskrnl.exe and myfault.sys, the seed's D1 in myfault at ``str w1, [x0]``, and a frame-pointer
    chain (fp, lr) through myfault and the kernel. The block holds "BLOCK!!!" at +0x123456."""
    memory = X64Memory(arm64=True)
    pc, sp, fp = MYFAULT + 0x578, ARM64_STACK + 0xF0, ARM64_STACK + 0x100
    code = bytearray(0x1000)
    struct.pack_into("<I", code, 0x578, 0xB9000001)  # str w1, [x0]
    memory.map(MYFAULT, bytes(code))
    stack = bytearray(0x1000)
    struct.pack_into("<QQ", stack, 0x100, ARM64_STACK + 0x120, MYFAULT + 0x4A4)
    struct.pack_into("<QQ", stack, 0x120, 0, NT + 0x8B2E8)
    memory.map(ARM64_STACK, bytes(stack))
    block = bytearray(0x200000)
    block[0x123456 : 0x123456 + 8] = b"BLOCK!!!"
    memory.map_block(ARM64_BLOCK, bytes(block))
    head = module_list(
        memory,
        DATA_VA,
        [("\\SystemRoot\\system32\\ntoskrnl.exe", NT, 0x5DF000), ("\\??\\C:\\myfault.sys", MYFAULT, 0x7000)],
    )
    regs = {"x0": 0, "x1": 0x2A, "fp": fp, "lr": MYFAULT + 0x4A4, "sp": sp, "pc": pc}
    return x64_full_dump(path, memory.physical(), memory.cr3, head, regs, 0xD1, (0, 2, 1, pc), machine=0xAA64)
