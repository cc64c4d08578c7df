"""Windows kernel crash dumps (``PAGEDUMP`` 32-bit, ``PAGEDU64`` 64-bit): the seed's own kind of dump.

What is read: the header (bug check code and its four parameters, machine,
processors, versions, dump type, system time and uptime), the context record
(the crash's registers) and the exception record; and for triage (small
memory) dumps, which carry no page tables, everything else they hold: the
driver list with names from the string pool, the call-stack bytes, the data
blocks and the data page, which together are the memory :meth:`read` serves.

Full and bitmap dumps hold physical memory (in runs, or pages named by a
bitmap); their virtual memory is read through the page tables from
DirectoryTableBase (x86_64's and ARM64's four levels; x86's three with
PAE, or two without), and the module list by walking PsLoadedModuleList.

Layouts as WinDbg's dump header (Microsoft's public headers and the
format's open-source readers agree on them); every offset and count is checked
against the file before it is followed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import struct
from dataclasses import dataclass
from functools import cached_property

from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.mapped import MappedDump
from notmyfault.dumps.minidump import CONTEXT_LAYOUTS, Image, context_pointers, decode_context
from notmyfault.dumps.pe import PeImage

MAGIC32, MAGIC64 = b"PAGEDUMP", b"PAGEDU64"
HEADER_SIZE = {32: 0x1000, 64: 0x2000}
MACHINES = {0x14C: "x86", 0x8664: "x86_64", 0xAA64: "aarch64", 0x1C4: "arm"}
DUMP_TYPES = {
    1: "full",
    2: "summary",
    3: "header only",
    4: "triage (small memory dump)",
    5: "bitmap full (complete memory dump)",
    6: "bitmap kernel (kernel memory dump)",
    7: "automatic",
}
TRIAGE = 4
FULL, BITMAP_FULL, BITMAP_KERNEL = 1, 5, 6
PAGE = 0x1000
PTE_ADDRESS = 0x000FFFFFFFFFF000
PRESENT, LARGE = 1, 1 << 7
ARM64_ADDRESS, ARM64_TABLE = 0x0000FFFFFFFFF000, 1 << 1
"""ARM64 descriptors: the output address is bits 47:12 (above are attributes); bit 1 set is a table
(or, at the last level, a page), clear a block."""
MAX_RUNS, MAX_RUNS_32 = 42, 86
"""A full dump's run list lives in the header's 700-byte PhysicalMemoryBlock: at most 42 runs fit
(64-bit runs of 16 bytes after a 16-byte count), or 86 (32-bit: 8 bytes after 8)."""
MAX_DRIVERS = 4096
MAX_MAPPINGS = 1 << 22
"""The page-table walk for regions() stops with an error past this many mappings (16 GiB of 4 KiB pages)."""
MAX_BLOCKS = 1 << 16
KDBG_FIELDS = {
    "KernBase": 24,
    "PsLoadedModuleList": 72,
    "MmNumberOfPhysicalPages": 248,
    "MmMaximumNonPagedPoolInBytes": 256,
    "MmSizeOfPagedPoolInBytes": 320,
    "MmTotalCommitLimit": 328,
    "MmTotalCommittedPages": 336,
    "MmAvailablePages": 424,
    "MmResidentAvailablePages": 432,
    "MmAllocatedNonPagedPool": 592,
}
"""Where KDDEBUGGER_DATA64 (the KDBG, on 32- and 64-bit Windows alike) keeps the addresses of the
kernel's variables: after its 24-byte header (list links, the 'KDBG' tag, its size)."""
KDBG_MAX = 0x1000


@dataclass(frozen=True)
class Driver(Image):
    """A loaded kernel module: from a triage dump's driver list, or from PsLoadedModuleList."""


@dataclass(frozen=True)
class _Block:
    start: int
    size: int
    offset: int


@dataclass(frozen=True)
class Thread:
    """The crashing processor's context as a thread (kernel dumps record one)."""

    tid: int
    regs: dict[str, int]
    pc: int | None
    sp: int | None
    fp: int | None


