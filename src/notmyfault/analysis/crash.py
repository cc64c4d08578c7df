"""``!analyze -v`` for a Linux process core: class, arguments, blame, faulting instruction, stack."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from typing import Any

from notmyfault.analysis.blame import choose, is_system_module
from notmyfault.analysis.classes import CRASH_CLASSES
from notmyfault.analysis.deadlock import find_deadlock
from notmyfault.analysis.decode import decode_bytes, operand_address
from notmyfault.analysis.result import CrashAnalysis, Instruction
from notmyfault.analysis.signature import (
    DEFAULT_RULES,
)
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
from notmyfault.unwind.isa import code_arch
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
