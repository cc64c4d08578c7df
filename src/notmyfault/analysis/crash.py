"""``!analyze -v`` for a Linux process core: class, arguments, blame, faulting instruction, stack."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from notmyfault.analysis.blame import choose, is_system_module
from notmyfault.analysis.classes import CRASH_CLASSES
from notmyfault.analysis.deadlock import LockWait, find_deadlock
from notmyfault.analysis.signature import (
    DEFAULT_RULES,
    PYTHON_LIBRARY,
    SIGN_DEPTH,
    SignFrame,
    bucket_key,
    signature,
)
from notmyfault.analysis.signature import program as program_name
from notmyfault.base.sigcodes import si_code_name, signal_name
from notmyfault.dumps import origin, report_fields
from notmyfault.dumps.elfcore import PF_X, ElfCore, SigInfo
from notmyfault.dumps.unpack import REPORT_FIELDS
from notmyfault.unwind.elf import (
    Program,
    Walk,
    code_bytes,
    load_program,
    signal_context,
    thread_walk,
)
from notmyfault.unwind.frames import Frame, PythonFrame
from notmyfault.unwind.isa import capstone_for, code_arch
from notmyfault.unwind.names import base_name
from notmyfault.unwind.python import (
    PythonStacks,
    PythonThread,
    is_eval_frame,
    merge,
    read_python_stacks,
    runs_python,
    starts_thread,
)

NULL_PAGE = 4096
STACK_GUARD_REACH = 1024 * 1024 + 64 * 1024
"""How far below a stack mapping a fault still counts as hitting its guard (stack_guard_gap is 1 MiB)."""


@dataclass(frozen=True)
class Instruction:
    """A decoded instruction."""

    address: int
    text: str
    """Mnemonic and operands (Intel syntax on x86)."""
    size: int
    access: str | None
    """read, write or None: what it does to memory, from the decoder."""


@dataclass(frozen=True)
class SystemFacts:
    """The machine and system that wrote a dump, where the dump records them (a minidump's system
    info stream): as minidump-stackwalk prints them."""

    os: str
    """Linux, Windows NT, Mac OS X, ..."""
    os_version: str | None
    cpu_arch: str
    """Our architecture's name (x86_64, aarch64, x86, arm)."""
    cpu_info: str | None
    """The CPU's family, model and stepping (x86; with the vendor on x86 where the dump has it)."""
    cpu_count: int | None


