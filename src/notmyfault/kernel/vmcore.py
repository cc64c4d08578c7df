"""``!analyze -v`` for Linux kernel vmcores: the oops class, its arguments, the trap frame, the blame.

What failed is read from the kernel's own words (the oops and panic lines of
the printk ring buffer in the dump) and from its structures through drgn: the
crashed thread's stack, the trap frame the exception saved (the registers of
the faulting instruction, not of the panic path), the tasks blocked in D
state, the mutexes they wait for and who holds them.

Classes carry the Windows bug check whose picture they are, so the seed's
story reads the same: a page fault with interrupts off is the
DRIVER_IRQL_NOT_LESS_OR_EQUAL (D1) of myfault.sys, with the same four
arguments (address, context, read/write, faulting instruction).

The blame rule: from the trap frame (or, for a panic() call, from the caller
of panic) outward, the first frame in a module other than the kernel itself;
for a hung-task panic, the same rule on the blocked tasks' stacks; otherwise
the first module frame anywhere on the crashed stack.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from notmyfault.analysis.deadlock import LockWait
from notmyfault.analysis.decode import decode_bytes
from notmyfault.analysis.result import CrashAnalysis, Instruction
from notmyfault.dumps import origin
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.vmcore import Vmcore
from notmyfault.unwind.frames import Frame, renumbered

KERNEL_MODULE = "vmlinux"
USER_TOP = 0x0000_8000_0000_0000
"""x86_64: addresses below this are user space; a kernel stack ends where its frames reach them."""
IF_FLAG = 1 << 9
TASK_UNINTERRUPTIBLE = 0x2
TASK_NOLOAD = 0x400
MUTEX_FLAGS = 0x7
"""The low bits of struct mutex's owner word are flags, not the owner."""


@dataclass(frozen=True)
class OopsFacts:
    """What the kernel printed about the failure (the first report and panic lines of the log: later
    ones are what the first one set off)."""

    panic: str | None = None
    """The panic line without 'Kernel panic - not syncing: '."""
    headline: str | None = None
    """The first line of the report: 'BUG: kernel NULL pointer dereference, address: 0000000000000000'."""
    fault_address: int | None = None
    access: str | None = None
    """read, write or execute (#PF line)."""
    error_code: int | None = None
    bug_at: str | None = None
    """'mm/slub.c:345' of 'kernel BUG at mm/slub.c:345!'."""
    slab_report: str | None = None
    """SLUB's 'BUG Leak (...): Right Redzone overwritten' line."""
    hung: tuple[str, ...] = ()
    """'myfaultctl:87' of each 'INFO: task myfaultctl:87 blocked for more than 3 seconds.'"""


_PANIC = re.compile(r"Kernel panic - not syncing: (.*)")
_HEADLINES = (
    re.compile(r"BUG: unable to handle page fault for address: ([0-9a-f]+)"),
    re.compile(r"BUG: kernel NULL pointer dereference, address: ([0-9a-f]+)"),
    re.compile(r"general protection fault.*"),
    re.compile(r"kernel BUG at (\S+)!"),
    re.compile(r"BUG: (?:\w+ )?stack guard page was hit at (\S+).*"),
    re.compile(r"Uhhuh\. NMI received for unknown reason.*"),
    re.compile(r"invalid opcode: .*"),
)
_PF_ACCESS = re.compile(r"#PF: \w+ (read|write|instruction fetch) access in (\w+) mode")
_PF_CODE = re.compile(r"#PF: error_code\((0x[0-9a-f]+)\)")
_SLAB = re.compile(r"BUG (\S+) \(.*\): (.*)")
_HUNG = re.compile(r"INFO: task (\S+) blocked for more than (\d+) seconds")
_STAMP = re.compile(r"^\[\s*\d+\.\d+\] ")


def log_lines(log: str) -> list[str]:
    """The printk log's messages, one per line, without their time stamps."""
    return [_STAMP.sub("", line) for line in log.splitlines()]