class WindowsKernelDump(MappedDump):
    """A Windows kernel crash dump, opened for reading (a context manager)."""

    def __init__(self, path: str) -> None:
        """Open ``path`` and check its signature and header size (DumpError if they are bad)."""
        super().__init__(path, 8)
        magic = self._bytes(0, 8, "the signature")
        if magic not in (MAGIC32, MAGIC64):
            raise DumpError(f"{self.path} is not a Windows kernel dump (no PAGEDUMP or PAGEDU64 signature)")
        self.bits = 64 if magic == MAGIC64 else 32
        if self.size < HEADER_SIZE[self.bits]:
            raise DumpError(
                f"{self.path} is truncated: {self.size} bytes, less than the {HEADER_SIZE[self.bits]}-byte "
                f"header of a {self.bits}-bit kernel dump"
            )
        h = self.header
        for name, ok in (
            ("MajorVersion", h["MajorVersion"] in (0xF, 0xC)),  # a free or a checked build
            ("MachineImageType", h["MachineImageType"] in MACHINES),
            ("DumpType", h["DumpType"] in DUMP_TYPES),
            ("NumberProcessors", 1 <= h["NumberProcessors"] <= 4096),
        ):
            if not ok:  # random bytes after the signature made garbage buckets in a fleet
                raise DumpError(
                    f"{self.path} has a Windows kernel dump signature but no such header "
                    f"({name} is {h[name]:#x}): corrupt, or not a dump"
                )

    @property
    def truncation(self) -> str | None:
        """None for a whole dump; else one line: the file is shorter than the header's
        RequiredDumpSpace (the size the writer meant). Triage dumps are not checked: their field
        counts more than the file holds (rizin's arm64 triage dump: 1447700 for a 1216428-byte file)."""
        if self.header["DumpType"] == TRIAGE:  # the header was read and checked when it was opened
            return None
        required = self.header["RequiredDumpSpace"]
        if not self.size < required <= 1 << 50:  # past a petabyte: the field is garbage, not a size
            return None
        return (
            f"the dump is truncated: the file ends at {self.size} bytes where its header says "
            f"{required} were written"
        )

    # ------------------------------------------------------------- header

    @cached_property
    def header(self) -> dict[str, int]:
        """The header's numeric fields, by their WinDbg names."""
        if self.bits == 64:
            major, minor, dtb, pfn, modules, processes, machine, cpus, code = self._unpack(
                "<IIQQQQIII", 8, "the header"
            )
            params = self._unpack("<4Q", 0x40, "the bug check parameters")
            (kdbg,) = self._unpack("<Q", 0x80, "the header")
            (dump_type,) = self._unpack("<I", 0xF98, "the dump type")
            required, system_time = self._unpack("<QQ", 0xFA0, "the header")
            (uptime,) = self._unpack("<Q", 0x1030, "the header")
            _fields, secondary, product, suite, _writer = self._unpack("<IIIII", 0x1038, "the header")
        else:
            major, minor, dtb, pfn, modules, processes, machine, cpus, code = self._unpack(
                "<9I", 8, "the header"
            )
            params = self._unpack("<4I", 0x2C, "the bug check parameters")
            (kdbg,) = self._unpack("<I", 0x60, "the header")
            dump_type, _fields, secondary, product, suite, _writer, required = self._unpack(
                "<6IQ", 0xF88, "the header"
            )
            uptime, system_time = self._unpack("<QQ", 0xFB8, "the header")
        return {
            "MajorVersion": major,
            "MinorVersion": minor,
            "DirectoryTableBase": dtb,
            "PfnDataBase": pfn,
            "PsLoadedModuleList": modules,
            "PsActiveProcessHead": processes,
            "MachineImageType": machine,
            "NumberProcessors": cpus,
            "BugCheckCode": code,
            "BugCheckParameter1": params[0],
            "BugCheckParameter2": params[1],
            "BugCheckParameter3": params[2],
            "BugCheckParameter4": params[3],
            "KdDebuggerDataBlock": kdbg,
            "DumpType": dump_type,
            "RequiredDumpSpace": required,
            "SystemTime": system_time,
            "SystemUpTime": uptime,
            "SecondaryDataState": secondary,
            "ProductType": product,
            "SuiteMask": suite,
        }

    @property
    def bugcheck(self) -> tuple[int, tuple[int, int, int, int]]:
        """The bug check code and its four parameters."""
        h = self.header
        params = (
            h["BugCheckParameter1"],
            h["BugCheckParameter2"],
            h["BugCheckParameter3"],
            h["BugCheckParameter4"],
        )
        return h["BugCheckCode"], params

    @property
    def arch(self) -> str:
        """x86, x86_64 or aarch64 (from MachineImageType)."""
        return MACHINES.get(self.header["MachineImageType"], f"machine {self.header['MachineImageType']:#x}")

    @property
    def dump_type(self) -> str:
        """full, triage (small memory dump), bitmap kernel, ..."""
        return DUMP_TYPES.get(self.header["DumpType"], f"type {self.header['DumpType']}")

    @property
    def system_time(self) -> dt.datetime | None:
        """When the machine crashed (UTC), from the header's FILETIME."""
        ft = self.header["SystemTime"]
        if not ft:
            return None
        try:
            t = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ft // 10)
        except OverflowError:
            return None
        return t if 1990 <= t.year <= 2100 else None  # else garbage: a year 6795 stretched a chart

    @property
    def uptime_s(self) -> float:
        """Seconds the machine had been up (the header counts 100 ns units)."""
        return self.header["SystemUpTime"] / 1e7

    @cached_property
    def threads(self) -> tuple[Thread, ...]:
        """The crash context as the only thread (tid 0: a kernel dump names no thread)."""
        layout = CONTEXT_LAYOUTS.get(self.arch)
        if layout is None:
            return ()
        at = 0x348 if self.bits == 64 else 0x320
        regs = decode_context(self.arch, self._bytes(at, layout.size, "the context record"))
        pc, sp, fp = context_pointers(self.arch, regs)
        return (Thread(0, regs, pc, sp, fp),)

    # ------------------------------------------------------------- triage

    @property
    def is_triage(self) -> bool:
        """True for a triage (small memory) dump: the driver list and stack bytes are in it."""
        return self.header["DumpType"] == TRIAGE

    @cached_property
    def triage(self) -> dict[str, int]:
        """The triage header's fields (empty for other dump types)."""
        if not self.is_triage:
            return {}
        at = HEADER_SIZE[self.bits]
        names = ["ServicePackBuild", "SizeOfDump", "ValidOffset", "ContextOffset", "ExceptionOffset",
                 "MmOffset", "UnloadedDriversOffset", "PrcbOffset", "ProcessOffset", "ThreadOffset",
                 "CallStackOffset", "SizeOfCallStack", "DriverListOffset", "DriverCount",
                 "StringPoolOffset", "StringPoolSize", "BrokenDriverOffset", "TriageOptions"]  # fmt: skip
        values = list(self._unpack("<18I", at, "the triage header"))
        if self.bits == 64:
            top, _bstore, _bsize, _blimit, page_addr, page_off, page_size, kd_off, kd_size, blk_off, blk_n = (
                self._unpack("<QIIQQIIIIII", at + 72, "the triage header")
            )
        else:
            top, page_addr, page_off, page_size, kd_off, kd_size, blk_off, blk_n = self._unpack(
                "<8I", at + 72, "the triage header"
            )
        out = dict(zip(names, values, strict=True))
        out.update(TopOfStack=top, DataPageAddress=page_addr, DataPageOffset=page_off, DataPageSize=page_size,
                   DebuggerDataOffset=kd_off, DebuggerDataSize=kd_size, DataBlocksOffset=blk_off,
                   DataBlocksCount=blk_n)  # fmt: skip
        return out

    def _string(self, offset: int) -> str:
        """A dump string: a 32-bit count of UTF-16 characters, then the characters."""
        (count,) = self._unpack("<I", offset, "a driver name")
        if count > 4096:
            raise DumpError(f"{self.path} is corrupt: a driver name of {count} characters")
        return self._bytes(offset + 4, 2 * count, "a driver name").decode("utf-16-le", errors="replace")

    @cached_property
    def drivers(self) -> tuple[Driver, ...]:
        """The loaded modules: a triage dump's driver list, or the kernel's PsLoadedModuleList read
        through the page tables of a full or bitmap dump (x86_64)."""
        t = self.triage
        if not t:
            return self._module_list()
        count, at = t["DriverCount"], t["DriverListOffset"]
        entry = 144 if self.bits == 64 else 76
        if count > MAX_DRIVERS or at + count * entry > self.size:
            raise DumpError(f"{self.path} is corrupt: its driver list ({count} entries) runs past the end")
        out = []
        for i in range(count):
            e = at + entry * i
            if self.bits == 64:
                (name_at,) = self._unpack("<I", e, "a driver entry")
                base, _entry, size = self._unpack("<QQI", e + 8 + 48, "a driver entry")
                (checksum,) = self._unpack("<I", e + 8 + 120, "a driver entry")
                (stamp,) = self._unpack("<I", e + 8 + 128, "a driver entry")
            else:
                (name_at,) = self._unpack("<I", e, "a driver entry")
                base, _entry, size = self._unpack("<III", e + 4 + 24, "a driver entry")
                checksum, stamp = self._unpack("<II", e + 4 + 64, "a driver entry")
            out.append(Driver(base, size, checksum, stamp, self._string(name_at)))
        return tuple(out)

    def _module_list(self) -> tuple[Driver, ...]:
        """Walk PsLoadedModuleList (KLDR_DATA_TABLE_ENTRY): stop at the head, a loop, or memory
        the dump lacks (what was found so far is kept, and ``module_list_problem`` says why it ended)."""
        head = self.header["PsLoadedModuleList"]
        out: list[Driver] = []
        seen = {head}
        try:
            (link,) = struct.unpack("<Q" if self.bits == 64 else "<I", self.read(head, self.bits // 8))
            while link not in seen and len(out) < MAX_DRIVERS:
                seen.add(link)
                if self.bits == 64:
                    entry = self.read(link, 136)
                    (nxt,) = struct.unpack_from("<Q", entry, 0)
                    (base,) = struct.unpack_from("<Q", entry, 48)
                    (size,) = struct.unpack_from("<I", entry, 64)
                    length, _max, buffer = struct.unpack_from("<HHxxxxQ", entry, 72)
                    (checksum,) = struct.unpack_from("<I", entry, 120)
                    (stamp,) = struct.unpack_from("<I", entry, 128)
                else:
                    entry = self.read(link, 72)
                    (nxt,) = struct.unpack_from("<I", entry, 0)
                    base, _entry_point, size = struct.unpack_from("<III", entry, 24)
                    length, _max, buffer = struct.unpack_from("<HHI", entry, 36)
                    checksum, stamp = struct.unpack_from("<II", entry, 64)
                name = (
                    self.read(buffer, min(length, 1024)).decode("utf-16-le", errors="replace")
                    if length
                    else ""
                )
                out.append(Driver(base, size, checksum, stamp, name))
                link = nxt
            if link != head and len(out) < MAX_DRIVERS:
                self.module_list_problem = f"the module list loops back to {link:#x} instead of its head"
        except UnreadableMemory as e:
            self.module_list_problem = f"the module list leads to memory the dump does not hold ({e})"
        return tuple(out)

    module_list_problem: str | None = None
    """Why the walk of PsLoadedModuleList ended early, if it did."""

    kdbg_problem: str | None = None
    """Why the KDBG could not be read, once it was asked for and could not."""

    @cached_property
    def kdbg(self) -> dict[str, int]:
        """The KDBG's addresses of kernel variables (those within its size; 0 where the kernel left
        one out), from a triage dump's copy or through the page tables; empty if unreadable."""
        t = self.triage
        try:
            if t and t["DebuggerDataSize"]:
                data = self._bytes(t["DebuggerDataOffset"], min(t["DebuggerDataSize"], KDBG_MAX), "the KDBG")
            else:
                data = self.read(self.header["KdDebuggerDataBlock"], 24)
                (size,) = struct.unpack_from("<I", data, 20)
                data = (
                    self.read(self.header["KdDebuggerDataBlock"], min(size, KDBG_MAX)) if size >= 24 else data
                )
        except (UnreadableMemory, DumpError) as e:
            self.kdbg_problem = f"the KDBG (KdDebuggerDataBlock) is not in the dump ({e})"
            return {}
        if data[16:20] != b"KDBG":
            self.kdbg_problem = (
                "the KDBG (KdDebuggerDataBlock) has no 'KDBG' tag: Windows 8 and later keep it encoded "
                "in memory, and decoding it needs the kernel's symbols"
            )
            return {}
        mask = (1 << self.bits) - 1
        return {
            name: struct.unpack_from("<Q", data, at)[0] & mask
            for name, at in KDBG_FIELDS.items()
            if at + 8 <= len(data)
        }

    @cached_property
    def _runs(self) -> list[tuple[int, int, int]]:
        """(first page number, page count, file offset) of the physical memory a full or bitmap dump holds."""
        if not self._paging[0]:
            return []
        kind = self.header["DumpType"]
        if kind == FULL:
            # PHYSICAL_MEMORY_DESCRIPTOR: a run count, then (first page, page count) runs
            count_fmt, count_at, run_fmt, limit = (
                ("<IxxxxQ", 0x88, "<QQ", MAX_RUNS) if self.bits == 64 else ("<II", 0x64, "<II", MAX_RUNS_32)
            )
            count, _pages = self._unpack(count_fmt, count_at, "the physical memory runs")
            if count > limit:
                raise DumpError(f"{self.path} is corrupt: {count} physical memory runs (at most {limit} fit)")
            out, offset = [], HEADER_SIZE[self.bits]
            runs_at, run_size = count_at + struct.calcsize(count_fmt), struct.calcsize(run_fmt)
            for i in range(count):
                base, n = self._unpack(run_fmt, runs_at + run_size * i, "a physical memory run")
                if offset + n * PAGE > self.size:
                    raise DumpError(f"{self.path} is truncated: its physical memory runs past the end")
                out.append((base, n, offset))
                offset += n * PAGE
            return sorted(out)
        if kind in (BITMAP_FULL, BITMAP_KERNEL):
            at = HEADER_SIZE[64]
            if self._bytes(at, 4, "the bitmap header") not in (b"SDMP", b"FDMP"):
                raise DumpError(f"{self.path} is corrupt: a bitmap dump without its SDMP/FDMP header")
            first, present, bits = self._unpack("<QQQ", at + 0x20, "the bitmap header")
            if bits > 8 * (self.size - at - 0x38) or first + present * PAGE > self.size:
                raise DumpError(f"{self.path} is truncated or corrupt: its page bitmap runs past the end")
            bitmap = self._bytes(at + 0x38, (bits + 7) // 8, "the page bitmap")
            runs: list[tuple[int, int, int]] = []
            offset = first
            for byte_no, byte in enumerate(bitmap):
                if not byte:
                    continue
                if byte == 0xFF:  # eight present pages in a row: most of a real bitmap
                    pfn = 8 * byte_no
                    if runs and runs[-1][0] + runs[-1][1] == pfn:
                        runs[-1] = (runs[-1][0], runs[-1][1] + 8, runs[-1][2])
                    else:
                        runs.append((pfn, 8, offset))
                    offset += 8 * PAGE
                    continue
                for bit in range(8):
                    if byte >> bit & 1:
                        pfn = 8 * byte_no + bit
                        if runs and runs[-1][0] + runs[-1][1] == pfn:
                            runs[-1] = (runs[-1][0], runs[-1][1] + 1, runs[-1][2])
                        else:
                            runs.append((pfn, 1, offset))
                        offset += PAGE
            return runs
        return []

    def _physical(self, address: int, size: int) -> bytes:
        """Physical memory (within one page)."""
        pfn = address // PAGE
        i = bisect.bisect_right(self._runs, (pfn, 1 << 64, 0)) - 1
        if i >= 0:
            first, count, offset = self._runs[i]
            if first <= pfn < first + count:
                return self._bytes(offset + (pfn - first) * PAGE + address % PAGE, size, "physical memory")
        raise UnreadableMemory(f"physical page {pfn:#x} is not in the dump")

    @cached_property
    def _paging(self) -> tuple[tuple[tuple[int, int, int], ...], int, tuple[int, ...], int]:
        """(levels as (shift, index bits, entry size), entry address mask, shifts where a large page may
        end the walk, the top table's address): x86_64, ARM64 (4 KiB granule, 48-bit addresses), x86
        with PAE, or x86 without."""
        dtb = self.header["DirectoryTableBase"]
        if self.arch == "x86_64" and self.bits == 64:
            return ((39, 9, 8), (30, 9, 8), (21, 9, 8), (12, 9, 8)), PTE_ADDRESS, (30, 21), dtb & PTE_ADDRESS
        if self.arch == "aarch64" and self.bits == 64:
            # the kernel half is translated from DirectoryTableBase as the level 0 table (TTBR1's)
            return (
                ((39, 9, 8), (30, 9, 8), (21, 9, 8), (12, 9, 8)),
                ARM64_ADDRESS,
                (30, 21),
                dtb & ARM64_ADDRESS,
            )
        if self.arch == "x86" and self.bits == 32:
            (pae,) = self._unpack("<B", 0x5C, "the header")
            if pae:
                return ((30, 2, 8), (21, 9, 8), (12, 9, 8)), PTE_ADDRESS, (21,), dtb & 0xFFFFFFE0
            return ((22, 10, 4), (12, 10, 4)), 0xFFFFF000, (22,), dtb & 0xFFFFF000
        return (), 0, (), 0

    def _leaf(self, entry: int, last: bool, shift: int) -> bool:
        """True if a present ``entry`` maps memory (a page, or a large page or block) instead of
        pointing at the next table."""
        if last:
            return True
        if shift not in self._paging[2]:
            return False
        if self.arch == "aarch64":
            return not entry & ARM64_TABLE  # a block descriptor: bit 1 clear
        return bool(entry & LARGE)

    def _present(self, entry: int, last: bool) -> bool:
        """True if ``entry`` is valid (ARM64's last level needs bits 1:0 = 0b11, a page descriptor)."""
        if self.arch == "aarch64" and last:
            return entry & 3 == 3
        return bool(entry & PRESENT)

    def _translate(self, va: int) -> int:
        """The physical address of ``va``, by the page tables from DirectoryTableBase."""
        levels, mask, _large, table = self._paging
        for n, (shift, bits, size) in enumerate(levels):
            at = table + size * ((va >> shift) & ((1 << bits) - 1))
            entry = int.from_bytes(self._physical(at, size), "little")
            last = n == len(levels) - 1
            if not self._present(entry, last):
                raise UnreadableMemory(f"{va:#x} is not mapped (not present at level {shift})")
            if not last and self._leaf(entry, last, shift):  # a 4 MiB, 2 MiB or 1 GiB page or block
                return (entry & mask & ~((1 << shift) - 1)) + (va & ((1 << shift) - 1))
            table = entry & mask
        return table + (va & (PAGE - 1))

    @cached_property
    def _blocks(self) -> list[_Block]:
        t = self.triage
        if not t:
            return []
        out = []
        top, stack_at, stack_size = t["TopOfStack"], t["CallStackOffset"], t["SizeOfCallStack"]
        if stack_size and stack_at + stack_size <= self.size:
            out.append(_Block(top, stack_size, stack_at))
        page_addr, page_at, page_size = t["DataPageAddress"], t["DataPageOffset"], t["DataPageSize"]
        if page_size and page_at + page_size <= self.size:
            out.append(_Block(page_addr, page_size, page_at))
        n, at = t["DataBlocksCount"], t["DataBlocksOffset"]
        item = 16 if self.bits == 64 else 12
        if n > MAX_BLOCKS or at + n * item > self.size:
            raise DumpError(f"{self.path} is corrupt: its data blocks ({n}) run past the end")
        for i in range(n):
            fmt = "<QII" if self.bits == 64 else "<III"
            va, offset, size = self._unpack(fmt, at + item * i, "a data block")
            if offset + size <= self.size:
                out.append(_Block(va, size, offset))
        return sorted(out, key=lambda b: b.start)

    def regions(self) -> list[tuple[int, int]]:
        """(start, size) of the kernel memory the dump holds, by address: a triage dump's blocks, or the
        virtual ranges a full or bitmap dump's page tables map (parts of which may still be absent)."""
        if self.is_triage:
            return [(b.start, b.size) for b in self._blocks]
        return self._mapped

    @cached_property
    def _mapped(self) -> list[tuple[int, int]]:
        """Every present mapping of the page tables, merged into ranges."""
        if not self._runs:
            return []
        levels, mask, _large, top = self._paging
        found: list[tuple[int, int]] = []

        def walk(table: int, level: int, base: int) -> None:
            shift, bits, size = levels[level]
            try:
                data = self._physical(table, size << bits)
            except UnreadableMemory:
                return
            last = level == len(levels) - 1
            for i in range(1 << bits):
                entry = int.from_bytes(data[size * i : size * (i + 1)], "little")
                if not self._present(entry, last):
                    continue
                va = base | i << shift
                if self.bits == 64 and va & (1 << 47):
                    va |= 0xFFFF000000000000  # canonical form (ARM64: the kernel half)
                if self._leaf(entry, last, shift):
                    found.append((va, 1 << shift))
                elif len(found) <= MAX_MAPPINGS:
                    walk(entry & mask, level + 1, va)
            if len(found) > MAX_MAPPINGS:
                raise DumpError(f"{self.path}: its page tables map more than {MAX_MAPPINGS} ranges")

        walk(top, 0, 0)
        merged: list[tuple[int, int]] = []
        for start, size in sorted(found):
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + size)
            else:
                merged.append((start, size))
        return merged

    @cached_property
    def _starts(self) -> list[int]:
        return [b.start for b in self._blocks]

    @property
    def reads_memory(self) -> bool:
        """True if the dump's virtual memory can be read: a triage dump, or an x86_64 full or bitmap dump."""
        return self.is_triage or bool(self._runs)

    def read(self, addr: int, size: int) -> bytes:
        """Kernel virtual memory: a triage dump's blocks, or a full or bitmap dump's pages through the
        page tables (x86_64; x86 with or without PAE); UnreadableMemory where the dump lacks it."""
        if not self.is_triage:
            if not self._runs:
                raise UnreadableMemory(f"the memory of {self.arch} {self.dump_type} dumps is not read yet")
            out = b""
            while len(out) < size:
                va = addr + len(out)
                chunk = min(size - len(out), PAGE - va % PAGE)
                out += self._physical(self._translate(va), chunk)
            return out
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            b = self._blocks[i]
            if addr + size <= b.start + b.size:
                return self._bytes(b.offset + addr - b.start, size, "kernel memory")
        raise UnreadableMemory(f"{addr:#x} (+{size}) is not in the dump")

    def module_at(self, addr: int) -> Driver | None:
        """The driver whose image holds ``addr``."""
        return next((d for d in self.drivers if d.base <= addr < d.end), None)

    def image(self, driver: Driver) -> PeImage:
        """The driver's PE image as the dump holds it in memory (read lazily; parts may be absent)."""
        if driver.base not in self._images:
            self._images[driver.base] = PeImage(self.read, driver.base)
        return self._images[driver.base]

    def image_at(self, addr: int) -> PeImage | None:
        """The PE image of the driver that holds ``addr``, if any."""
        driver = self.module_at(addr)
        return self.image(driver) if driver is not None else None

    @cached_property
    def _images(self) -> dict[int, PeImage]:
        """The drivers' images by base address, made on first use."""
        return {}