@dataclass(frozen=True, kw_only=True)
class CrashAnalysis:
    """Everything ``notmyfault analyze`` says about a dump (keyword arguments only; what a dump
    kind does not record is left at its default)."""

    path: str
    arch: str
    pid: int | None = None
    executable: str | None = None
    command_line: str | None = None
    uid: int | None = None
    crashed_tid: int | None = None
    signal: int | None = None
    signal_name: str | None = None
    si_code: int | None = None
    si_code_name: str | None = None
    fault_address: int | None = None
    sender_pid: int | None = None
    access: str | None = None
    access_source: str = "not known"
    """How the access kind was found: the signal, the instruction, or not known."""
    fault_pc: int | None = None
    instruction: Instruction | None = None
    blocked_signals: tuple[str, ...] = ()
    crash_class: str
    description: str
    blamed: Frame | None
    blame_reason: str
    abort_message: str | None = None
    frames: tuple[Frame, ...]
    notes: tuple[str, ...] = field(default=())
    missing: tuple[str, ...] = field(default=())
    other_builds: tuple[str, ...] = field(default=())
    """Of ``missing``, the modules whose file here is another build (see the notes)."""
    """Modules whose files or debug information could not be found."""
    deadlock: tuple[LockWait, ...] = field(default=())
    """The threads of a mutex wait cycle, when the dump shows one."""
    dump_kind: str = "elf-core"
    """elf-core, minidump or windows-kernel."""
    exception_code: int | None = None
    """Windows minidumps: the NTSTATUS exception code (Linux minidumps: the signal, as ``signal``);
    Windows kernel dumps: the bug check code."""
    exception_name: str | None = None
    exception_parameters: tuple[int, ...] = field(default=())
    exception_address: int | None = None
    """Minidumps of Windows and macOS: the exception record's own address (where the exception was
    raised: for most exceptions the instruction's address; minidump-stackwalk's crash address unless
    the exception names the memory it touched)."""
    argument_notes: tuple[str, ...] = field(default=())
    """Windows kernel dumps: what each bug check parameter means."""
    report: dict[str, str] = field(default_factory=dict)
    """For a core unpacked from an apport report: the report's fields (ExecutablePath, Package, ...)."""
    truncated: str | None = None
    """None for a whole dump; else what its reader found missing (the file ends too early)."""
    sign_frames: tuple[Frame, ...] | None = None
    """The stack the signature is taken from where it is not ``frames``: for a deadlock, the stack
    of the cycle's first thread."""
    python: PythonThread | None = None
    """A CPython process: the crashed thread's Python stack (innermost first), also merged into
    ``frames`` where it matches them (each eval-loop frame carries the Python frames it runs)."""
    python_error: str | None = None
    """A CPython process whose Python frames could not be read: why."""
    blamed_python: PythonFrame | None = None
    """When every native frame is the interpreter's or the C library's: the program's Python frame
    that made the call (``blamed`` is then the innermost system frame, as the native rule says)."""
    python_callee: str | None = None
    """What ``blamed_python`` called: the library's Python function (ctypes.string_at), or the native one."""
    system: SystemFacts | None = None
    """The machine and system that wrote the dump, where it records them (minidumps)."""

    @property
    def program(self) -> str:
        """The program the bucket is scoped by (python3, bash, crashers; linux or windows for a kernel)."""
        return program_name(self.dump_kind, self.executable)

    @cached_property
    def sign_stack(self) -> list[SignFrame]:
        """The frames the signature reads (and triage stores), innermost first, Python frames included."""
        if self.sign_frames is not None:
            return sign_frames(self.sign_frames, limit=SIGN_DEPTH)
        return sign_frames(self.frames, self.python, limit=SIGN_DEPTH)

    @cached_property
    def signature(self) -> str:
        """The crash signature by the built-in rules (notmyfault.analysis.signature)."""
        return signature(self.sign_stack)

    @property
    def bucket(self) -> str:
        """BUCKET_ID: ``CLASS:program:signature``, the same bucket ``triage`` files the dump in."""
        return bucket_key(
            self.crash_class, self.program, self.signature, self.signal_name or self.exception_name
        )

    @property
    def probably_caused_by(self) -> str:
        """The WinDbg line: 'myfault.cpython-311-x86_64-linux-gnu.so ( myfault!myfault_high_irql+0x2c )'."""
        if self.blamed_python is not None:
            callee = f"{self.python_callee} called from " if self.python_callee else ""
            return f"{callee}{self.blamed_python.where()}"
        if self.blamed is None:
            return "unknown (no frame in a known module)"
        return f"{base_name(self.blamed.module or '?')} ( {self.blamed.location()} )"


def sign_frames(
    frames: Sequence[Frame], python: PythonThread | None = None, limit: int | None = None
) -> list[SignFrame]:
    """What the signature rule reads of each frame: its name, its module's file name, its offset;
    the first ``limit`` of them (all when None).

    A Python frame comes just before the eval-loop frame that runs it, named ``module.function``
    for the interpreter's library (ctypes.string_at, in the irrelevant module ``<python library>``)
    and ``function`` in its file's name (app.py) for the program's own; a Python stack that could not
    be merged follows the native frames."""
    out: list[SignFrame] = []
    merged = False
    for f in frames:
        if limit is not None and len(out) >= limit:  # a deep stack: what follows is never read
            return out[:limit]
        for p in f.python:
            out.append(_python_sign_frame(p))
            merged = True
        out.append(
            SignFrame(
                f.function,
                base_name(f.module) if f.module else None,
                f.pc - f.module_base if f.module and f.module_base is not None else None,
            )
        )
    if python is not None and not merged:
        out.extend(_python_sign_frame(p) for p in python.frames)
    return out if limit is None else out[:limit]


def _python_sign_frame(p: PythonFrame) -> SignFrame:
    return SignFrame(p.qualified, PYTHON_LIBRARY if p.stdlib else base_name(p.file), None)


def _abort_message(program: Program) -> str | None:
    """glibc's last abort message (__abort_msg), if the dump holds one."""
    prog = program.prog
    try:
        sym = prog.symbol("__abort_msg")
        ptr = prog.read_word(sym.address)
        if not ptr:
            return None
        text = prog.read(ptr + 4, 512).split(b"\0", 1)[0]
    except Exception:
        return None
    return text.decode(errors="surrogateescape").strip() or None


