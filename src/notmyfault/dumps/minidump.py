"""Minidumps (``MDMP``): Windows user-mode dumps and the ones Breakpad and Crashpad make on Linux.

Read lazily over an mmap of the file: the header and stream directory are
checked when the dump is opened, each stream is parsed when asked for, and
every offset and count is checked against the file before it is followed, so
a corrupt dump gives a DumpError and never a traceback, a hang or a large
allocation.  (Written here rather than taken from the ``minidump`` package on
PyPI: that reader raises bare Exceptions, logs tracebacks while looking for a
Windows PEB, and knows neither Breakpad's Linux streams nor its ELF build-id
records; it serves the tests as an independent second reader.)

Layouts: Microsoft's minidumpapiset.h and winnt.h (CONTEXT), and Breakpad's
minidump_format.h for the Linux parts.
"""

from __future__ import annotations

import bisect
import contextlib
import struct
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.linkmap import parse_auxv
from notmyfault.dumps.mapped import MappedDump

MAGIC = b"MDMP"
VERSION = 0xA793

THREAD_LIST, MODULE_LIST, MEMORY_LIST, EXCEPTION, SYSTEM_INFO = 3, 4, 5, 6, 7
MEMORY64_LIST, MISC_INFO = 9, 15
# Breakpad's streams (minidump_format.h: MD_BREAKPAD_INFO_STREAM ... MD_LINUX_DSO_DEBUG)
BREAKPAD_INFO, ASSERTION_INFO = 0x47670001, 0x47670002
LINUX_CPU_INFO, LINUX_PROC_STATUS, LINUX_LSB_RELEASE = 0x47670003, 0x47670004, 0x47670005
LINUX_CMD_LINE, LINUX_ENVIRON, LINUX_AUXV = 0x47670006, 0x47670007, 0x47670008
LINUX_MAPS, LINUX_DSO_DEBUG = 0x47670009, 0x4767000A
CRASHPAD_INFO = 0x43500001
CV_ELF = b"LEpB"
"""Breakpad's ELF CodeView signature: the uint32 0x4270454c ('BpEL') as it lies on disk, little-endian."""

ARCHES = {0: "x86", 5: "arm", 9: "x86_64", 12: "aarch64", 0x8003: "aarch64"}
"""PROCESSOR_ARCHITECTURE_* (and Breakpad's ARM64 value) to our architecture names."""
POINTER_32 = ("x86", "arm")
"""The architectures whose pointers are 32 bits wide (the exception record's 64-bit fields hold them)."""
PLATFORMS = {
    0: "Windows 3.1",
    1: "Windows 9x",
    2: "Windows NT",
    0x8000: "Unix",
    0x8101: "Mac OS X",
    0x8102: "iOS",
    0x8201: "Linux",
    0x8202: "Solaris",
    0x8203: "Android",
    0x8204: "PS3",
    0x8205: "NaCl",
    0x8206: "Fuchsia",
}

# CONTEXT layouts: register name -> (offset, size) in the record
_X86 = {
    "gs": 140, "fs": 144, "es": 148, "ds": 152, "edi": 156, "esi": 160, "ebx": 164, "edx": 168, "ecx": 172, "eax": 176,
    "ebp": 180, "eip": 184, "cs": 188, "eflags": 192, "esp": 196, "ss": 200,
}  # fmt: skip
_X86_SIZE = 716
_AMD64 = {
    name: 120 + 8 * i
    for i, name in enumerate(
        [
            "rax",
            "rcx",
            "rdx",
            "rbx",
            "rsp",
            "rbp",
            "rsi",
            "rdi",
            "r8",
            "r9",
            "r10",
            "r11",
            "r12",
            "r13",
            "r14",
            "r15",
            "rip",
        ]
    )
}
_AMD64_SIZE = 1232
_ARM64 = {**{f"x{i}": 8 + 8 * i for i in range(29)}, "fp": 240, "lr": 248, "sp": 256, "pc": 264}
_ARM64_SIZE = 912
"""Windows' ARM64_NT_CONTEXT (and Breakpad's MDRawContextARM64): the V registers from 272, FPCR and
FPSR after them at 784."""
_ARM64_CRASHPAD_SIZE = 792
"""Crashpad's MinidumpContextARM64: the same registers, then FPSR and FPCR at 272, the V registers after."""
_ARM64_OLD_SIZE = 796
"""Breakpad's old MDRawContextARM64_Old (context flags 0x80000000 | parts, a 64-bit field; packed to
4 bytes): the same x0-x28, fp, lr, sp and pc, then CPSR at 272, FPSR and FPCR at 276, the V registers."""
_ARM64_OLD_FLAG = 0x80000000


