"""ELF process core dumps: opened lazily over mmap, parsed on request.

Opening validates the ELF header and the program headers only; notes
(threads, signal, process, mapped files, auxv) are parsed when first asked
for, and memory is read straight from the mapping, so a multi-gigabyte core
costs little memory.  The header, the program headers and the notes are read
here with struct, bounds checked (a core is hostile input): whatever is wrong
becomes a :class:`DumpError` with one line that says what.  pyelftools, which
did this at first, cost 25 ms of every command's start-up and a third of the
time of opening a core of 30,000 mappings (its NT_FILE parse).
"""

from __future__ import annotations

import array
import bisect
import contextlib
import mmap
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.linkmap import (
    AT_EXECFN,
    LoadedImage,
    copy_build_id,
    header_tables,
    image_at,
    loaded_images,
    parse_auxv,
)
from notmyfault.dumps.unpack import discard

# Offsets in struct elf_prstatus on 64-bit Linux (the same on x86_64 and aarch64).
_PR_CURSIG = 12
_PR_SIGPEND = 16
_PR_SIGHOLD = 24
_PR_PID = 32
_PR_REG = 112
NT_X86_XSTATE = 0x202
"""The XSAVE area's note (a LINUX note: its type stays a number)."""
CORE_NOTE_TYPES = {
    1: "NT_PRSTATUS", 2: "NT_FPREGSET", 3: "NT_PRPSINFO", 4: "NT_TASKSTRUCT", 6: "NT_AUXV",
    0x53494749: "NT_SIGINFO", 0x46494C45: "NT_FILE",
}  # fmt: skip
"""The note types a core's notes are known by (elf.h's, as readelf and gdb name them)."""
ET_CORE = 4
ELF_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
PN_XNUM = 0xFFFF
MACHINES = {
    2: "EM_SPARC", 3: "EM_386", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390", 40: "EM_ARM",
    43: "EM_SPARCV9", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV", 258: "EM_LOONGARCH",
}  # fmt: skip
"""e_machine's names for the machines whose cores are met here; others are named by pyelftools'
table, loaded only for them."""


def machine_name(number: int) -> str:
    """``number``'s EM_ name (pyelftools' for a rare one; the number itself for an unknown one)."""
    if number in MACHINES:
        return MACHINES[number]
    from elftools.elf.enums import ENUM_E_MACHINE

    return next((k for k, v in ENUM_E_MACHINE.items() if v == number and k != "_default_"), str(number))


X86_64_REGS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi",
    "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip
I386_REGS = (
    "ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs", "orig_eax", "eip", "cs",
    "eflags", "esp", "ss",
)  # fmt: skip
AARCH64_REGS = (*tuple(f"x{i}" for i in range(31)), "sp", "pc", "pstate")
PPC64_REGS = (
    *tuple(f"r{i}" for i in range(32)), "nip", "msr", "orig_gpr3", "ctr", "lr", "xer", "cr", "softe", "trap",
    "dar", "dsisr", "result",
)  # fmt: skip
"""struct pt_regs of powerpc (arch/powerpc/include/uapi/asm/ptrace.h), the ELF_NGREG words of pr_reg."""
S390X_REGS = ("pswm", "pswa", *tuple(f"r{i}" for i in range(16)))
"""s390_regs (arch/s390/include/uapi/asm/ptrace.h): the PSW's mask and address, then r0-r15; the
access registers after them are four bytes each and left out."""
ARM_REGS = (*tuple(f"r{i}" for i in range(11)), "fp", "ip", "sp", "lr", "pc", "cpsr", "orig_r0")
"""32-bit ARM's pt_regs (arch/arm/include/uapi/asm/ptrace.h): r0-r15 (r11 fp, r12 ip, r13 sp, r14
lr, r15 pc), cpsr, orig_r0; the names are gdb's."""
RISCV64_REGS = (
    "pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", *tuple(f"a{i}" for i in range(8)),
    *tuple(f"s{i}" for i in range(2, 12)), "t3", "t4", "t5", "t6",
)  # fmt: skip
"""struct user_regs_struct of riscv (arch/riscv/include/uapi/asm/ptrace.h): pc, then x1-x31 by their
ABI names (s0 is the frame pointer)."""

ARCHES: dict[str, tuple[str, tuple[str, ...], str, str, str]] = {
    # e_machine: (arch name, register names, pc, sp, frame pointer), each register a word of the
    # core's ELF class
    "EM_X86_64": ("x86_64", X86_64_REGS, "rip", "rsp", "rbp"),
    "EM_AARCH64": ("aarch64", AARCH64_REGS, "pc", "sp", "x29"),
    "EM_PPC64": ("ppc64", PPC64_REGS, "nip", "r1", "r31"),
    "EM_S390": ("s390x", S390X_REGS, "pswa", "r15", "r11"),
    "EM_ARM": ("arm", ARM_REGS, "pc", "sp", "fp"),
    "EM_RISCV": ("riscv64", RISCV64_REGS, "pc", "sp", "s0"),
}