def decode(
    core: ElfCore, pc: int, sysroot: str | None = None, regs: dict[str, int] | None = None
) -> Instruction | None:
    """Decode the instruction at ``pc`` with capstone (from the dump, or the mapped file), in the
    instruction set that ``regs`` say runs (32-bit ARM's Thumb)."""
    data = code_bytes(core, pc, 16, sysroot)
    if not data:
        return None
    return decode_bytes(data, pc, code_arch(core.arch, regs or {}))


def decode_bytes(data: bytes, pc: int, arch: str) -> Instruction | None:
    """Decode the first instruction of ``data`` (machine code at ``pc`` for ``arch``) with capstone,
    with the memory access it makes."""
    import capstone  # type: ignore[import-untyped]

    md = capstone_for(arch)
    if md is None:
        return None
    md.detail = True
    for insn in md.disasm(data, pc):
        access = None
        try:
            for op in insn.operands:
                if op.type == getattr(capstone, "CS_OP_MEM", 3):
                    if op.access & capstone.CS_AC_WRITE:
                        access = "write"
                    elif op.access & capstone.CS_AC_READ and access is None:
                        access = "read"
        except (capstone.CsError, AttributeError):  # operand details capstone gives not for every arch
            pass
        if arch in ("x86_64", "x32", "i386", "x86") and _x86_store(insn):
            access = "write"
        if access is None and arch in ("x86_64", "x32", "i386", "x86"):
            # implicit stack accesses have no memory operand: a stack overflow often faults on a
            # push or a call (the return address), which write; pop, ret and leave read
            mnemonic = insn.mnemonic
            if mnemonic.startswith(("push", "call", "enter")):
                access = "write"
            elif mnemonic.startswith(("pop", "ret", "leave")):
                access = "read"
        if access is None and arch in ("aarch64", "arm", "thumb"):
            # their loads and stores: ld*/st* (and 32-bit ARM's push and pop)
            access = (
                "write"
                if insn.mnemonic.startswith(("st", "push"))
                else "read"
                if insn.mnemonic.startswith(("ld", "pop"))
                else None
            )
        if access is None and arch in ("ppc64le", "ppc64", "s390x") and insn.op_str.count("(") == 1:
            # a load or store: their mnemonics start with st (stores) or l (loads) on both
            access = (
                "write"
                if insn.mnemonic.startswith("st")
                else "read"
                if insn.mnemonic.startswith("l")
                else None
            )
        return Instruction(insn.address, f"{insn.mnemonic} {insn.op_str}".strip(), insn.size, access)
    return None


X86_STORES = re.compile(
    r"v?(p?mov|movnt|extract|pextr|maskmov|p?scatter|p?compress)\w*|fn?st\w*|fistt?p?|fbstp|stmxcsr|vstmxcsr"
)
"""x86 instructions that write their first operand when it is memory: capstone 5 marks the memory
operand of SSE, AVX and AVX-512 stores (``movups xmmword ptr [rdi], xmm0``, ``vmovups zmmword ptr
[rax], zmm2``, as glibc's memset runs them) as read."""


def _x86_store(insn: Any) -> bool:
    """True if ``insn`` (x86, with details) stores to a memory first operand."""
    import capstone

    try:
        ops = insn.operands
    except capstone.CsError:
        return False
    mem = getattr(capstone, "CS_OP_MEM", 3)
    return bool(ops) and ops[0].type == mem and X86_STORES.fullmatch(insn.mnemonic.split()[-1]) is not None


def operand_address(data: bytes, pc: int, arch: str, regs: dict[str, int]) -> int | None:
    """The address the first memory operand of the instruction at ``pc`` refers to, computed from the
    registers (base + index * scale + displacement; pc-relative on x86_64); None when the instruction
    has no memory operand or a register it needs is not known (a segment base such as fs)."""
    import capstone

    arch = code_arch(arch, regs)
    md = capstone_for(arch) if arch in OPERAND_ARCHES else None
    if md is None:
        return None
    md.detail = True
    mask = (1 << (32 if arch in ("x32", "i386", "x86", "arm", "thumb") else 64)) - 1
    for insn in md.disasm(data, pc):
        try:
            for op in insn.operands:
                if op.type != getattr(capstone, "CS_OP_MEM", 3):
                    continue
                mem = op.mem
                if getattr(mem, "segment", 0):
                    return None  # fs:/gs: relative: the segment base is not in the registers
                total = mem.disp
                for reg, scale in ((mem.base, 1), (getattr(mem, "index", 0), getattr(mem, "scale", 1) or 1)):
                    if not reg:
                        continue
                    name = insn.reg_name(reg)
                    if name in ("rip", "eip"):
                        value: int | None = insn.address + insn.size
                    elif name == "pc" and arch in ("arm", "thumb"):  # reads as the instruction's + 8 (+ 4)
                        value = (insn.address + (4 if arch == "thumb" else 8)) & ~3
                    else:
                        value = _register(name, regs, arch)
                    if value is None:
                        return None
                    total += value * scale
                return int(total) & mask
        except (capstone.CsError, AttributeError):
            return None
        return None
    return None