class ContextLayout(NamedTuple):
    """Where a CONTEXT record keeps the registers of one architecture."""

    offsets: dict[str, int]
    word: int
    size: int
    pc: str
    sp: str
    fp: str


CONTEXT_LAYOUTS = {
    "x86": ContextLayout(_X86, 4, _X86_SIZE, "eip", "esp", "ebp"),
    "x86_64": ContextLayout(_AMD64, 8, _AMD64_SIZE, "rip", "rsp", "rbp"),
    "aarch64": ContextLayout(_ARM64, 8, _ARM64_SIZE, "pc", "sp", "fp"),
}
"""The Windows CONTEXT layouts (minidumps and kernel dumps share them)."""


def context_size(arch: str, data: bytes) -> int | None:
    """How long the CONTEXT record that ``data`` starts with is for ``arch`` (an arm64 record is one
    of three layouts, told apart by its flags and size); None for an unknown architecture."""
    layout = CONTEXT_LAYOUTS.get(arch)
    if layout is None:
        return None
    if arch == "aarch64" and len(data) >= 4:
        flags = int.from_bytes(data[:4], "little")
        if flags & _ARM64_OLD_FLAG:
            return _ARM64_OLD_SIZE
        return _ARM64_SIZE if len(data) >= _ARM64_SIZE else _ARM64_CRASHPAD_SIZE
    return layout.size


def decode_context(arch: str, data: bytes) -> dict[str, int]:
    """The registers in a CONTEXT record of ``arch`` ({} for an unknown architecture or a short record)."""
    layout = CONTEXT_LAYOUTS.get(arch)
    size = context_size(arch, data)
    if layout is None or size is None or len(data) < size:
        return {}
    out = {name: int.from_bytes(data[at : at + layout.word], "little") for name, at in layout.offsets.items()}
    if arch == "x86_64":
        out["eflags"] = int.from_bytes(data[68:72], "little")
    if arch == "aarch64":

        def u32(at: int) -> int:
            return int.from_bytes(data[at : at + 4], "little")

        if size == _ARM64_OLD_SIZE:
            out.update(cpsr=u32(272), fpsr=u32(276), fpcr=u32(280))
        elif size == _ARM64_CRASHPAD_SIZE:
            out.update(cpsr=u32(4), fpsr=u32(272), fpcr=u32(276))
        else:  # after the 32 128-bit V registers
            out.update(cpsr=u32(4), fpcr=u32(784), fpsr=u32(788))
    return out


def context_pointers(arch: str, regs: dict[str, int]) -> tuple[int | None, int | None, int | None]:
    """(pc, sp, fp) from decoded registers."""
    layout = CONTEXT_LAYOUTS.get(arch)
    if layout is None or not regs:
        return None, None, None
    return regs.get(layout.pc), regs.get(layout.sp), regs.get(layout.fp)


MAX_ITEMS = 1 << 20
"""No list in a dump is believed to hold more entries than this."""