def oops_facts(lines: list[str]) -> OopsFacts:
    """Read the failure's lines from the printk log (see :func:`log_lines`)."""
    facts: dict[str, object] = {}
    hung: list[str] = []
    for line in lines:
        if m := _PANIC.search(line):
            facts.setdefault("panic", m.group(1).strip())
        for pattern in _HEADLINES:
            if (m := pattern.search(line)) and "headline" not in facts:
                facts["headline"] = m.group(0).strip()
                if "address" in pattern.pattern:
                    facts["fault_address"] = int(m.group(1), 16)
                if "kernel BUG" in pattern.pattern:
                    facts["bug_at"] = m.group(1)
        if (m := _PF_ACCESS.search(line)) and "access" not in facts:
            facts["access"] = {"instruction fetch": "execute"}.get(m.group(1), m.group(1))
        if (m := _PF_CODE.search(line)) and "error_code" not in facts:
            facts["error_code"] = int(m.group(1), 16)
        if (m := _SLAB.search(line)) and "slab_report" not in facts:
            facts["slab_report"] = m.group(0).strip()
        if m := _HUNG.search(line):
            hung.append(m.group(1))
    return OopsFacts(**facts, hung=tuple(hung))  # type: ignore[arg-type]


def dmesg(vm: Vmcore) -> str:
    """The printk ring buffer of the dump, as text."""
    from drgn.helpers.linux.printk import get_dmesg

    return str(get_dmesg(vm.prog).decode(errors="replace"))


def module_of(vm: Vmcore, pc: int) -> str | None:
    """The name of the module holding ``pc`` (``vmlinux`` for the kernel itself)."""
    try:
        module = vm.prog.module(pc)
    except LookupError:
        return None
    return KERNEL_MODULE if type(module).__name__ == "MainModule" else str(module.name)


def kernel_frames(vm: Vmcore, trace: Iterable[object]) -> tuple[Frame, ...]:
    """Our frames from a drgn stack trace, cut where the kernel stack returns to user space."""
    out: list[Frame] = []
    for f in trace:
        pc = int(f.pc)  # type: ignore[attr-defined]
        if pc < USER_TOP:
            break
        function, offset = f.name, None  # type: ignore[attr-defined]
        try:
            sym = f.symbol()  # type: ignore[attr-defined]
            offset = pc - sym.address
            if not f.is_inline:  # type: ignore[attr-defined]
                function = sym.name
        except LookupError:
            pass
        file = line = None
        with contextlib.suppress(LookupError):
            file, line, _col = f.source()  # type: ignore[attr-defined]
        sp = int(f.sp)  # type: ignore[attr-defined]
        same = bool(out) and out[-1].pc == pc and out[-1].sp == sp  # an inline chain shares pc and sp
        if not out:
            how = "context"
        elif f.interrupted and not same:  # type: ignore[attr-defined]
            how = "trap frame"  # its registers are the pt_regs an exception or interrupt saved
        else:
            how = "inline" if f.is_inline else "unwound"  # type: ignore[attr-defined]
        if function and function.startswith("0x"):
            function = None
        out.append(Frame(len(out), pc, sp, module_of(vm, pc), function, offset, file, line, how))
    return tuple(out)


def trap_frame_index(frames: tuple[Frame, ...]) -> int | None:
    """The index of the frame whose registers an exception saved (the faulting one), if any."""
    return next((f.index for f in frames if f.how == "trap frame"), None)


@dataclass(frozen=True)
class BlockedTask:
    """A task in uninterruptible sleep (D state), with its stack."""

    pid: int
    comm: str
    frames: tuple[Frame, ...]
    mutex: int | None
    """The mutex it waits for, when it sleeps in mutex_lock."""
    owner: int | None
    """The pid holding that mutex."""


def _mutex_waited(trace: object) -> int | None:
    """The address of the mutex a task sleeps on, from __mutex_lock's frame (its lock argument)."""
    for f in trace:  # type: ignore[attr-defined]
        if f.name in ("__mutex_lock", "__mutex_lock_common", "mutex_lock"):
            try:
                lock = f["lock"]
            except (KeyError, LookupError):
                continue
            if not lock.absent_:
                return int(lock.value_())
    return None