OPERAND_ARCHES = ("x86_64", "x32", "i386", "x86", "aarch64", "arm", "thumb", "ppc64le", "ppc64", "s390x")
"""The instruction sets whose memory operands ``operand_address`` computes (capstone's base, index,
scale and displacement)."""


def _register(name: str, regs: dict[str, int], arch: str) -> int | None:
    """A register's value by capstone's name (32-bit views of 64-bit registers included)."""
    if name in regs:
        return regs[name]
    if arch == "x86_64" and name.startswith("e") and "r" + name[1:] in regs:
        return regs["r" + name[1:]] & 0xFFFFFFFF
    if arch == "x86_64" and name.endswith("d") and name[:-1] in regs:  # r8d
        return regs[name[:-1]] & 0xFFFFFFFF
    if arch == "aarch64":
        if name in ("xzr", "wzr"):
            return 0
        alias = {"fp": "x29", "lr": "x30"}.get(name, name)
        if alias in regs:
            return regs[alias]
        if name.startswith("w") and "x" + name[1:] in regs:
            return regs["x" + name[1:]] & 0xFFFFFFFF
    if arch in ("arm", "thumb"):
        alias = {"sb": "r9", "sl": "r10", "r11": "fp", "r12": "ip", "r13": "sp", "r14": "lr"}.get(name, name)
        return regs.get(alias)
    if arch == "s390x" and name.isdigit():  # capstone names s390x's general registers by number
        return regs.get(f"r{name}")
    return None


def _blocked(mask: int) -> tuple[str, ...]:
    return tuple(signal_name(i + 1) for i in range(64) if mask & (1 << i))


_HEAP_PATTERNS = re.compile(
    r"free\(\)|malloc\(\)|realloc\(\)|corrupted|unaligned tcache|invalid (next )?size|munmap_chunk|malloc_consolidate"
)


def _abort_class(message: str | None) -> str:
    if not message:
        return "ABORT"
    if "double free" in message:
        return "DOUBLE_FREE"
    if "Assertion" in message and "failed" in message:
        return "ASSERTION_FAILURE"
    if _HEAP_PATTERNS.search(message):
        return "HEAP_CORRUPTION"
    return "ABORT"


def _in_stack_guard(core: ElfCore, addr: int, sp: int | None) -> bool:
    """True if ``addr`` lies in the guard area just below a stack: the mapping right
    above it is within the guard gap, and the thread's stack pointer is at its bottom
    (already below it, often: the frame that faulted was being set up)."""
    if sp is None:
        return False
    for seg in core.segments:
        if 0 < seg.vaddr - addr <= STACK_GUARD_REACH and addr - 65536 <= sp < seg.end:
            return True
    return False


def _wild_pc(core: ElfCore, pc: int | None) -> bool:
    """Whether the pc is outside every executable mapping (of a core without memory segments, which
    cannot tell: outside every mapped file that NT_FILE lists)."""
    if pc is None:
        return False
    if not core.segments:
        return core.has_file_note and core.file_at(pc) is None
    seg = core.segment_at(pc)
    return seg is None or not seg.flags & PF_X


def _segv_class(
    core: ElfCore, addr: int | None, pc: int | None, sp: int | None, access: str | None, accerr: bool
) -> tuple[str, list[str]]:
    """The class of a SIGSEGV: from where the pc is, then the fault address and the access."""
    notes: list[str] = []
    if pc is not None and _wild_pc(core, pc):
        if pc < NULL_PAGE:
            return "NULL_POINTER_EXECUTE", notes
        if core.segment_at(pc) is not None:
            return "EXECUTE_NON_EXECUTABLE", notes
        notes.append(f"the program counter {pc:#x} is outside every mapping")
        return "STACK_CORRUPTION", notes
    if addr is not None and _in_stack_guard(core, addr, sp):
        return "STACK_OVERFLOW", notes
    if addr is not None and addr < NULL_PAGE:
        return ("NULL_POINTER_WRITE" if access == "write" else "NULL_POINTER_READ"), notes
    if accerr and access == "write":
        return "WRITE_TO_READONLY_MEMORY", notes
    return ("INVALID_MEMORY_WRITE" if access == "write" else "INVALID_MEMORY_READ"), notes