PF_X, PF_W, PF_R = 1, 2, 4


MAX_NOTES = 256 * 1024 * 1024
"""The most note bytes a core may have. The kernel writes a few KiB per thread (prstatus, registers,
siginfo) and one NT_FILE entry per mapping (65530 mappings by default): tens of MiB for the largest
processes. A crafted 3 GB note took analyze past 10 minutes."""
MAX_NOTE_COUNT = 1_000_000
"""The most notes a core may have: about five a thread and one NT_FILE."""
INITIAL_STACK_MAX = 8 << 20
"""How far below the executable's name (AT_EXECFN, at the top of the initial stack) the arguments,
environment and auxiliary vector are looked for: they are bounded by the kernel's ARG_MAX (a
quarter of an 8 MiB stack, and 32 pages of each string)."""


class Segment(NamedTuple):
    """A PT_LOAD segment: memory of the process at the time of the dump (a named tuple: a leak's core
    has tens of thousands, and a frozen dataclass took a third of the time of opening one)."""

    vaddr: int
    memsz: int
    offset: int
    filesz: int
    flags: int

    @property
    def end(self) -> int:
        """First address past the segment."""
        return self.vaddr + self.memsz

    @property
    def perms(self) -> str:
        """Permissions as rwx."""
        return "".join(c if self.flags & bit else "-" for c, bit in (("r", PF_R), ("w", PF_W), ("x", PF_X)))


@dataclass(frozen=True)
class FileMapping:
    """A file mapped into the process (NT_FILE)."""

    start: int
    end: int
    file_offset: int
    path: str


@dataclass(frozen=True)
class ThreadState:
    """One thread's NT_PRSTATUS."""

    tid: int
    cursig: int
    sigpend: int
    sighold: int
    regs: dict[str, int]
    pc: int | None
    sp: int | None
    fp: int | None


@dataclass(frozen=True)
class SigInfo:
    """The signal that ended the process (NT_SIGINFO)."""

    signo: int
    errno: int
    code: int
    addr: int | None
    """The fault address, for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGTRAP."""
    sender_pid: int | None
    """The sending process, for signals sent by a process (si_code <= 0)."""
    sender_uid: int | None


@dataclass(frozen=True)
class ProcessInfo:
    """NT_PRPSINFO: who the process was."""

    pid: int
    ppid: int
    uid: int
    gid: int
    fname: str
    args: str

    @property
    def command(self) -> str | None:
        """The program it ran: the first word of its arguments, else its name (pr_fname, 16 bytes)."""
        return self.args.split(" ", 1)[0] or self.fname or None


_PRPSINFO = {
    # (ELF class, note size): struct elf_prpsinfo after pr_state, pr_sname, pr_zomb, pr_nice
    (64, 136): "4x4xQIIiiii16s80s",  # 64-bit: 8-byte pr_flag, 32-bit uid and gid
    (32, 124): "4xIHHiiii16s80s",  # i386, x32 (compat) and 32-bit arm: 16-bit uid and gid
    (32, 128): "4xIIIiiii16s80s",  # other 32-bit ABIs: 32-bit uid and gid
}
"""NT_PRPSINFO layouts, told apart by the note's size (x32's is i386's, with 16-bit ids: read as
32-bit ids, every field after pr_flag would shift)."""

FAULT_SIGNALS = frozenset({4, 5, 7, 8, 11})  # SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV


LINUX_OWNERS = {"CORE", "LINUX"}
"""The note owners of a Linux core (the kernel's, gdb's gcore, qemu-user's, ours)."""
OTHER_SYSTEMS = {
    "NetBSD-CORE": "NetBSD",
    "FreeBSD": "FreeBSD",
    "OpenBSD": "OpenBSD",
    "DragonFly": "DragonFly BSD",
    "SUNW Solaris": "Solaris",
    "illumos": "illumos",
}
"""Note owners (prefixes) that name another kernel as a core's writer."""