def blocked_tasks(vm: Vmcore) -> tuple[BlockedTask, ...]:
    """Every task in D state (what the hung-task detector looks at), with the mutex it waits for."""
    from drgn import FaultError, Object
    from drgn.helpers.linux.pid import for_each_task

    prog = vm.prog
    out = []
    for task in for_each_task(prog):
        try:
            state = int(task.__state.value_())
        except AttributeError:
            state = int(task.state.value_())
        if not state & TASK_UNINTERRUPTIBLE or state & TASK_NOLOAD:
            continue
        trace = prog.stack_trace(task)
        mutex = _mutex_waited(trace)
        owner = None
        if mutex is not None:
            try:
                word = prog.read_u64(mutex) & ~MUTEX_FLAGS
                owner = int(Object(prog, "struct task_struct", address=word).pid.value_()) if word else None
            except FaultError:
                owner = None
        out.append(
            BlockedTask(
                int(task.pid.value_()),
                task.comm.string_().decode(errors="replace"),
                kernel_frames(vm, trace),
                mutex,
                owner,
            )
        )
    return tuple(out)


def mutex_cycle(tasks: tuple[BlockedTask, ...]) -> tuple[LockWait, ...]:
    """The tasks of a wait-for cycle on mutexes, in order from the lowest pid; empty when there is none."""
    waits = {
        t.pid: LockWait(t.pid, t.mutex, t.owner, *_own(t.frames))
        for t in tasks
        if t.mutex is not None and t.owner is not None
    }
    for start in sorted(waits):
        chain, pid, seen = [], start, set()
        while pid in waits and pid not in seen:
            seen.add(pid)
            chain.append(waits[pid])
            pid = waits[pid].owner
        if pid == start and len(chain) > 1:
            return tuple(chain)
    return ()


def _own(frames: tuple[Frame, ...]) -> tuple[str | None, Frame | None]:
    frame = _first_module_frame(frames)
    return (frame.function if frame else None), frame


def _first_module_frame(frames: tuple[Frame, ...]) -> Frame | None:
    """The first frame outside the kernel; of an inline chain (one pc), the function that holds it."""
    for i, f in enumerate(frames):
        if f.module and f.module != KERNEL_MODULE:
            while f.pc and i + 1 < len(frames) and frames[i + 1].pc == f.pc and frames[i + 1].sp == f.sp:
                i += 1
            return frames[i]
    return None


@dataclass(frozen=True)
class KernelClass:
    """A class of kernel failure and the Windows bug check whose picture it is."""

    name: str
    bugcheck: str
    description: str


def classify(facts: OopsFacts, trap_flags: int | None) -> KernelClass:
    """The class of the failure, from the kernel's report (and the trap frame's interrupt flag)."""
    panic = facts.panic or ""
    head = facts.headline or ""
    if panic.startswith("hung_task"):
        return KernelClass(
            "hung-task", "(a hang: !analyze -hang)", "tasks slept uninterruptibly past the hung-task timeout"
        )
    if "NMI" in panic or head.startswith("Uhhuh. NMI"):
        return KernelClass(
            "nmi", "NMI_HARDWARE_FAILURE (80)", "an NMI stopped the machine (the lab's NMI button on a hang)"
        )
    if panic.startswith("stack-protector"):
        return KernelClass(
            "stack-protector",
            "DRIVER_OVERRAN_STACK_BUFFER (F7)",
            "a function overran a stack buffer: its canary was overwritten",
        )
    if "stack guard page" in head:
        return KernelClass(
            "stack-overflow",
            "UNEXPECTED_KERNEL_MODE_TRAP (7F, double fault)",
            "the kernel stack ran into its guard page",
        )
    if panic.startswith("panic_on_taint") or facts.slab_report:
        return KernelClass(
            "slab-corruption",
            "BAD_POOL_HEADER (19)",
            f"the slab allocator found a corrupted object: {facts.slab_report or panic}",
        )
    if facts.bug_at and facts.bug_at.startswith("mm/slub.c"):
        return KernelClass(
            "double-free",
            "BAD_POOL_CALLER (C2)",
            "SLUB's hardened freelist caught an object freed twice (or a corrupted freelist)",
        )
    if facts.bug_at:
        return KernelClass("bug", "KMODE_EXCEPTION_NOT_HANDLED (1E)", f"BUG() at {facts.bug_at}")
    if head.startswith("general protection"):
        return KernelClass("general-protection", "KMODE_EXCEPTION_NOT_HANDLED (1E)", head)
    if facts.error_code is not None or head.startswith("BUG: kernel NULL") or head.startswith("BUG: unable"):
        code = facts.error_code or 0
        if code & 0x1 and code & 0x2:
            return KernelClass(
                "write-to-readonly",
                "ATTEMPTED_WRITE_TO_READONLY_MEMORY (BE)",
                "a write to read-only kernel memory (a permissions violation)",
            )
        irqs_off = trap_flags is not None and not trap_flags & IF_FLAG
        if irqs_off:
            return KernelClass(
                "page-fault-irqs-off",
                "DRIVER_IRQL_NOT_LESS_OR_EQUAL (D1)",
                "a page fault with interrupts off, where the kernel cannot wait for memory",
            )
        if head.startswith("BUG: kernel NULL"):
            return KernelClass(
                "null-deref", "SYSTEM_SERVICE_EXCEPTION (3B)", "a NULL pointer dereference in kernel mode"
            )
        return KernelClass(
            "page-fault", "PAGE_FAULT_IN_NONPAGED_AREA (50)", "a kernel access to an address with no page"
        )
    if panic:
        return KernelClass("panic", "(KeBugCheckEx)", f"the kernel called panic(): {panic}")
    return KernelClass("unknown", "?", "the dump names no failure (no oops or panic in the log)")