def classify(
    core: ElfCore,
    sig: SigInfo | None,
    pc: int | None,
    sp: int | None,
    access: str | None,
    abort: str | None,
    computed: int | None = None,
) -> tuple[str, list[str]]:
    """Pick the crash class; return it with notes that explain the choice.

    ``computed``: for a core without NT_SIGINFO, the address the faulting instruction's memory
    operand refers to, computed from the registers.
    """
    notes: list[str] = []
    if sig is None:
        cursig = core.threads[0].cursig
        by_signal = {
            6: _abort_class(abort),
            5: "BREAKPOINT",
            4: "ILLEGAL_INSTRUCTION",
            7: "BUS_ERROR",
            8: "ARITHMETIC_ERROR",
        }
        if cursig in by_signal:
            return by_signal[cursig], [
                f"the core has no NT_SIGINFO: the signal ({signal_name(cursig)}) comes from pr_cursig, without si_code or address"
            ]
        if cursig in (0, 19):
            return "LIVE_DUMP", [
                "no signal (no NT_SIGINFO, pr_cursig 0): a dump of a running process (notmyfault dump, gcore)"
            ]
        if cursig == 11 and (computed is not None or _wild_pc(core, pc)):
            cls, more = _segv_class(core, computed, pc, sp, access, accerr=False)
            why = (
                f"the fault address {computed:#x} is computed from the faulting instruction and the registers"
                if computed is not None
                else "the program counter is not in executable memory"
            )
            return cls, [f"the core has no NT_SIGINFO (pr_cursig is SIGSEGV): {why}", *more]
        return "UNKNOWN", ["the core has no NT_SIGINFO: the signal's code and address are not known"]
    s, code, addr = sig.signo, sig.code, sig.addr
    if s == 19:  # SIGSTOP is never fatal: the stop a debugger attached with (gdb's gcore records it)
        return "LIVE_DUMP", [
            "the signal is SIGSTOP, which ends no process: a debugger's dump of a running process (gcore)"
        ]
    if code <= 0 and s != 6:
        return "KILLED_BY_SIGNAL", notes
    if s == 11:  # SIGSEGV
        return _segv_class(core, addr, pc, sp, access, accerr=si_code_name(s, code) == "SEGV_ACCERR")
    if s == 6:
        return _abort_class(abort), notes
    if s == 5:
        return "BREAKPOINT", notes
    if s == 4:
        return "ILLEGAL_INSTRUCTION", notes
    if s == 8:
        return (
            "DIVIDE_BY_ZERO" if si_code_name(s, code) in ("FPE_INTDIV", "FPE_FLTDIV") else "ARITHMETIC_ERROR"
        ), notes
    if s == 7:
        return "BUS_ERROR", notes
    return "KILLED_BY_SIGNAL", notes


SYNCHRONOUS_SIGNALS = {11: "SIGSEGV", 7: "SIGBUS", 4: "SIGILL", 8: "SIGFPE", 5: "SIGTRAP"}
SYSTEM_CALL_INSTRUCTIONS = {
    "x86_64": (b"\x0f\x05",),  # syscall
    "i386": (b"\xcd\x80", b"\x0f\x34"),  # int $0x80, sysenter
    "aarch64": (b"\x01\x00\x00\xd4",),  # svc #0
}
"""The system-call instructions by architecture: a signal delivered with the pc just after one came
in at the return of a system call (kill, tgkill), so it was sent, not raised by a fault."""


def _after_system_call(core: ElfCore, pc: int, sysroot: str | None) -> bool:
    """True if the instruction before ``pc`` is a system call (a signal's delivery on its return)."""
    for insn in SYSTEM_CALL_INSTRUCTIONS.get(core.arch, ()):
        if code_bytes(core, pc - len(insn), len(insn), sysroot) == insn:
            return True
    return False