@dataclass(frozen=True)
class SystemInfo:
    """MINIDUMP_SYSTEM_INFO."""

    arch: str
    processor_architecture: int
    processor_level: int
    processor_revision: int
    processors: int
    product_type: int
    os_version: tuple[int, int, int]
    platform_id: int
    csd_version: str
    cpu_vendor: str | None
    """The x86 CPUID vendor string (GenuineIntel)."""

    @property
    def os(self) -> str:
        """The operating system's name (Windows NT, Linux, ...)."""
        return PLATFORMS.get(self.platform_id, f"platform {self.platform_id:#x}")

    @property
    def version(self) -> str:
        """The operating system's version as minidump-stackwalk prints it: major.minor.build and
        the CSD version (Windows' service pack, macOS' build). Breakpad's Linux writer leaves 0.0.0
        and puts uname's 'sysname release version machine' in the CSD version: then the release
        and the version."""
        major, minor, build = self.os_version
        csd = self.csd_version.strip()
        words = csd.split(" ")
        linux = self.platform_id in (0x8201, 0x8203)  # Linux and Android: one writer
        if linux and (major, minor, build) == (0, 0, 0) and len(words) >= 3:
            return " ".join(words[1:-1])
        return f"{major}.{minor}.{build}" + (f" {csd}" if csd else "")

    @property
    def cpu_info(self) -> str:
        """As Breakpad prints it: 'GenuineIntel family 6 model 13 stepping 8'."""
        if self.arch not in ("x86", "x86_64"):
            return ""
        model, stepping = self.processor_revision >> 8, self.processor_revision & 0xFF
        vendor = f"{self.cpu_vendor} " if self.cpu_vendor else ""
        return f"{vendor}family {self.processor_level} model {model} stepping {stepping}"


@dataclass(frozen=True)
class ExceptionRecord:
    """MINIDUMP_EXCEPTION_STREAM: which thread, what exception (or, on Linux, which signal)."""

    thread_id: int
    code: int
    flags: int
    address: int
    parameters: tuple[int, ...]
    context: dict[str, int]


@dataclass(frozen=True)
class Thread:
    """A thread: its registers and where its stack lies in the dump."""

    tid: int
    regs: dict[str, int]
    pc: int | None
    sp: int | None
    fp: int | None
    stack_start: int
    stack_size: int


@dataclass(frozen=True)
class Image:
    """A loaded PE (or ELF) image as Windows dumps record it: where it lies and which build it is."""

    base: int
    size: int
    checksum: int
    timestamp: int
    name: str

    @property
    def end(self) -> int:
        """First address past the module."""
        return self.base + self.size

    @property
    def code_id(self) -> str:
        """The code identifier (timestamp and size of image, as symbol servers use)."""
        return f"{self.timestamp:08X}{self.size:x}"


@dataclass(frozen=True)
class Module(Image):
    """A minidump's module, with what the dump records of its build."""

    file_version: str | None
    product_version: str | None
    debug_file: str | None
    debug_id: str | None
    """Breakpad's debug identifier (PDB GUID and age in hex, or an ELF build-id as a GUID)."""
    build_id: str | None
    """For Linux modules (Breakpad's BpEL record): the ELF build-id in hex."""
    identifier: str | None = None
    """The code id where it is not a PE's (timestamp, size): an ELF build-id, a Mach-O UUID."""

    @property
    def code_id(self) -> str:
        """The code identifier: a PE's timestamp and size, an ELF build-id, or a Mach-O UUID."""
        return self.identifier or super().code_id


@dataclass(frozen=True)
class MiscInfo:
    """MINIDUMP_MISC_INFO: the process id and its creation time, when the flags say they are there."""

    process_id: int | None
    process_create_time: int | None


@dataclass(frozen=True)
class _Range:
    start: int
    size: int
    offset: int