def _decode(vm: Vmcore, pc: int) -> Instruction | None:
    try:
        return decode_bytes(vm.read(pc, 16), pc, "x86_64")
    except UnreadableMemory:
        return None


_TRACE_LINE = re.compile(r"^\s+(\?\s+)?([\w.]+)\+(0x[0-9a-f]+)/0x[0-9a-f]+(?: \[(\w+)\])?\s*$")
_REG_PAIR = re.compile(r"\b(R[A-Z0-9]{1,2}|EFLAGS): (?:[0-9a-f]{4}:)?([0-9a-f]{8,16})\b")


def log_frames(lines: list[str], start: int) -> tuple[Frame, ...]:
    """The first call trace the kernel printed at or after line ``start`` (reliable entries only)."""
    out: list[Frame] = []
    for line in lines[start:]:
        m = _TRACE_LINE.match(line)
        if m is None:
            if out and ("</TASK>" in line or "RIP: 0033" in line):
                break
            continue
        if m.group(1):
            continue  # "? name": a stale word on the stack, not a frame
        module = m.group(4) or KERNEL_MODULE
        out.append(
            Frame(len(out), 0, None, module, m.group(2), int(m.group(3), 16), None, None, "kernel log")
        )
    return tuple(out)


def log_registers(lines: list[str], start: int) -> dict[str, int]:
    """The registers of the first register dump at or after line ``start`` (x86_64 oops format)."""
    regs: dict[str, int] = {}
    for line in lines[start:]:
        for name, value in _REG_PAIR.findall(line):
            key = "rflags" if name == "EFLAGS" else re.sub(r"^r0", "r", name.lower())
            regs.setdefault(key, int(value, 16))
        if "r15" in regs:  # the last line of the dump
            break
    return regs


def _analyze_from_log(vm: Vmcore, notes: list[str]) -> CrashAnalysis:
    """Without the kernel's debug information: the kernel's own report in the printk buffer."""
    lines = log_lines(vm.printk_log())
    facts = oops_facts(lines)
    anchor = next((i for i, line in enumerate(lines) if facts.headline and facts.headline in line), None)
    if facts.hung:
        anchor = next((i for i, line in enumerate(lines) if f"INFO: task {facts.hung[0]} " in line), anchor)
    if anchor is None:
        anchor = next((i for i, line in enumerate(lines) if "Kernel panic" in line), max(0, len(lines) - 1))
    frames = log_frames(lines, anchor)
    regs = log_registers(lines, anchor) if not facts.hung else {}
    rip = next(
        (line.split("RIP: 0010:", 1)[1].strip() for line in lines[anchor:] if "RIP: 0010:" in line), None
    )
    if rip and not facts.hung:
        m = _TRACE_LINE.match(" " + rip)
        if m:
            top = Frame(
                0,
                regs.get("rip", 0),
                regs.get("rsp"),
                m.group(4) or KERNEL_MODULE,
                m.group(2),
                int(m.group(3), 16),
                None,
                None,
                "trap frame (kernel log)",
            )
            frames = tuple(renumbered((top, *frames)))
    klass = classify(facts, regs.get("rflags"))
    blamed = _first_module_frame(frames)
    pc = regs.get("rip")
    instruction = _decode(vm, pc) if pc else None
    notes.append("no debug vmlinux: the stack and registers are those the kernel printed in its log")
    return _result(
        vm,
        facts,
        klass,
        frames,
        regs,
        blamed,
        "the first frame outside the kernel in the kernel's own report",
        instruction,
        (),
        notes,
        None,
    )