def _reraised(
    core: ElfCore,
    program: Program,
    sig: SigInfo | None,
    pid: int,
    frames: Sequence[Frame],
    sysroot: str | None,
) -> tuple[int, int, Instruction | None, str | None, int | None, str, list[str]] | None:
    """A fault that a signal handler caught and raised again (Python's faulthandler, which pytest
    turns on, and crash reporters do this): the process sent itself SIGSEGV (SIGBUS, SIGILL, SIGFPE,
    SIGTRAP), and the stack holds the signal frame of the first delivery. The crash is the fault in
    the interrupted frame, classified from its instruction and registers as a core without
    NT_SIGINFO is: (its index, pc, instruction, access, address, class, notes); None otherwise."""
    if sig is None or sig.signo not in SYNCHRONOUS_SIGNALS or sig.code > 0 or sig.sender_pid != pid:
        return None
    ctx = signal_context(program, core.threads[0].tid)
    if ctx is None:
        return None
    pc, sp, regs = ctx
    index = next((i for i, f in enumerate(frames) if i > 0 and f.pc == pc and f.how == "context"), None)
    if index is None:
        return None
    while index > 1 and frames[index - 1].how == "inline" and frames[index - 1].pc == pc:
        index -= 1  # the functions inlined where the signal came in are part of that frame
    # a handler installed without SA_SIGINFO (faulthandler's) has no siginfo of the first delivery
    # in its signal frame; one that came in at a system call's return was sent (os.kill), not a fault
    if _after_system_call(core, pc, sysroot):
        return None
    code = code_bytes(core, pc, 16, sysroot)
    insn = decode_bytes(code, pc, core.arch) if code else None
    access = insn.access if insn is not None else None
    computed = operand_address(code, pc, core.arch, regs) if code and regs else None
    name = SYNCHRONOUS_SIGNALS[sig.signo]
    if sig.signo == 11:
        cls, more = _segv_class(core, computed, pc, sp, access, accerr=False)
    elif sig.signo == 8:
        div = insn is not None and insn.text.split(" ", 1)[0] in (
            "div",
            "idiv",
            "sdiv",
            "udiv",
            "divw",
            "divd",
        )
        cls, more = ("DIVIDE_BY_ZERO" if div else "ARITHMETIC_ERROR"), []
    else:
        cls, more = {7: "BUS_ERROR", 4: "ILLEGAL_INSTRUCTION", 5: "BREAKPOINT"}[sig.signo], []
    where = frames[index].location()
    notes = [
        f"the process raised {name} itself from a signal handler (a crash handler such as Python's "
        f"faulthandler re-raises the fault it caught): the fault is in frame #{index} ({where}), which the "
        "signal interrupted; classified from its instruction and registers, the signature and blame start there",
        *more,
    ]
    return index, pc, insn, access, computed, cls, notes


def executable_path(core: ElfCore, program: Program) -> str | None:
    """The executable's path: drgn's main module, else the image the auxiliary vector names (cores
    without NT_FILE), else the first mapped file, else NT_PRPSINFO's command."""
    with contextlib.suppress(LookupError):
        name = str(program.prog.main_module().name)
        if name:
            return name
    main = next((img.path for img in core.images if img.kind == "main"), None)
    if main:
        return main
    if core.files:
        return core.files[0].path
    return core.process.command if core.process else None


def _recursion(frames: tuple[Frame, ...]) -> tuple[str, int] | None:
    """The function that recurses at the top of the stack, and how many frames of it there are."""
    if len(frames) < 8 or not frames[0].function:
        return None
    name = frames[0].function
    depth = 0
    for f in frames:
        if f.function != name:
            break
        depth += f.how not in ("inline", "tail call")
    return (name, depth) if depth >= 8 else None


def _command_line(core: ElfCore) -> str | None:
    """The command line: the arguments whole from the initial stack where the dump holds it, else
    NT_PRPSINFO's (the kernel keeps their first 80 bytes there). Where the process rewrote its
    argv strings (as setproctitle does) the stack holds the new ones: NT_PRPSINFO's are taken when
    they are not where the stack's begin."""
    proc = core.process
    short = proc.args if proc else None
    args = core.arguments
    if not args:
        return short
    whole = " ".join(args)
    if short is not None and not whole.startswith(short.rstrip()):
        return short
    return whole


def _recursion_note(frames: tuple[Frame, ...], name: str, depth: int) -> str:
    """How deep the recursion goes: its frames (the whole stack is walked) and the size of one."""
    f1, f2 = frames[1], frames[2]
    size = (
        f" ({f2.sp - f1.sp} bytes each)" if f1.sp is not None and f2.sp is not None and f2.sp > f1.sp else ""
    )
    total = sum(1 for f in frames if f.how not in ("inline", "tail call"))
    return f"{name} recurses: {depth:,} frames deep{size}, {total:,} frames in all"