class ElfCore:
    """An ELF core file of a Linux process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open ``path``; check that it is an ELF core (DumpError if not)."""
        self.path = os.fspath(path)
        self.search_roots: list[str] = []
        """Directories (sysroots) under which the recorded paths of a core without NT_FILE are looked up."""
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open for the mmap's lifetime
        except OSError as e:
            raise DumpError(f"cannot open {self.path}: {e.strerror}") from None
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < 64:
                raise DumpError(f"{self.path} is {size} bytes long: too short to be an ELF core")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.size = size
            self._validate()
        except DumpError:
            self.close()
            raise
        except (OSError, ValueError) as e:
            self.close()
            raise DumpError(f"cannot read {self.path}: {e}") from None

    def close(self) -> None:
        """Release the file and its mapping."""
        if getattr(self, "_map", None) is not None:
            self._map.close()
            self._map = None  # type: ignore[assignment]
        self._file.close()
        discard(self)

    def __enter__(self) -> ElfCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _validate(self) -> None:
        head = self._map[:16]
        if head[:4] != b"\x7fELF":
            raise DumpError(f"{self.path} is not an ELF file (it starts with {head[:4]!r}); give a core dump")
        if head[4] not in (1, 2) or head[5] not in (1, 2):
            raise DumpError(
                f"{self.path} is a corrupt ELF core: its class ({head[4]}) or byte order ({head[5]}) is none "
                "that ELF defines"
            )
        self.elfclass = 32 if head[4] == 1 else 64
        self.little_endian = head[5] == 1
        self._e = "<" if self.little_endian else ">"
        if self.size < (64 if self.elfclass == 64 else 52):
            raise DumpError(f"{self.path} is too short for its ELF header: a corrupt ELF core")
        etype, machine = struct.unpack_from(self._e + "HH", self._map, 16)
        _, _, phoff, phentsize, phnum, shoff, _, _ = header_tables(self._map[:64])
        if etype != ET_CORE:
            kind = ELF_TYPES.get(etype, f"{etype:#x}")
            raise DumpError(f"{self.path} is an ELF file of type {kind}, not a core dump (ET_CORE)")
        self.machine = machine_name(machine)
        if phnum == PN_XNUM:  # a process with 65,535 mappings or more: the count is section 0's sh_info
            info_at = shoff + (44 if self.elfclass == 64 else 28)
            if not shoff or info_at + 4 > self.size:
                raise DumpError(
                    f"{self.path} is a corrupt ELF core: it keeps its count of program headers in a section "
                    "header it does not have"
                )
            (phnum,) = struct.unpack_from(self._e + "I", self._map, info_at)
        segments, self._note_ranges = self._program_headers(phoff, phentsize, phnum)
        if not segments and not self._note_ranges:
            raise DumpError(f"{self.path} holds no memory segments (PT_LOAD) and no notes: an empty core")
        notes = sum(size for _, size in self._note_ranges)
        if notes > MAX_NOTES:  # checked before anyone (drgn too) reads them
            raise DumpError(
                f"{self.path} is corrupt or crafted: its notes take {notes} bytes, more than any core "
                f"writer makes ({MAX_NOTES} at most here)"
            )
        system = self._other_system()
        if system is not None:
            raise DumpError(
                f"{self.path} is a core of {system}, not of Linux: notmyfault reads Linux's cores "
                "(their notes are CORE's and LINUX's); analyse it on its own system (gdb, lldb)"
            )
        self.segments = tuple(sorted(segments, key=lambda s: s.vaddr))
        self.expected_size = max((s.offset + s.filesz for s in self.segments), default=self.size)
        """How long the file should be: the end of its last segment's data."""
        self.truncated = self.expected_size > self.size or not self.segments
        """True when the file ends before its last segment does (a cut-off core)."""

    @property
    def note_ranges(self) -> tuple[tuple[int, int], ...]:
        """Where each PT_NOTE segment lies in the file: (offset, size)."""
        return tuple(self._note_ranges)

    @property
    def truncation(self) -> str | None:
        """None for a whole core; else one line saying what is missing (gdb warns likewise)."""
        if not self.truncated:
            return None
        if not self.segments:
            return (
                "the core holds no memory (no PT_LOAD segments, as a core cut after its notes or written "
                "with every mapping filtered out): only its notes can be read (threads, registers, signal, "
                "mapped files), no stack beyond the registers' frame"
            )
        cut = [s for s in self.segments if s.offset + s.filesz > self.size]
        missing = sum(min(s.filesz, s.offset + s.filesz - self.size) for s in cut)
        return (
            f"the core is truncated: the file ends at {self.size} bytes where its segments need "
            f"{self.expected_size}; {len(cut)} of {len(self.segments)} memory segments ({missing} bytes) are "
            "missing or cut short, so what lay there cannot be read"
        )

    def _program_headers(
        self, phoff: int, phentsize: int, phnum: int
    ) -> tuple[list[Segment], list[tuple[int, int]]]:
        """PT_LOAD segments and PT_NOTE ranges, read straight from the mapping.

        A core of a process with thousands of mappings (a leak in many blocks) has as many program
        headers: they are unpacked at C speed into named tuples.
        """
        e = self._e
        if self.elfclass == 64:
            fmt, fields = e + "IIQQQQQQ", (0, 1, 2, 3, 5, 6)  # type flags offset vaddr (paddr) filesz memsz
        else:
            fmt, fields = e + "IIIIIIII", (0, 6, 1, 2, 4, 5)  # type offset vaddr (paddr) filesz memsz flags
        if phentsize < struct.calcsize(fmt) or phoff + phnum * phentsize > self.size:
            raise DumpError(
                f"{self.path} is truncated or corrupt: its program headers run past the end of the file"
            )
        segments: list[Segment] = []
        notes: list[tuple[int, int]] = []
        size = struct.calcsize(fmt)
        table = self._map[phoff : phoff + phnum * phentsize]
        rows: Iterator[tuple[Any, ...]]
        if phentsize != size:  # larger entries than the format's: each read where it starts
            rows = (struct.unpack_from(fmt, table, i * phentsize) for i in range(phnum))
        else:  # the usual case, unpacked at C speed (a leak's core has tens of thousands)
            rows = struct.iter_unpack(fmt, table)
        t, f, o, a, z, m = fields
        for v in rows:
            if v[t] == 1:  # PT_LOAD
                segments.append(Segment(v[a], v[m], v[o], v[z], v[f]))
            elif v[t] == 4:  # PT_NOTE
                notes.append((v[o], v[z]))
        return segments, notes

    @property
    def arch(self) -> str:
        """The architecture name (x86_64, aarch64, ppc64le, s390x, arm, riscv64, i386, x32; the ELF
        machine for others)."""
        if self.machine == "EM_386":
            return "i386"
        if self.machine == "EM_X86_64" and self.elfclass == 32:
            return "x32"
        if self.machine == "EM_PPC64":
            return "ppc64le" if self.little_endian else "ppc64"
        return ARCHES[self.machine][0] if self.machine in ARCHES else self.machine

    @property
    def stack_word(self) -> int:
        """Bytes in a saved frame pointer or return address on the stack (x32 runs in 64-bit mode)."""
        return 4 if self.machine == "EM_386" else (8 if self.machine == "EM_X86_64" else (self.elfclass // 8))

    def _other_system(self) -> str | None:
        """The operating system whose kernel wrote the core, when its notes name one that is not Linux
        (a note's owner names its writer: Linux writes CORE and LINUX; NetBSD NetBSD-CORE, FreeBSD
        FreeBSD, ...). None for Linux's, or when the notes cannot be read (that is said later)."""
        try:
            owners = {name for name, _, _ in self._note_list if isinstance(name, str)}  # hostile: any bytes
        except DumpError:
            return None
        if owners & LINUX_OWNERS:
            return None
        for owner in sorted(owners):
            for prefix, system in OTHER_SYSTEMS.items():
                if owner.startswith(prefix):
                    return system
        return None

    def _notes(self) -> Iterator[tuple[str | None, str | int, bytes]]:
        """Each note: its owner's name (None without one), its type (``CORE_NOTE_TYPES``' name, else
        the number) and its description's bytes."""
        count = 0
        e = self._e
        for offset, size in self._note_ranges:
            if offset + size > self.size:
                raise DumpError(f"{self.path} is truncated: its notes run past the end of the file")
            self._check_note_sizes(offset, size)
            at, end = offset, offset + size
            while at + 12 <= end:
                namesz, descsz, ntype = struct.unpack_from(e + "III", self._map, at)
                if not namesz and not descsz and not ntype:
                    break  # zeros: padding after the last note, as no writer makes an empty note
                count += 1
                if count > MAX_NOTE_COUNT:
                    raise DumpError(
                        f"{self.path} is corrupt or crafted: it has more than {MAX_NOTE_COUNT} notes"
                    )
                name_at = at + 12
                desc_at = name_at + ((namesz + 3) & ~3)
                name = bytes(self._map[name_at : name_at + namesz]).split(b"\0", 1)[0].decode("latin-1")
                desc = bytes(self._map[desc_at : desc_at + descsz])
                if len(desc) < descsz:
                    raise DumpError(f"{self.path} is truncated: its notes run past the end of the file")
                kind = CORE_NOTE_TYPES.get(ntype, ntype)
                if kind == "NT_FILE":
                    self._check_file_note(desc)
                yield (name if namesz else None), kind, desc
                at = desc_at + ((descsz + 3) & ~3)

    def _check_file_note(self, desc: bytes) -> None:
        """Refuse an NT_FILE whose table or names run past its description."""
        word = self._word
        if len(desc) < 2 * word:
            raise DumpError(f"{self.path} has corrupt notes: its NT_FILE is {len(desc)} bytes long")
        count = struct.unpack_from(self._e + ("Q" if word == 8 else "I"), desc, 0)[0]
        if 2 * word + 3 * word * count > len(desc) or desc.count(b"\0", 2 * word + 3 * word * count) < count:
            raise DumpError(
                f"{self.path} has corrupt notes: its NT_FILE claims {count} mapped files and holds fewer"
            )

    def _check_note_sizes(self, offset: int, size: int) -> None:
        """Refuse a note whose name or description would run past its PT_NOTE segment, before the
        reader allocates what it claims (a crafted descsz of 0xfffffff0 was a 4 GiB allocation, and
        MemoryError under a memory limit)."""
        at, end = offset, offset + size
        while at + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from(self._e + "III", self._map, at)
            if not namesz and not descsz and not ntype:
                return  # zeros: padding after the last note
            need = 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
            if at + need > end + 3:  # the last note's padding may be cut at the segment's end
                raise DumpError(
                    f"{self.path} has corrupt notes: a note at offset {at:#x} claims {namesz + descsz} bytes "
                    f"where its PT_NOTE segment has {end - at - 12} left"
                )
            at += need

    @cached_property
    def _note_list(self) -> list[tuple[str | None, str | int, bytes]]:
        return list(self._notes())

    @cached_property
    def threads(self) -> tuple[ThreadState, ...]:
        """Every thread, in the order of the dump: the first is the one that took the signal."""
        layout = self._register_layout()
        out = []
        for _name, ntype, desc in self._note_list:
            if ntype != "NT_PRSTATUS" or len(desc) < 72:
                continue
            e = self._e
            if self.elfclass == 64:
                cursig = struct.unpack_from(e + "h", desc, _PR_CURSIG)[0]
                sigpend, sighold = struct.unpack_from(e + "QQ", desc, _PR_SIGPEND)
                (tid,) = struct.unpack_from(e + "i", desc, _PR_PID)
                reg_at = _PR_REG
            else:  # 32-bit prstatus: 4-byte signal sets, pr_reg at 72
                cursig = struct.unpack_from(e + "h", desc, 12)[0]
                sigpend, sighold = struct.unpack_from(e + "II", desc, 16)
                (tid,) = struct.unpack_from(e + "i", desc, 24)
                reg_at = 72
            regs: dict[str, int] = {}
            if layout is not None:
                names, word = layout[0], layout[1]
                if len(desc) >= reg_at + word * len(names):
                    fmt = f"{e}{len(names)}{'Q' if word == 8 else 'I'}"
                    regs = dict(zip(names, struct.unpack_from(fmt, desc, reg_at), strict=True))
            pc = sp = fp = None
            if regs and layout is not None:
                pc, sp, fp = regs.get(layout[2]), regs.get(layout[3]), regs.get(layout[4])
            out.append(ThreadState(tid, cursig, sigpend, sighold, regs, pc, sp, fp))
        if not out:
            raise DumpError(f"{self.path} has no thread state (NT_PRSTATUS): not a process core, or corrupt")
        return tuple(out)

    def extended_registers(self, tid: int) -> dict[str, int]:
        """Thread ``tid``'s floating-point and vector registers (``dumps.fpregs``: x87, SSE and AVX
        on x86_64; v0-v31, fpsr and fpcr on aarch64), from the notes that follow its NT_PRSTATUS;
        {} where the core has none or the architecture's are not decoded."""
        from notmyfault.dumps.fpregs import aarch64_registers, x86_64_registers

        mine = False
        found: dict[object, bytes] = {}
        for _name, ntype, desc in self._note_list:
            if ntype == "NT_PRSTATUS":
                if mine:
                    break
                mine = (
                    len(desc) > _PR_PID + 4
                    and self.elfclass == 64
                    and (struct.unpack_from(self._e + "i", desc, _PR_PID)[0] == tid)
                )
            elif mine and ntype in ("NT_FPREGSET", NT_X86_XSTATE):
                found.setdefault(ntype, desc)
        if self.machine == "EM_X86_64":
            return x86_64_registers(found.get("NT_FPREGSET"), found.get(NT_X86_XSTATE))
        if self.machine == "EM_AARCH64":
            return aarch64_registers(found.get("NT_FPREGSET"), self._e == ">")
        return {}

    def _register_layout(self) -> tuple[tuple[str, ...], int, str, str, str] | None:
        """(register names, register size, pc, sp, frame pointer) of pr_reg, where decoded."""
        if self.machine == "EM_386" and self.elfclass == 32:
            return I386_REGS, 4, "eip", "esp", "ebp"
        if self.machine in ARCHES:  # x32 keeps x86_64's 8-byte registers
            _, names, pc_name, sp_name, fp_name = ARCHES[self.machine]
            word = 8 if self.machine == "EM_X86_64" else self.elfclass // 8
            if self.machine in ("EM_S390", "EM_RISCV", "EM_PPC64") and self.elfclass != 64:
                return None  # their 32-bit forms (s390, riscv32, ppc32) are not read
            return names, word, pc_name, sp_name, fp_name
        return None

    @cached_property
    def siginfo(self) -> SigInfo | None:
        """The signal that ended the process, or None if the core has no NT_SIGINFO."""
        for _name, ntype, desc in self._note_list:
            if ntype == "NT_SIGINFO" and len(desc) >= 24:
                e = self._e
                signo, errno, code = struct.unpack_from(e + "iii", desc, 0)
                # the union starts 16 bytes in on 64-bit (after an alignment pad), 12 on 32-bit
                union = 16 if self.elfclass == 64 else 12
                addr = pid = uid = None
                if code > 0 and signo in FAULT_SIGNALS:
                    (addr,) = struct.unpack_from(e + ("Q" if self.elfclass == 64 else "I"), desc, union)
                elif code <= 0:
                    pid, uid = struct.unpack_from(e + "iI", desc, union)
                return SigInfo(signo, errno, code, addr, pid, uid)
        return None

    @cached_property
    def process(self) -> ProcessInfo | None:
        """Who the process was (NT_PRPSINFO), or None if the core does not say."""
        for _name, ntype, desc in self._note_list:
            if ntype != "NT_PRPSINFO":
                continue
            layout = _PRPSINFO.get((self.elfclass, len(desc)))
            if layout is None:
                return None
            _flag, uid, gid, pid, ppid, _pgrp, _sid, fname, args = struct.unpack(self._e + layout, desc)

            def text(raw: bytes) -> str:
                return raw.split(b"\0", 1)[0].decode(errors="surrogateescape").rstrip()

            return ProcessInfo(pid, ppid, uid, gid, text(fname), text(args))
        return None

    @property
    def _word(self) -> int:
        """The size of a pointer in the core's own structures (auxv, link map): by its ELF class."""
        return 8 if self.elfclass == 64 else 4

    @cached_property
    def _auxv_note(self) -> bytes | None:
        """The NT_AUXV note's bytes (None without it)."""
        return next((d for _n, t, d in self._note_list if t == "NT_AUXV"), None)

    @cached_property
    def auxv(self) -> dict[int, int]:
        """The auxiliary vector (NT_AUXV): AT_* type -> value ({} without the note)."""
        raw = self._auxv_note
        return {} if raw is None else parse_auxv(raw, self._word, self._e)

    @cached_property
    def _initial_stack(self) -> tuple[list[str], list[str]] | None:
        """The arguments and environment strings the kernel copied at exec to the top of the initial
        stack, below the executable's name (AT_EXECFN).  They are found from the stack's exec-time
        layout (argc, argv[], NULL, envp[], NULL, then the auxiliary vector, which the core's NT_AUXV
        holds byte for byte).  None when the dump lacks that stack."""
        raw = self._auxv_note
        execfn = self.auxv.get(AT_EXECFN)
        seg = self.segment_at(execfn) if execfn else None
        if raw is None or execfn is None or seg is None:
            return None
        low = max(seg.vaddr, execfn - INITIAL_STACK_MAX)
        try:
            area = self.read(low, execfn - low)
        except UnreadableMemory:
            return None
        at, w = area.rfind(raw), self._word
        big = self._e == ">"
        words = array.array("Q" if w == 8 else "I")  # the words below the auxiliary vector
        if at > 0:
            words.frombytes(area[at % w : at])
            if big != (sys.byteorder == "big"):
                words.byteswap()
        end = len(words)  # the auxiliary vector's index

        def points_in(value: int) -> bool:
            return low <= value < execfn

        for j in range(end - 1, max(-1, end - (1 << 17)), -1):  # argc: argv[argc] pointers, then NULL
            n = words[j]
            if 1 <= n < 1 << 17 and j + n + 1 < end and words[j + n + 1] == 0:
                argv = words[j + 1 : j + n + 1]
                if all(points_in(p) for p in argv):
                    break
        else:
            return None
        start = area.find(b"\0", argv[-1] - low)  # the end of the last argument
        if start < 0:
            return None

        def string(p: int) -> str:
            stop = area.find(b"\0", p - low)
            return area[p - low : stop if stop >= 0 else len(area)].decode(errors="surrogateescape")

        env = [v.decode(errors="surrogateescape") for v in area[start + 1 :].split(b"\0") if v]
        return [string(p) for p in argv], env

    @property
    def arguments(self) -> list[str] | None:
        """The process's arguments (argv), whole, as the kernel copied them at exec (the core's
        NT_PRPSINFO keeps only their first 80 bytes); None when the dump lacks that stack."""
        found = self._initial_stack
        return None if found is None else found[0]

    @property
    def environment(self) -> list[str] | None:
        """The process's environment strings (``NAME=value``), as /proc/PID/environ gives them: the
        strings between the last argument's and the executable's name at the top of the initial
        stack (``_initial_stack``).  None when the dump lacks that stack.  It may hold secrets: the
        analyzer shows it only when asked."""
        found = self._initial_stack
        return None if found is None else found[1]

    def search_first(self, root: str) -> None:
        """Look up the recorded paths under ``root`` (a sysroot) before anywhere else. What was
        found by the earlier roots (the images, the files) is found again on next use."""
        if root in self.search_roots:
            return
        self.search_roots.insert(0, root)
        for cached in ("linked_images", "images", "files", "_files_by_start"):
            self.__dict__.pop(cached, None)

    def locate(self, recorded: str) -> str | None:
        """A file on this machine for a path the core records: under each of ``search_roots``
        (a sysroot), then as recorded (a relative one beside the core first)."""
        rel = recorded.lstrip("/")
        here = os.path.dirname(os.path.abspath(self.path))
        candidates = [os.path.join(root, rel) for root in self.search_roots]
        candidates += [recorded] if os.path.isabs(recorded) else [os.path.join(here, recorded), recorded]
        return next((c for c in candidates if os.path.isfile(c)), None)

    def image_at(
        self, addr: int, path: str | None = None
    ) -> tuple[tuple[tuple[int, int, int], ...], bytes | None]:
        """The ranges and build-id of the ELF image whose header the dump holds at ``addr``; with the
        ``path`` of its file, only if its segments land where NT_FILE maps that file (see
        ``linkmap.image_at``)."""
        mappings = None
        if path is not None:
            mappings = [(f.start, f.end, f.file_offset) for f in self.files if f.path == path]
        return image_at(self, addr, self._word, self._e, mappings)

    def copy_build_id(self, path: str) -> bytes | None:
        """The build-id that a copy of ``path``'s first page in the dump names (its mappings at file
        offset 0), for a module placed without its header."""
        for f in self.files:
            if (
                f.path == path
                and f.file_offset == 0
                and (found := copy_build_id(self, f.start, self._word, self._e))
            ):
                return found
        return None

    def file_runs(self, path: str) -> list[tuple[int, int]]:
        """The address ranges over which NT_FILE maps ``path``: each run of its consecutive mappings
        (in address order, with no other file's mapping between them) is one loaded image of it,
        from its first mapping's start to its last one's end."""
        runs: list[tuple[int, int]] = []
        ordered = self._files_by_start[1]
        i = 0
        while i < len(ordered):
            if ordered[i].path != path:
                i += 1
                continue
            start = ordered[i].start
            while i + 1 < len(ordered) and ordered[i + 1].path == path:
                i += 1
            runs.append((start, ordered[i].end))
            i += 1
        return runs

    @cached_property
    def linked_images(self) -> tuple[LoadedImage, ...]:
        """The executable, libraries and vDSO the process's memory shows (the auxiliary vector and the
        dynamic loader's link map), whether or not the core has NT_FILE: where a core left a library's
        headers out, the link map still names it (as gdb lists it)."""
        exe = self.process.command if self.process else None
        try:
            found = loaded_images(self, self.auxv, self._word, self._e, exe, self.locate)
        except (UnreadableMemory, struct.error, ValueError):
            return ()
        return tuple(found)

    @cached_property
    def has_file_note(self) -> bool:
        """Whether the core carries NT_FILE (kernels since 3.7 write it; qemu-user and others do not)."""
        return any(ntype == "NT_FILE" for _name, ntype, _desc in self._note_list)

    @cached_property
    def images(self) -> tuple[LoadedImage, ...]:
        """For a core without NT_FILE: the executable, libraries and vDSO found in its memory
        (the auxiliary vector and the link map); () when the core has NT_FILE."""
        return () if self.has_file_note else self.linked_images

    @cached_property
    def files(self) -> tuple[FileMapping, ...]:
        """Mapped files (NT_FILE; without it, the images the process's memory shows, as mappings)."""
        if not self.has_file_note:
            return tuple(
                FileMapping(start, end, offset, img.path)
                for img in self.images
                for start, end, offset in img.ranges
            )
        out = []
        e, word = self._e, self._word
        fmt = "Q" if word == 8 else "I"
        for _name, ntype, desc in self._note_list:
            if ntype != "NT_FILE":
                continue
            count, page = struct.unpack_from(e + 2 * fmt, desc, 0)
            table = struct.unpack_from(f"{e}{3 * count}{fmt}", desc, 2 * word)
            names = desc[2 * word + 3 * word * count :].split(b"\0")[:count]
            for i, name in enumerate(names):
                start, end, page_offset = table[3 * i : 3 * i + 3]
                out.append(FileMapping(start, end, page_offset * page, os.fsdecode(name)))
        return tuple(out)

    def file_at(self, addr: int) -> FileMapping | None:
        """The mapped file that holds ``addr``, if any (mappings do not overlap: the one that starts
        last at or below ``addr`` is the only one that can; a stack scan asks for every word)."""
        starts, ordered = self._files_by_start
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < ordered[i].end:
            return ordered[i]
        return None

    @cached_property
    def _files_by_start(self) -> tuple[list[int], list[FileMapping]]:
        ordered = sorted(self.files, key=lambda f: f.start)
        return [f.start for f in ordered], ordered

    @cached_property
    def _starts(self) -> list[int]:
        return [s.vaddr for s in self.segments]

    def file_base(self, path: str) -> int:
        """Where the file ``path`` is loaded: the lowest start of its mappings."""
        return min(f.start for f in self.files if f.path == path)

    def segment_at(self, addr: int) -> Segment | None:
        """The PT_LOAD segment that holds ``addr``, if any (a binary search: cores have thousands)."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self.segments[i].vaddr <= addr < self.segments[i].end:
            return self.segments[i]
        return None

    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes of process memory at ``addr``; raise UnreadableMemory if the dump lacks them."""
        seg = self.segment_at(addr)
        if seg is None:
            raise UnreadableMemory(f"{addr:#x} is not in the dump")
        off = addr - seg.vaddr
        if off + size > seg.filesz or seg.offset + off + size > self.size:
            raise UnreadableMemory(
                f"{addr:#x}+{size} is not in the file (not dumped, or the core is truncated)"
            )
        start = seg.offset + off
        return bytes(self._map[start : start + size])

    CHUNK = 32 << 20

    @cached_property
    def _by_offset(self) -> tuple[list[int], list[Segment]]:
        segs = sorted((x for x in self.segments if x.filesz), key=lambda x: x.offset)
        return [x.offset for x in segs], segs

    def find_all(self, needle: bytes) -> Iterator[int]:
        """Every address in the dumped memory where ``needle`` starts.

        The file's data area is searched through the mapping in 32 MiB windows
        (no copies), across segment boundaries, and each hit is mapped back to
        its segment; a hit that straddles two segments is not one.  Each
        window's pages are released after it, so the resident set stays flat
        however big the core is.
        """
        offsets, segs = self._by_offset
        if not needle or not segs:
            return
        start = segs[0].offset
        stop = min(max(x.offset + x.filesz for x in segs), self.size)
        pos = start
        while pos < stop:
            window_end = min(pos + self.CHUNK, stop)
            # a match may start in this window and end past it: search up to the needle's length beyond
            i = self._map.find(needle, pos, min(window_end + len(needle) - 1, stop))
            while i >= 0 and i < window_end:
                k = bisect.bisect_right(offsets, i) - 1
                seg = segs[k] if k >= 0 else None
                if seg is not None and i + len(needle) <= seg.offset + seg.filesz:
                    yield seg.vaddr + (i - seg.offset)
                i = self._map.find(needle, i + 1, min(window_end + len(needle) - 1, stop))
            self._release(pos, window_end)
            pos = window_end

    def _release(self, start: int, end: int) -> None:
        """Drop the pages of [start, end) from this process's resident set (they stay in the page cache)."""
        page = mmap.PAGESIZE
        lo = start - start % page
        with contextlib.suppress(OSError, ValueError):
            self._map.madvise(mmap.MADV_DONTNEED, lo, end - lo)


def is_vmcore(core: ElfCore) -> bool:
    """Whether an ELF core carries a VMCOREINFO note (a kernel vmcore, not a process core)."""
    try:
        return any(name == "VMCOREINFO" for name, _t, _d in core._note_list)
    except DumpError:
        return False