def analyze_vmcore(vm: Vmcore) -> CrashAnalysis:
    """Analyse a kernel vmcore: the same result object as for process cores and Windows dumps."""
    notes: list[str] = []
    if vm.debug_problem:
        notes.append(f"debug information: {vm.debug_problem}")
    if not vm.has_types():
        return _analyze_from_log(vm, notes)
    facts = oops_facts(log_lines(dmesg(vm)))
    tid, trace = _task_trace(vm, None)
    frames = kernel_frames(vm, trace)
    trap = trap_frame_index(frames)
    regs = _registers(trace, trap) if trap is not None else {}
    klass = classify(facts, regs.get("rflags"))
    cycle: tuple[LockWait, ...] = ()
    blamed: Frame | None
    if klass.name == "hung-task":
        blocked = blocked_tasks(vm)
        cycle = mutex_cycle(blocked)
        hung = [t for t in blocked if f"{t.comm}:{t.pid}" in facts.hung] or list(blocked)
        blamed = next((f for t in hung if (f := _first_module_frame(t.frames))), None)
        reason = "the first frame outside the kernel on the stack of a task the hung-task detector reported"
        if hung:
            notes.append(
                f"the crashed task (pid {tid}) is the hung-task detector; the stack is that of "
                f"{hung[0].comm} (pid {hung[0].pid}), the first task it reported"
            )
            frames = hung[0].frames
        for t in hung:
            notes.append(
                f"blocked task {t.comm} (pid {t.pid}): " + " <- ".join(fr.location() for fr in t.frames[:8])
            )
    elif trap is not None:
        blamed = _first_module_frame(frames[trap:])
        reason = "the first frame outside the kernel, from the trap frame outward"
    else:
        after_panic = next((f.index + 1 for f in frames if f.function == "panic"), 0)
        blamed = _first_module_frame(frames[after_panic:])
        reason = "the first frame outside the kernel below panic()"
    if blamed is None:
        blamed = _first_module_frame(frames)
        reason = "the first frame outside the kernel on the crashed stack"
    pc = regs.get("rip")
    instruction = _decode(vm, pc) if pc is not None else None
    return _result(vm, facts, klass, frames, regs, blamed, reason, instruction, cycle, notes, tid)


def _result(
    vm: Vmcore,
    facts: OopsFacts,
    klass: KernelClass,
    frames: tuple[Frame, ...],
    regs: dict[str, int],
    blamed: Frame | None,
    reason: str,
    instruction: Instruction | None,
    cycle: tuple[LockWait, ...],
    notes: list[str],
    tid: int | None,
) -> CrashAnalysis:
    """The analysis object, with the page-fault arguments in the D1 layout when there was one."""
    if blamed is None:
        reason = "no frame outside the kernel: the kernel itself"
    pc = regs.get("rip")
    access = facts.access or (instruction.access if instruction else None)
    params: tuple[int, ...] = ()
    arg_notes: tuple[str, ...] = ()
    if facts.fault_address is not None or klass.name in ("page-fault-irqs-off", "null-deref", "page-fault"):
        flags = regs.get("rflags")
        context = 0 if flags is None else (0 if flags & IF_FLAG else 2)
        params = (facts.fault_address or 0, context, 1 if access == "write" else 0, pc or 0)
        arg_notes = (
            "memory referenced",
            "context: 2 = interrupts off (Windows: DISPATCH_LEVEL), 0 = interrupts on",
            "0 = read, 1 = write (#PF error code)",
            "address which referenced memory",
        )
    if facts.panic:
        notes.append(f"panic: {facts.panic}")
    return CrashAnalysis(
        path=origin(vm),
        arch="x86_64",
        crashed_tid=tid,
        executable=f"Linux {vm.release}",
        fault_address=facts.fault_address,
        access=access,
        access_source="the #PF line" if facts.access else ("the instruction" if access else "not known"),
        fault_pc=pc,
        instruction=instruction,
        crash_class=klass.name,
        description=klass.description,
        blamed=blamed,
        blame_reason=reason,
        abort_message=facts.headline or facts.panic,
        frames=frames,
        notes=tuple(notes),
        deadlock=cycle,
        dump_kind="linux-kernel",
        truncated=vm.truncation,
        exception_name=klass.bugcheck,
        exception_parameters=params,
        argument_notes=arg_notes,
    )