def python_stacks(
    core: ElfCore,
    program: Program,
    exe: str | None = None,
    sysroot: str | None = None,
    with_locals: bool = False,
    walked: Sequence[tuple[int, Walk]] = (),
) -> PythonStacks | None:
    """The Python stacks of every thread, if the core is one of a CPython process whose ``walked``
    threads may run Python (None if not): one of them has an eval-loop frame, or does not end at a
    thread's first function (the eval loop may be past where the walk stopped). Without ``walked``,
    whenever the process ran CPython."""
    modules = [f.path for f in core.files] or [str(m.name) for m in _modules(program)]
    if not runs_python(modules):
        return None
    if walked and not any(
        any(map(is_eval_frame, w.frames)) or not starts_thread(w.frames) for _, w in walked
    ):
        return None
    interpreter = exe or executable_path(core, program)
    if not interpreter:
        return PythonStacks((), "the core does not say which interpreter ran (give --exe)")
    if sysroot and not exe:
        interpreter = os.path.join(sysroot, interpreter.lstrip("/"))
    return read_python_stacks(core, interpreter, with_locals)


def _modules(program: Program) -> list[Any]:
    try:
        return list(program.prog.modules())
    except Exception:
        return []


def python_blame(frames: Sequence[Frame], thread: PythonThread) -> tuple[PythonFrame, str | None]:
    """The Python frame to blame when the native frames are all the system's: the innermost frame of
    the program's own code (else the innermost one), and what it called."""
    stack = thread.frames
    i = next((i for i, p in enumerate(stack) if not p.stdlib), 0)
    if i > 0:
        return stack[i], stack[i - 1].qualified
    # it called native code itself: the innermost native function that is not the C library's
    # or machinery (the eval loop, the call paths): os_abort_impl, ctypes' string_at
    at = next((k for k, f in enumerate(frames) if stack[i] in f.python), len(frames))
    rules = DEFAULT_RULES
    callee = next(
        (
            f.function
            for f in frames[:at]
            if f.function
            and not rules.system_module(f.module)
            and not rules.machinery(rules.name(f.function))
        ),
        None,
    )
    return stack[i], callee