class Minidump(MappedDump):
    """A minidump file, opened for reading (a context manager)."""

    def __init__(self, path: str) -> None:
        """Open ``path``; check the header and read the stream directory (DumpError if they are bad)."""
        super().__init__(path, 32)
        self.streams: dict[int, tuple[int, int]] = {}
        """Stream type -> (size, offset), the first stream of each type."""
        if self._bytes(0, 4, "the signature") != MAGIC:
            raise DumpError(f"{self.path} is not a minidump (no MDMP signature)")
        version, count, rva, _checksum, stamp = self._unpack("<IIIII", 4, "the header")
        if version & 0xFFFF != VERSION:
            raise DumpError(f"{self.path}: unknown minidump version {version & 0xFFFF:#x} (expected 0xa793)")
        if count > MAX_ITEMS or rva + 12 * count > self.size:
            raise DumpError(f"{self.path} is truncated or corrupt: its stream directory runs past the end")
        self.time_date_stamp = stamp
        for i in range(count):
            kind, size, offset = self._unpack("<III", rva + 12 * i, "the stream directory")
            if kind and kind not in self.streams:
                self.streams[kind] = (size, offset)
        cut = sorted(k for k, (size, offset) in self.streams.items() if offset + size > self.size)
        self.truncation: str | None = (
            f"the minidump is truncated: the file ends at {self.size} bytes; {len(cut)} of its "
            f"{len(self.streams)} streams run past the end"
            if cut
            else None
        )
        """None for a whole minidump; else one line saying what is missing."""

    def _stream(self, kind: int) -> tuple[int, int] | None:
        found = self.streams.get(kind)
        if found is None:
            return None
        size, offset = found
        self._bytes(offset, size, f"stream {kind:#x}")
        return size, offset

    def _string(self, rva: int, what: str) -> str:
        """A MINIDUMP_STRING: a 32-bit byte length, then UTF-16LE."""
        if rva == 0:
            return ""
        (length,) = self._unpack("<I", rva, what)
        if length > 65536:
            raise DumpError(f"{self.path} is corrupt: {what} claims {length} bytes")
        return self._bytes(rva + 4, length, what).decode("utf-16-le", errors="replace")

    def _list(self, found: tuple[int, int], item: int, what: str) -> tuple[int, int]:
        """A list stream's entry count and where its first entry is.

        The count is 32 bits; some writers (Breakpad on macOS) pad it to 8 bytes so that the
        entries are aligned. The stream's size tells: 8 + n * entry is padded, 4 + n * entry not.
        """
        size, at = found
        (count,) = self._unpack("<I", at, what)
        first = at + 8 if size == 8 + count * item else at + 4
        self._count(count, item, first, what)
        return count, first

    def _count(self, count: int, item: int, offset: int, what: str) -> None:
        if count > MAX_ITEMS or offset + count * item > self.size:
            raise DumpError(
                f"{self.path} is truncated or corrupt: {what} ({count} entries) runs past the end"
            )

    # --------------------------------------------------------------- streams

    @cached_property
    def system_info(self) -> SystemInfo | None:
        """The machine and the operating system (None if the dump has no system info stream)."""
        found = self._stream(SYSTEM_INFO)
        if found is None:
            return None
        _, at = found
        arch, level, revision, cpus, product, major, minor, build, platform, csd_rva = self._unpack(
            "<HHHBBIIIII", at, "the system info"
        )
        vendor = None
        # the CPU_INFORMATION union is X86CpuInfo (with the vendor id) for an x86 processor, and
        # x86 on Win64; for every other one, amd64 too, it is OtherCpuInfo (as Breakpad and
        # rust-minidump read it; Breakpad's Linux writer fills the vendor id even for amd64)
        if arch in (0, 0x8000):
            raw = self._bytes(at + 32, 12, "the CPU vendor").rstrip(b"\0")
            vendor = raw.decode("ascii") if raw and raw.isascii() and raw.isalnum() else None
        return SystemInfo(
            ARCHES.get(arch, f"architecture {arch:#x}"), arch, level, revision, cpus, product,
            (major, minor, build), platform, self._string(csd_rva, "the service pack name"), vendor,
        )  # fmt: skip

    @property
    def arch(self) -> str:
        """x86, x86_64, aarch64, ... (from the system info)."""
        return self.system_info.arch if self.system_info else "unknown"

    def _context(self, size: int, rva: int) -> dict[str, int]:
        layout = CONTEXT_LAYOUTS.get(self.arch)
        if layout is None or size < 4:
            return {}
        data = self._bytes(rva, min(size, max(layout.size, _ARM64_SIZE)), "a thread context")
        return decode_context(self.arch, data)

    @cached_property
    def exception(self) -> ExceptionRecord | None:
        """The exception (or signal) that made the dump; None for a dump taken without one."""
        found = self._stream(EXCEPTION)
        if found is None:
            return None
        _, at = found
        tid, _align, code, flags, _record, address, nparams, _pad = self._unpack(
            "<IIIIQQII", at, "the exception record"
        )
        params = self._unpack("<15Q", at + 40, "the exception parameters")
        ctx_size, ctx_rva = self._unpack("<II", at + 160, "the exception context")
        if self.arch in POINTER_32:
            # 32-bit writers sign-extend the record's pointers to its 64-bit fields (0x80000000 and up
            # become 0xffffffff8...; Breakpad's own x86 dumps do it to any value): a pointer is 32 bits
            address &= 0xFFFFFFFF
            params = tuple(p & 0xFFFFFFFF for p in params)
        return ExceptionRecord(
            tid, code, flags, address, tuple(params[: min(nparams, 15)]), self._context(ctx_size, ctx_rva)
        )

    @cached_property
    def dump_thread_id(self) -> int | None:
        """The thread that wrote the dump (Breakpad's handler), when the Breakpad info stream names it."""
        found = self._stream(BREAKPAD_INFO)
        if found is None or found[0] < 12:
            return None
        validity, dump_tid, _requesting = self._unpack("<III", found[1], "the Breakpad info")
        return dump_tid if validity & 1 else None

    @cached_property
    def threads(self) -> tuple[Thread, ...]:
        """The threads of the dump; the one that took the exception first, with the exception's context.

        The thread that wrote the dump (Breakpad's handler thread, ``dump_thread_id``) is listed
        too, last; its stack is the dump writer's, so it is not walked.
        """
        found = self._stream(THREAD_LIST)
        if found is None:
            return ()
        count, first = self._list(found, 48, "the thread list")
        exc = self.exception
        out = []
        for i in range(count):
            tid, _s, _pc, _p, _teb, stack_start, stack_size, _stack_rva, ctx_size, ctx_rva = self._unpack(
                "<IIIIQQIIII", first + 48 * i, "a thread"
            )
            regs = exc.context if exc is not None and exc.thread_id == tid and exc.context else None
            if regs is None:
                regs = self._context(ctx_size, ctx_rva)
            pc, sp, fp = context_pointers(self.arch, regs)
            out.append(Thread(tid, regs, pc, sp, fp, stack_start, stack_size))
        crashed = exc.thread_id if exc is not None else None
        # the crashed thread first, as in ELF cores; the dump writer last
        out.sort(key=lambda t: (t.tid != crashed, t.tid == self.dump_thread_id))
        return tuple(out)

    @cached_property
    def modules(self) -> tuple[Module, ...]:
        """The loaded modules, in the order of the dump (the main executable first)."""
        found = self._stream(MODULE_LIST)
        if found is None:
            return ()
        count, first = self._list(found, 108, "the module list")
        out = []
        for i in range(count):
            rec = first + 108 * i
            base, size, checksum, stamp, name_rva = self._unpack("<QIIII", rec, "a module")
            sig, _sv, fv_ms, fv_ls, pv_ms, pv_ls = self._unpack("<IIIIII", rec + 24, "a module's version")
            cv_size, cv_rva = self._unpack("<II", rec + 76, "a module's CodeView record")
            name = self._string(name_rva, "a module name")
            debug_file, debug_id, build_id, ident = self._codeview(cv_size, cv_rva, name)
            out.append(
                Module(
                    base,
                    size,
                    checksum,
                    stamp,
                    name,
                    _version(fv_ms, fv_ls) if sig == 0xFEEF04BD else None,
                    _version(pv_ms, pv_ls) if sig == 0xFEEF04BD else None,
                    debug_file,
                    debug_id,
                    build_id,
                    ident,
                )
            )
        return tuple(out)

    def _codeview(
        self, size: int, rva: int, name: str
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """(debug file, debug identifier, ELF build-id, code id) from a module's CodeView record.

        PDB 7.0 (``RSDS``: GUID and age) and 2.0 (``NB10``) as Windows writes them; Crashpad's
        Mach-O modules carry their UUID as an RSDS GUID, which is also their code id; Breakpad's
        Linux modules carry the ELF build-id (``LEpB`` on disk), whose first 16 bytes read as a
        GUID (age 0) are the debug id, and the whole of it the code id.
        """
        if size < 4 or rva == 0:
            return None, None, None, None
        data = self._bytes(rva, min(size, 4096), "a CodeView record")
        sig = data[:4]
        apple = self.system_info is not None and self.system_info.platform_id in (0x8101, 0x8102)
        if sig == b"RSDS" and len(data) >= 24:  # PDB 7.0: GUID, age, file name
            guid = uuid.UUID(bytes_le=data[4:20])
            (age,) = struct.unpack_from("<I", data, 20)
            debug = data[24:].split(b"\0", 1)[0].decode(errors="replace")
            return debug, f"{guid.hex.upper()}{age:X}", None, guid.hex if apple else None
        if sig == b"NB10" and len(data) >= 16:  # PDB 2.0: timestamp, age, file name
            stamp, age = struct.unpack_from("<II", data, 8)
            debug = data[16:].split(b"\0", 1)[0].decode(errors="replace")
            return debug, f"{stamp:08X}{age:X}", None, None
        if sig == CV_ELF and len(data) > 4:  # Breakpad, Linux: the ELF build-id
            build = data[4:]
            ident = build[:16].ljust(16, b"\0")
            base = name.rsplit("/", 1)[-1] or None
            return base, f"{uuid.UUID(bytes_le=ident).hex.upper()}0", build.hex(), build.hex()
        return None, None, None, None

    @cached_property
    def misc_info(self) -> MiscInfo:
        """The process id and creation time, when the dump records them."""
        found = self._stream(MISC_INFO)
        if found is None or found[0] < 24:
            return MiscInfo(None, None)
        _, at = found
        _size, flags, pid, created = self._unpack("<IIII", at, "the misc info")
        return MiscInfo(pid if flags & 1 else None, created if flags & 2 else None)

    @cached_property
    def _ranges(self) -> list[_Range]:
        out: list[_Range] = []
        found = self._stream(MEMORY_LIST)
        if found is not None:
            count, first = self._list(found, 16, "the memory list")
            for i in range(count):
                start, size, offset = self._unpack("<QII", first + 16 * i, "a memory range")
                if offset + size <= self.size:
                    out.append(_Range(start, size, offset))
        found = self._stream(MEMORY64_LIST)
        if found is not None:
            _, at = found
            count, base = self._unpack("<QQ", at, "the memory64 list")
            self._count(count, 16, at + 16, "the memory64 list")
            for i in range(count):
                start, size = self._unpack("<QQ", at + 16 + 16 * i, "a memory64 range")
                if base + size <= self.size:
                    out.append(_Range(start, size, base))
                base += size
        return sorted(out, key=lambda r: r.start)

    def regions(self) -> list[tuple[int, int]]:
        """(start, size) of every memory range the dump holds, by address."""
        return [(r.start, r.size) for r in self._ranges]

    @cached_property
    def _starts(self) -> list[int]:
        return [r.start for r in self._ranges]

    @cached_property
    def _reach(self) -> list[int]:
        """For each range (by start), the highest end of it and every range before it."""
        out, reach = [], 0
        for r in self._ranges:
            reach = max(reach, r.start + r.size)
            out.append(reach)
        return out

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes of the process's memory at ``addr``; UnreadableMemory if the dump lacks them.

        Ranges may overlap: Breakpad adds the memory around the instruction pointer as a range of its
        own, which can lie inside the thread's stack. Every range that starts at or below ``addr`` is
        looked at, nearest first, until none before it reaches that far.
        """
        ranges, reach = self._ranges, self._reach
        i = bisect.bisect_right(self._starts, addr) - 1
        while i >= 0 and reach[i] > addr:
            r = ranges[i]
            if addr + size <= r.start + r.size:
                return self._bytes(r.offset + addr - r.start, size, "process memory")
            i -= 1
        raise UnreadableMemory(f"{addr:#x} (+{size}) is not in the dump")

    @cached_property
    def _by_base(self) -> tuple[list[int], list[Module]]:
        mods = sorted(self.modules, key=lambda m: m.base)
        return [m.base for m in mods], mods

    def module_at(self, addr: int) -> Module | None:
        """The module whose image holds ``addr``."""
        starts, mods = self._by_base
        i = bisect.bisect_right(starts, addr) - 1
        for m in mods[max(0, i - 3) : i + 1][::-1]:  # the nearest base below, or one it overlaps
            if m.base <= addr < m.end:
                return m
        return None

    def _text_stream(self, kind: int, what: str, limit: int = 1 << 20) -> bytes | None:
        found = self._stream(kind)
        if found is None:
            return None
        size, at = found
        return self._bytes(at, min(size, limit), what)

    @cached_property
    def command_line(self) -> str | None:
        """The process's arguments, from Breakpad's Linux command-line stream (/proc/PID/cmdline)."""
        raw = self._text_stream(LINUX_CMD_LINE, "the command line", 65536)
        if raw is None:
            return None
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")

    @cached_property
    def environment(self) -> list[str] | None:
        """The process's environment (/proc/PID/environ), which may hold secrets: shown only when asked."""
        raw = self._text_stream(LINUX_ENVIRON, "the environment", 1 << 20)
        if raw is None:
            return None
        return [v.decode(errors="replace") for v in raw.split(b"\0") if v]

    @cached_property
    def proc_status(self) -> dict[str, str]:
        """Breakpad's copy of /proc/PID/status: field -> value ({} without the stream)."""
        return _fields(self._text_stream(LINUX_PROC_STATUS, "the process status", 65536), ":")

    @cached_property
    def lsb_release(self) -> dict[str, str]:
        """Breakpad's copy of /etc/lsb-release (or os-release): field -> value."""
        return _fields(self._text_stream(LINUX_LSB_RELEASE, "the LSB release", 65536), "=")

    @cached_property
    def linux_maps(self) -> list[str]:
        """Breakpad's copy of /proc/PID/maps, a line each."""
        raw = self._text_stream(LINUX_MAPS, "the memory maps", 16 << 20)
        return (raw or b"").decode(errors="replace").splitlines()

    @cached_property
    def auxv(self) -> dict[int, int]:
        """Breakpad's copy of the auxiliary vector: AT_* type -> value."""
        raw = self._text_stream(LINUX_AUXV, "the auxiliary vector", 65536) or b""
        return parse_auxv(raw, 4 if self.arch in ("x86", "arm") else 8)

    @property
    def pid(self) -> int | None:
        """The process id: the misc info's, else the Linux status stream's ``Pid``."""
        if self.misc_info.process_id is not None:
            return self.misc_info.process_id
        with contextlib.suppress(ValueError, KeyError):
            return int(self.proc_status["Pid"])
        return None

    @cached_property
    def assertion(self) -> Assertion | None:
        """Breakpad's assertion stream (an invalid-parameter or pure-call handler's report), if any."""
        found = self._stream(ASSERTION_INFO)
        if found is None or found[0] < 776:
            return None
        at = found[1]

        def wide(offset: int) -> str:
            raw = self._bytes(at + offset, 256, "the assertion")
            return raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]

        line, kind = self._unpack("<II", at + 768, "the assertion")
        return Assertion(wide(0), wide(256), wide(512), line, kind)


@dataclass(frozen=True)
class Assertion:
    """MDRawAssertionInfo: what an assertion handler recorded."""

    expression: str
    function: str
    file: str
    line: int
    kind: int
    """1: invalid parameter, 2: pure virtual call."""


def _fields(raw: bytes | None, sep: str) -> dict[str, str]:
    """'Key<sep>value' lines (values unquoted) as a dict."""
    out: dict[str, str] = {}
    for line in (raw or b"").decode(errors="replace").splitlines():
        key, found, value = line.partition(sep)
        if found:
            out[key.strip()] = value.strip().strip('"')
    return out


def _version(ms: int, ls: int) -> str:
    return f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}"