def task_stacks(vm: Vmcore, pid: int | None, every: bool) -> list[tuple[int, tuple[Frame, ...]]]:
    """The stacks of the crashed task (or of task ``pid``, or of every task), as (pid, frames)."""
    from drgn.helpers.linux.pid import for_each_task

    if not vm.has_types():
        raise LookupError(
            "stacks of a vmcore need the kernel's debug information (--debug-file vmlinux); "
            "'notmyfault analyze' gives the call trace the kernel printed"
        )
    prog = vm.prog
    if every:
        return [(int(t.pid.value_()), kernel_frames(vm, prog.stack_trace(t))) for t in for_each_task(prog)]
    tid, trace = _task_trace(vm, pid)
    return [(tid, kernel_frames(vm, trace))]


def _task_trace(vm: Vmcore, pid: int | None) -> tuple[int, Any]:
    """(pid, drgn stack trace) of task ``pid``, or of the crashed task; LookupError for a pid not in the dump."""
    from drgn.helpers.linux.pid import find_task

    prog = vm.prog
    if pid is None:
        thread = prog.crashed_thread()
        return int(thread.tid), thread.stack_trace()
    task = find_task(prog, pid)
    if not task:
        raise LookupError(f"the dump has no task with pid {pid}")
    return pid, prog.stack_trace(task)


def _registers(trace: Any, index: int) -> dict[str, int]:
    """The registers drgn recovered for frame ``index`` of ``trace``."""
    return {k: int(v) for k, v in trace[index].registers().items()}


@dataclass(frozen=True)
class TrapFrame:
    """The registers an exception saved (the faulting instruction's), as ``regs`` renders them."""

    tid: int
    regs: dict[str, int]
    instruction: Instruction | None
    where: str | None


_REG_ORDER = (
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
    "cs",
    "ss",
)


def _ordered(regs: dict[str, int]) -> dict[str, int]:
    out = {k: regs[k] for k in _REG_ORDER if k in regs}
    if "rflags" in regs:
        out["eflags"] = regs["rflags"]
    return out


def trap_frame(vm: Vmcore, pid: int | None = None) -> TrapFrame | None:
    """The trap frame of the crashed task (or of task ``pid``): the registers at the faulting
    instruction; without an exception, the registers of the task's innermost frame.  Without debug
    information, the registers the kernel printed in its oops."""
    if not vm.has_types():
        lines = log_lines(vm.printk_log())
        start = next((i for i, line in enumerate(lines) if "RIP: 0010:" in line), None)
        if start is None:
            return None
        regs = log_registers(lines, start)
        rip = lines[start].split("RIP: 0010:", 1)[1].strip()
        return TrapFrame(0, _ordered(regs), None, f"{rip} (from the kernel log)")
    tid, trace = _task_trace(vm, pid)
    frames = kernel_frames(vm, trace)
    index = trap_frame_index(frames)
    chosen = index if index is not None else 0
    regs = _registers(trace, chosen)
    pc = regs.get("rip")
    frame = frames[chosen] if frames else None
    where = (
        f"in {frame.location()}" + ("" if index is not None else " (no trap frame: the innermost frame)")
        if frame
        else None
    )
    return TrapFrame(tid, _ordered(regs), _decode(vm, pc) if pc else None, where)


def kernel_disasm(
    vm: Vmcore, target: str, count: int, syntax: str
) -> tuple[list[Instruction], dict[int, str]]:
    """Disassemble at an address or a kernel symbol (``myfault_high_irql``, ``panic+0x10``)."""
    from notmyfault.memory.disasm import UnknownTarget, disassemble_memory

    prog = vm.prog
    try:
        address = int(target, 0)
    except ValueError:
        name, _, off = target.partition("+")
        try:
            address = prog.symbol(name).address + (int(off, 0) if off else 0)
        except (LookupError, ValueError):
            raise UnknownTarget(f"no kernel symbol {target!r} in the dump's symbols") from None
    insns = disassemble_memory(vm, address, count, syntax)
    where = {}
    try:
        sym = prog.symbol(address)
        where[address] = f"{module_of(vm, address) or '?'}!{sym.name}+{address - sym.address:#x}"
    except LookupError:
        pass
    return insns, where