def analyze(
    core: ElfCore,
    exe: str | None = None,
    sysroot: str | None = None,
    program: Program | None = None,
    python_locals: bool = False,
    python: bool = True,
    native_locals: bool = False,
) -> CrashAnalysis:
    """Analyse ``core``: the ``!analyze -v`` page as a result object (``python_locals``: read the
    reprs of each Python frame's arguments and locals too; ``python`` False: no Python frames;
    ``native_locals``: each native frame's arguments and locals from DWARF)."""
    program = program or load_program(core, exe, sysroot)
    sig = core.siginfo
    crashed = core.threads[0]
    walk = thread_walk(program, core, crashed.tid, native_locals)
    frames = tuple(walk.frames)
    stacks = (
        python_stacks(core, program, exe, sysroot, python_locals, [(crashed.tid, walk)]) if python else None
    )
    pythread = stacks.thread(crashed.tid) if stacks else None
    python_notes: list[str] = []
    if stacks is not None and stacks.error:
        python_notes.append(f"a CPython process, but its Python frames could not be read: {stacks.error}")
    if pythread is not None:
        merged = merge(frames, pythread)
        if merged is None:
            python_notes.append(
                "the Python frames do not match the native stack's eval-loop frames one to one: "
                "they are shown apart (PYTHON_STACK)"
            )
        frames = merged or frames
    pc = crashed.pc
    code = code_bytes(core, pc, 16, sysroot) if pc is not None else None  # read once: decoded twice below
    insn = decode_bytes(code, pc, code_arch(core.arch, crashed.regs)) if code and pc is not None else None
    access, source = None, "not known"
    if (
        sig is not None
        and sig.addr is not None
        and pc is not None
        and sig.addr == pc
        and sig.signo in (11, 7)
    ):
        access, source = "execute", "the fault address is the program counter"
    elif insn is not None and insn.access:
        access, source = insn.access, f"the faulting instruction ({insn.text})"
    abort = _abort_message(program)
    computed = None
    if sig is None and crashed.cursig in (7, 11) and code and pc is not None and insn is not None:
        computed = operand_address(code, pc, core.arch, crashed.regs)
    crash_class, notes = classify(core, sig, pc, crashed.sp, access, abort, computed)
    notes += python_notes
    if walk.stopped:
        notes.append(walk.stopped)
    proc = core.process
    sign_from = 0
    reraised = _reraised(core, program, sig, proc.pid if proc else crashed.tid, frames, sysroot)
    if reraised is not None:
        sign_from, pc, insn, access, computed, crash_class, more = reraised
        source = f"the faulting instruction ({insn.text})" if insn is not None and access else "not known"
        notes += more
    if crash_class == "STACK_OVERFLOW":
        rec = _recursion(frames)
        if rec:
            notes.append(_recursion_note(frames, *rec))
    if crash_class == "STACK_CORRUPTION" and any(f.how == "scan" for f in frames):
        notes.append("frames after the first were found by scanning the stack for return addresses")
    for other in program.other_builds:
        differs = (
            f"{other.path} is not the build that ran: its build-id is {other.build_id or 'none'}, the dump's "
            f"{other.dump_build_id}"
        )
        notes.append(
            f"{differs}; it was used as asked (--exe), so {base_name(other.module)}'s names and lines may be wrong"
            if other.used
            else f"{differs}; it was not used, so {base_name(other.module)}'s frames are named from the dump alone "
            "(give the build that ran: --exe, --sysroot or debuginfod)"
        )
    if len(frames) == 1 and program.missing:
        lost = [m for m in program.missing if m == frames[0].module] or list(program.missing)
        notes.append(
            "only the frame in the registers: the dump holds no unwind information (CFI) or frame-pointer "
            f"chain to follow, and {', '.join(lost)} is not here (give --exe or --sysroot)"
        )
    choice = choose([f.module for f in frames[sign_from:]])
    blamed = frames[sign_from + choice.index] if choice.index is not None else None
    blame_reason = choice.reason
    blamed_python = callee = None
    if pythread is not None and pythread.frames and (blamed is None or is_system_module(blamed.module)):
        blamed_python, callee = python_blame(frames, pythread)
        blame_reason = (
            "every native frame is the interpreter's or the C library's: the Python frame of the program "
            "that made the call"
        )
    cycle = find_deadlock(core, program)
    if cycle:
        how = f"the process was ended by {signal_name(sig.signo)}" if sig else "the process was dumped"
        notes.append(f"deadlock: {len(cycle)} threads wait for each other's mutexes; {how} while they hung")
        for w in cycle:
            notes.append(
                f"thread {w.tid} ({w.function or '?'}) waits for mutex {w.mutex:#x}, held by thread {w.owner}"
            )
        crash_class = "DEADLOCK"
        blamed_python = callee = None
        if cycle[0].frame is not None:
            blamed, blame_reason = (
                cycle[0].frame,
                "the first thread of the deadlock cycle, in its first frame outside the system modules",
            )
    executable = executable_path(core, program)
    return CrashAnalysis(
        path=origin(core),
        report={k: v for k, v in report_fields(core).items() if k in REPORT_FIELDS},
        arch=core.arch,
        pid=proc.pid if proc else crashed.tid,
        executable=executable,
        command_line=_command_line(core),
        uid=proc.uid if proc else None,
        crashed_tid=crashed.tid,
        signal=sig.signo if sig else crashed.cursig or None,
        signal_name=signal_name(sig.signo)
        if sig
        else (signal_name(crashed.cursig) if crashed.cursig else None),
        si_code=sig.code if sig else None,
        si_code_name=si_code_name(sig.signo, sig.code) if sig else None,
        fault_address=computed if reraised is not None or sig is None else sig.addr,
        sender_pid=sig.sender_pid if sig else None,
        access=access,
        access_source=source,
        fault_pc=pc,
        instruction=insn,
        blocked_signals=_blocked(crashed.sighold),
        crash_class=crash_class,
        description=CRASH_CLASSES[crash_class],
        blamed=blamed,
        blame_reason=blame_reason,
        deadlock=cycle,
        sign_frames=cycle[0].stack
        if cycle and cycle[0].stack
        else (frames[sign_from:] if sign_from else None),
        truncated=core.truncation,
        abort_message=abort,
        frames=frames,
        notes=tuple(notes),
        missing=program.missing,
        other_builds=tuple(o.module for o in program.other_builds if not o.used),
        python=pythread,
        python_error=stacks.error if stacks else None,
        blamed_python=blamed_python,
        python_callee=callee,
    )
