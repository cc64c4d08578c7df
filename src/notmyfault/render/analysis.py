"""Render analysis results: the WinDbg-like text page and the JSON contract's ``analysis`` objects."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from notmyfault.analysis.result import CrashAnalysis, Instruction
from notmyfault.base.units import format_size
from notmyfault.memory.heap import HeapResult
from notmyfault.memory.pool import TagUsage
from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.safe import printable
from notmyfault.unwind.frames import Frame, PythonFrame
from notmyfault.unwind.python import PythonThread
from notmyfault.unwind.python import caller as python_caller

RULE = "*" * 79


def hexa(value: int | None) -> str | None:
    """An address for JSON: a 0x-prefixed hex string, or null."""
    return None if value is None else f"{value:#x}"


def frame_line(f: Frame, width: int = 16) -> str:
    """One stack line, kvL style: '#n  sp  pc  module!function+0xoff [file:line]  (how)'."""
    sp = f"{f.sp:0{width}x}" if f.sp is not None else "?" * width
    src = f" [{f.file}:{f.line}]" if f.file else ""
    return f"#{f.index:<3} {sp} {f.pc:0{width}x} {f.location()}{src}  ({f.how})"


def python_lines(p: PythonFrame, verbose: bool = False) -> list[str]:
    """A Python frame's line, as a traceback names it (indented under the native frames' columns),
    and with ``verbose`` its arguments' and locals' reprs."""
    out = [f'     [Python] File "{p.file}", line {p.line}, in {p.function}']
    if verbose:
        out += [f"         {name} = {value}" for name, value in (*p.arguments, *p.locals)]
    return out


def stack_lines(
    frames: Sequence[Frame], python: PythonThread | None = None, side: str = "both", verbose: bool = False
) -> list[str]:
    """A stack's lines, innermost first: each eval-loop frame's Python frames just above it; a
    Python stack that could not be merged follows the native frames."""
    out: list[str] = []
    merged = False
    for f in frames:
        if side != "native":
            for p in f.python:
                out += python_lines(p, verbose)
                merged = True
        if side != "python":
            out.append(frame_line(f))
            if verbose:  # as gdb's bt full: the arguments (its frame line's), then a line per local
                if f.arguments:
                    out.append("      (" + ", ".join(f"{n}={v}" for n, v in f.arguments) + ")")
                out += [f"        {name} = {value}" for name, value in f.locals]
    if python is not None and not merged and python.frames and side != "native":
        out.append("PYTHON_STACK (not merged: see the notes):" if side == "both" else "")
        for p in python.frames:
            out += python_lines(p, verbose)
    return [line for line in out if line]


def python_json(p: PythonFrame, verbose: bool = False) -> dict[str, Any]:
    """A Python frame as JSON (its arguments and locals with ``verbose``)."""
    d: dict[str, Any] = {"function": p.function, "file": p.file, "line": p.line, "library": p.stdlib}
    if verbose:
        d["arguments"] = dict(p.arguments)
        d["locals"] = dict(p.locals)
    return d


def python_thread_json(t: PythonThread | None, verbose: bool = False) -> dict[str, Any] | None:
    """A thread's Python stack as JSON (null for a thread that runs no Python)."""
    if t is None:
        return None
    return {"holds_gil": t.holds_gil, "frames": [python_json(p, verbose) for p in t.frames]}


def frame_json(f: Frame, verbose: bool = False) -> dict[str, Any]:
    """A frame as JSON."""
    return {
        "index": f.index,
        "pc": hexa(f.pc),
        "sp": hexa(f.sp),
        "module": f.module,
        "function": f.function,
        "raw_function": f.raw_function,
        "code": f.code,
        "offset": hexa(f.offset),
        "location": f.location(),
        "file": f.file,
        "line": f.line,
        "trust": f.how,
        "python": [python_json(p, verbose) for p in f.python],
        **(
            {
                "arguments": [{"name": n, "value": v} for n, v in f.arguments],
                "locals": [{"name": n, "value": v} for n, v in f.locals],
            }
            if verbose
            else {}
        ),
    }


def _insn(i: Instruction | None) -> dict[str, Any] | None:
    return (
        None
        if i is None
        else {"address": hexa(i.address), "text": i.text, "size": i.size, "access": i.access}
    )


def analysis_text(a: CrashAnalysis, verbose: bool = False, side: str = "both") -> str:
    """The ``!analyze -v`` page (``side``: the frames the stack shows: both, native or python)."""
    out = [RULE, "*" + "Crash Analysis (notmyfault analyze)".center(77) + "*", RULE, ""]
    if a.truncated:
        out += [truncation_line(a.truncated), ""]
    code = f" / {a.si_code_name}" if a.si_code_name else ""
    if a.dump_kind == "windows-kernel" and a.exception_code is not None:
        out.append(f"{a.crash_class} ({a.exception_code:x})")
        out.append(a.description)
        out += ["", "Arguments:"]
        for i, (value, meaning) in enumerate(zip(a.exception_parameters, a.argument_notes, strict=False)):
            out.append(f"Arg{i + 1}: {value:016x}" + (f", {meaning}" if meaning else ""))
        out.append("")
        out.append(
            f"BugCheck {a.exception_code:X}, {{{', '.join(f'{p:x}' for p in a.exception_parameters)}}}"
        )
        return _kernel_tail(a, out, verbose)
    if a.dump_kind == "linux-kernel":
        return _linux_kernel_text(a, out, verbose)
    if a.exception_code is not None:
        out.append(f"{a.crash_class} ({a.exception_name} / {a.exception_code:#010x})")
    else:
        out.append(f"{a.crash_class} ({a.signal_name or 'no signal'}{code})")
    out.append(a.description)
    out.append("")
    out.append("Arguments:")
    out.append(
        f"Arg1: {a.fault_address:016x}, memory referenced (fault address)"
        if a.fault_address is not None
        else "Arg1: none, the signal carries no fault address"
    )
    out.append(f"Arg2: {a.access or 'unknown'}, the access (from {a.access_source})")
    out.append(
        f"Arg3: {a.fault_pc:016x}, address of the faulting instruction"
        if a.fault_pc is not None
        else "Arg3: unknown program counter"
    )
    if a.exception_code is not None:
        params = ", ".join(f"{p:#x}" for p in a.exception_parameters) or "none"
        out.append(f"Arg4: {a.exception_name} ({a.exception_code:#010x}), parameters {params}")
    elif a.signal is None:
        out.append("Arg4: no signal")
    else:
        code = f", si_code {a.si_code_name or 'unnamed'} ({a.si_code})" if a.si_code is not None else ""
        out.append(f"Arg4: {a.signal_name} ({a.signal}){code}")
    if a.sender_pid is not None:
        out.append(f"      sent by pid {a.sender_pid}")
    if a.blocked_signals:
        blocked = (
            ", ".join(a.blocked_signals)
            if len(a.blocked_signals) < 8
            else f"{len(a.blocked_signals)} signals ({', '.join(a.blocked_signals[:4])} ...)"
        )
        out.append(f"Blocked signals: {blocked}")
    if a.abort_message:
        out += ["", f"ABORT_MESSAGE: {a.abort_message}"]
    out += ["", "FAULTING_IP:"]
    if a.frames:  # a fault a handler re-raised is in the frame the signal interrupted
        out.append(
            next(
                (f for f in a.frames if f.pc == a.fault_pc and f.how in ("context", "inline")), a.frames[0]
            ).location()
        )
    if a.instruction is not None:
        out.append(f"{a.instruction.address:016x} {a.instruction.text}")
    else:
        out.append("(the instruction cannot be read: no code at that address in the dump or on disk)")
    known = (
        ("pid", a.pid),
        ("uid", a.uid),
        ("thread", a.crashed_tid),
    )  # what the dump does not record: left out
    out += ["", "PROCESS: " + ", ".join([f"{k} {v}" for k, v in known if v is not None] + [a.arch])]
    if a.system is not None:
        out.append(f"OS: {a.system.os}" + (f" {a.system.os_version}" if a.system.os_version else ""))
        cpus = (
            f"{a.system.cpu_count} CPU{'s' if a.system.cpu_count != 1 else ''}"
            if a.system.cpu_count
            else None
        )
        out.append("CPU: " + ", ".join(x for x in (a.system.cpu_arch, a.system.cpu_info, cpus) if x))
    if a.command_line:
        out.append(f"COMMAND_LINE: {a.command_line}")
    if a.executable:
        out.append(f"EXECUTABLE: {a.executable}")
    out += _stack_lines(a, None if verbose else 20, say_rest=True, side=side, verbose=verbose)
    out += _blame_lines(a)
    out += _report_lines(a)
    if a.missing and verbose:
        out.append(
            "MISSING: "
            + ", ".join(
                os.path.basename(m) + (" (another build is here)" if m in a.other_builds else "")
                for m in a.missing
            )
        )
    return "\n".join(out)


def _kernel_tail(a: CrashAnalysis, out: list[str], verbose: bool) -> str:
    """The rest of a kernel dump's page: faulting IP, stack, blame, notes."""
    out += ["", "FAULTING_IP:"]
    out.append(a.frames[0].location() if a.frames else "unknown")
    if a.instruction is not None:
        out.append(f"{a.instruction.address:016x} {a.instruction.text}")
    out += ["", f"MACHINE: {a.arch}" + (f", {a.executable}" if a.executable else "")]
    out += _stack_lines(a, None if verbose else 20, say_rest=False)
    out += _blame_lines(a)
    return "\n".join(out)


def _linux_kernel_text(a: CrashAnalysis, out: list[str], verbose: bool) -> str:
    """The page of a Linux kernel vmcore: the class and its Windows picture, the kernel's report,
    the four arguments of a page fault, the faulting instruction, the stack, the blame."""
    out.append(f"{a.crash_class} (the picture of {a.exception_name})")
    out.append(a.description)
    if a.abort_message:
        out += ["", f"REPORT: {a.abort_message}"]
    if a.exception_parameters:
        out += ["", "Arguments:"]
        for i, (value, meaning) in enumerate(zip(a.exception_parameters, a.argument_notes, strict=False)):
            out.append(f"Arg{i + 1}: {value:016x}, {meaning}")
    out += ["", "FAULTING_IP:"]
    trap = next((f for f in a.frames if f.pc == a.fault_pc or (f.how.startswith("trap") and not f.pc)), None)
    out.append(trap.location() if trap else "none (no exception: the kernel stopped itself)")
    if a.instruction is not None:
        out.append(f"{a.instruction.address:016x} {a.instruction.text}")
    out += ["", f"MACHINE: {a.arch}, {a.executable}, crashed task pid {a.crashed_tid}"]
    out += _stack_lines(a, None if verbose else 30, say_rest=True)
    if a.deadlock:
        out += ["", "DEADLOCK:"]
        for w in a.deadlock:
            out.append(f"  pid {w.tid} ({w.function}) waits for mutex {w.mutex:#x} held by pid {w.owner}")
    out += _blame_lines(a)
    return "\n".join(out)


def _stack_lines(
    a: CrashAnalysis, limit: int | None, say_rest: bool, side: str = "both", verbose: bool = False
) -> list[str]:
    """STACK_TEXT: the first ``limit`` native frames (all with None) with the Python frames they run,
    and how many more when ``say_rest``; the Python frames past the cut are shown all the same."""
    if a.python is not None and side != "native":
        gil = ", holds the GIL" if a.python.holds_gil else ""
        header = (
            f"STACK_TEXT (native and Python frames{gil}):"
            if side == "both"
            else f"PYTHON_STACK (thread {a.crashed_tid}{gil}):"
        )
    else:
        header = "STACK_TEXT:"
    apart = None if any(f.python for f in a.frames) else a.python
    if side == "python":
        return ["", header, *stack_lines(a.frames, apart, side, verbose)]
    out = ["", header, *stack_lines(a.frames[:limit], apart, side, verbose)]
    rest = a.frames[limit:] if limit is not None else ()
    if side == "both" and any(f.python for f in rest):
        out += stack_lines(rest, None, "python", verbose)
    if say_rest and rest:
        out.append(f"... {len(rest)} more native frames (-v shows them)")
    return out


def _report_lines(a: CrashAnalysis) -> list[str]:
    """An apport report's fields, as the report gave them (escaped: they come from the dump)."""
    if not a.report:
        return []
    return ["", "APPORT_REPORT:"] + [f"  {k}: {printable(v)}" for k, v in a.report.items()]


def _blame_lines(a: CrashAnalysis) -> list[str]:
    """Probably caused by, the Python line that made the call, the bucket and the notes: the end of
    every page."""
    out = ["", f"Probably caused by : {a.probably_caused_by}"]
    caller = python_caller(a.frames, a.python)
    if caller is not None:
        out.append(f'PYTHON_CALLER: File "{caller.file}", line {caller.line}, in {caller.function}')
    return out + [f"BUCKET_ID: {a.bucket}"] + [f"NOTE: {note}" for note in a.notes]


def truncation_line(truncation: str) -> str:
    """The warning every page of a truncated dump starts with."""
    return f"WARNING: {truncation}."


def analysis_json(a: CrashAnalysis, verbose: bool = False, limit: int | None = 1000) -> dict[str, Any]:
    """The analysis as the JSON contract's ``analysis`` object (``verbose``: with the Python frames'
    arguments and locals; ``limit``: the frames shown, see ``shown``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "analysis",
        "dump": a.path,
        "dump_kind": a.dump_kind,
        "truncated": a.truncated is not None,
        "truncation": a.truncated,
        "exception": None
        if a.exception_code is None or a.dump_kind == "windows-kernel"
        else {
            "code": f"{a.exception_code:#010x}",
            "name": a.exception_name,
            "parameters": [hexa(p) for p in a.exception_parameters],
            "address": hexa(a.exception_address),
        },
        "bugcheck": None
        if a.dump_kind != "windows-kernel" or a.exception_code is None
        else {
            "code": f"{a.exception_code:#x}",
            "name": a.exception_name,
            "parameters": [hexa(p) for p in a.exception_parameters],
            "meanings": list(a.argument_notes),
        },
        "kernel": None
        if a.dump_kind != "linux-kernel"
        else {
            "release": a.executable,
            "class": a.crash_class,
            "bugcheck_picture": a.exception_name,
            "report": a.abort_message,
            "arguments": [hexa(p) for p in a.exception_parameters],
            "meanings": list(a.argument_notes),
        },
        "arch": a.arch,
        "process": {"pid": a.pid, "uid": a.uid, "executable": a.executable, "command_line": a.command_line},
        "system": None
        if a.system is None
        else {
            "os": a.system.os,
            "os_version": a.system.os_version,
            "cpu_arch": a.system.cpu_arch,
            "cpu_info": a.system.cpu_info,
            "cpu_count": a.system.cpu_count,
        },
        "crashed_tid": a.crashed_tid,
        "crash_class": a.crash_class,
        "description": a.description,
        "signal": {
            "number": a.signal,
            "name": a.signal_name,
            "code": a.si_code,
            "code_name": a.si_code_name,
            "address": hexa(a.fault_address),
            "sender_pid": a.sender_pid,
        },
        "access": a.access,
        "access_source": a.access_source,
        "fault_pc": hexa(a.fault_pc),
        "instruction": _insn(a.instruction),
        "blocked_signals": list(a.blocked_signals),
        "abort_message": a.abort_message,
        "blamed": None if a.blamed is None else frame_json(a.blamed),
        "blamed_python": None if a.blamed_python is None else python_json(a.blamed_python),
        "python_callee": a.python_callee,
        "python_caller": None if (c := python_caller(a.frames, a.python)) is None else python_json(c),
        "python": python_thread_json(a.python, verbose),
        "python_error": a.python_error,
        "blame_reason": a.blame_reason,
        "probably_caused_by": a.probably_caused_by,
        "bucket": a.bucket,
        "program": a.program,
        "signature": a.signature,
        **frames_json(a.frames, verbose, limit),
        "notes": list(a.notes),
        "report": a.report or None,
        "missing": list(a.missing),
        "other_builds": list(a.other_builds),
        "deadlock": [
            {"tid": w.tid, "mutex": hexa(w.mutex), "owner": w.owner, "function": w.function}
            for w in a.deadlock
        ],
    }


MAX_SHOWN = 1000
"""Frames of one stack shown by default: the innermost and the outermost half of them, and between
them a line that says how many are left out (a stack overflow's walk reaches main through
hundreds of thousands). ``--max-frames 0`` shows every one."""


@dataclass(frozen=True)
class Shown:
    """The frames of a stack that are shown: the innermost ``head``, the outermost ``tail``, and how
    many lie between them unshown (``elided``; the frames keep their indexes)."""

    head: Sequence[Frame]
    tail: Sequence[Frame]
    elided: int

    @property
    def frames(self) -> list[Frame]:
        """The frames shown, innermost first."""
        return [*self.head, *self.tail]

    def marker(self) -> str:
        """The line that stands for the frames left out."""
        first, last = self.head[-1].index + 1, self.tail[0].index - 1
        return f"... {self.elided:,} frames not shown (#{first} to #{last}; --max-frames 0 shows every one)"

    def json(self, total: int) -> dict[str, Any]:
        """``frames_total`` and ``frames_elided`` (null, or the first and last index left out and how many)."""
        elided = (
            None
            if not self.elided
            else {"from": self.head[-1].index + 1, "to": self.tail[0].index - 1, "count": self.elided}
        )
        return {"frames_total": total, "frames_elided": elided}


def shown(frames: Sequence[Frame], limit: int | None = MAX_SHOWN) -> Shown:
    """The frames to show of a stack: all when they are at most ``limit`` (or ``limit`` is 0 or
    None), else the innermost and outermost ``limit // 2`` each."""
    if not limit or len(frames) <= limit:
        return Shown(frames, (), 0)
    half = max(1, limit // 2)
    return Shown(frames[:half], frames[-half:], len(frames) - 2 * half)


def frames_json(
    frames: Sequence[Frame], verbose: bool = False, limit: int | None = MAX_SHOWN
) -> dict[str, Any]:
    """A stack's ``frames`` as JSON (those ``shown`` with ``limit``), ``frames_total`` and
    ``frames_elided``."""
    part = shown(frames, limit)
    return {"frames": [frame_json(f, verbose) for f in part.frames], **part.json(len(frames))}


def stack_text(
    tid: int,
    frames: list[Frame],
    python: PythonThread | None = None,
    side: str = "both",
    verbose: bool = False,
    stopped: str | None = None,
    limit: int | None = MAX_SHOWN,
) -> str:
    """One thread's stack (with its Python frames, for a thread of a CPython process); ``limit``
    frames at most (see ``shown``), and why the walk stopped short if it did."""
    gil = " (holds the GIL)" if python is not None and python.holds_gil else ""
    lines = [f"Thread {tid}{gil}:"]
    if side != "python":
        lines.append("#    sp               pc               location")
    part = shown(frames, limit)
    lines += stack_lines(part.head, python, side, verbose)
    if part.elided:
        lines.append(part.marker())
        lines += stack_lines(part.tail, None, side, verbose)
    if stopped:
        lines.append(f"... {stopped}")
    return "\n".join(lines)


_EFLAGS = {0: "CF", 2: "PF", 4: "AF", 6: "ZF", 7: "SF", 8: "TF", 9: "IF", 10: "DF", 11: "OF"}


class HasRegisters(Protocol):
    """A thread with registers: of an ELF core (ThreadState) or of a minidump."""

    @property
    def tid(self) -> int:
        """The thread id."""
        ...

    @property
    def regs(self) -> dict[str, int]:
        """Register name -> value."""
        ...


def regs_text(
    t: HasRegisters, insn: Instruction | None, where: str | None, extended: dict[str, int] | None = None
) -> str:
    """``.trap``: registers (all the thread's general ones: fs_base and gs_base too), flags decoded,
    the instruction at the program counter; with ``extended`` (``regs --all``, as gdb's ``info
    all-registers`` and WinDbg's ``rM``), the floating-point and vector registers after them."""
    cursig = getattr(t, "cursig", None)
    lines = [f"Thread {t.tid}" + (f" (signal {cursig}):" if cursig is not None else ":")]
    wide = "eip" not in t.regs  # 32-bit x86 registers are 8 digits wide
    items = list(t.regs.items())
    for i in range(0, len(items), 3):
        lines.append("  ".join(f"{k:>8}={v:0{16 if wide else 8}x}" for k, v in items[i : i + 3]))
    if "eflags" in t.regs:
        flags = t.regs["eflags"]
        lines.append("flags: " + " ".join(name for bit, name in _EFLAGS.items() if flags & (1 << bit)))
    if "pstate" in t.regs:
        p = t.regs["pstate"]
        lines.append(
            "flags: " + " ".join(n for b, n in ((31, "N"), (30, "Z"), (29, "C"), (28, "V")) if p & (1 << b))
        )
    if where:
        lines.append(where)
    lines.append(f"{insn.address:016x} {insn.text}" if insn else "(no instruction at the program counter)")
    if extended is not None:
        lines += ["", *_extended_lines(extended)]
    return "\n".join(lines)


_WIDTHS = {"st": 20, "xmm": 32, "ymm": 64, "v": 32}
"""Hex digits of a vector or x87 register, by its name's letters."""


def _extended_lines(regs: dict[str, int]) -> list[str]:
    """The floating-point and vector registers: the x87 control words on one line, then a register
    a line (st0-st7 with their values), the rest three to a line."""
    from notmyfault.dumps.fpregs import extended_value

    if not regs:
        return ["(the dump keeps no floating-point or vector registers for this thread)"]
    lines: list[str] = []
    control = [k for k in ("fctrl", "fstat", "ftag", "fop") if k in regs]
    if control:
        lines.append("  ".join(f"{k}={regs[k]:04x}" for k in control))
        lines.append("  ".join(f"{k}={regs[k]:016x}" for k in ("fip", "fdp") if k in regs))
    small = [
        k
        for k in regs
        if k not in control and k not in ("fip", "fdp") and k.rstrip("0123456789") not in _WIDTHS
    ]
    if small:
        lines.append("  ".join(f"{k}={regs[k]:08x}" for k in small))
    for k, v in regs.items():
        kind = k.rstrip("0123456789")
        if kind in _WIDTHS:
            shown = f"{k:>5}={v:0{_WIDTHS[kind]}x}"
            lines.append(shown + (f"  {extended_value(v):.17g}" if kind == "st" else ""))
    return lines


def regs_json(
    t: HasRegisters, insn: Instruction | None, extended: dict[str, int] | None = None
) -> dict[str, Any]:
    """Registers as JSON (``extended``: with ``regs --all``, ``extended_registers``)."""
    out = {
        "schema_version": SCHEMA_VERSION,
        "kind": "registers",
        "tid": t.tid,
        "registers": {k: hexa(v) for k, v in t.regs.items()},
        "instruction": _insn(insn),
    }
    if extended is not None:
        out["extended_registers"] = {k: hexa(v) for k, v in extended.items()}
    return out


def pool_text(usage: list[TagUsage], top: int | None, heap: HeapResult | None = None) -> str:
    """``!poolused``: tags by bytes; with no tags, what the dump says of glibc's main heap."""
    if not usage:
        lines = [
            "No tagged pool blocks (notmyfault's leak headers) are in this dump; nothing is known of its heap by tag."
        ]
        if heap is not None:
            lines += ["", *heap_lines(heap)]
        return "\n".join(lines)
    lines = [f"{'Tag':<6} {'Pool':<9} {'Allocs':>8} {'Bytes':>14} {'':>10}  Pids"]
    for u in usage[:top]:
        lines.append(
            f"{u.tag:<6} {u.pool:<9} {u.blocks:>8} {u.bytes:>14} {format_size(u.bytes):>10}  {','.join(map(str, u.pids))}"
        )
    return "\n".join(lines)


def heap_lines(result: HeapResult) -> list[str]:
    """glibc's main heap by size class (or why nothing is known of it)."""
    h = result.heap
    if h is None:
        return [f"glibc heap: nothing is known: {result.reason}"]
    lines = [
        f"glibc main heap (brk area) {h.start:016x}-{h.end:016x}, {format_size(h.end - h.start)}: {h.chunks} chunks",
        f"  in use {h.in_use:>9} chunks {h.in_use_bytes:>14} bytes  (tcache and fast-bin chunks count as in use)",
        f"  free   {h.free:>9} chunks {h.free_bytes:>14} bytes",
        f"  top    {'':>9}        {h.top:>14} bytes  (not handed out)",
        f"  {'chunk size':<12} {'chunks':>9} {'in use':>9} {'bytes':>14} {'in-use bytes':>14}",
    ]
    lower = 0
    for c in h.classes:
        label = f"<= {c.upto}" if c.upto is not None else f"> {lower}"
        lines.append(f"  {label:<12} {c.chunks:>9} {c.in_use:>9} {c.bytes:>14} {c.in_use_bytes:>14}")
        lower = c.upto or lower
    return lines


def pool_json(usage: list[TagUsage], heap: HeapResult | None = None) -> dict[str, Any]:
    """Pool usage as JSON, with glibc's main heap when it was walked."""
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "poolused",
        "tags": [
            {"tag": u.tag, "pool": u.pool, "blocks": u.blocks, "bytes": u.bytes, "pids": list(u.pids)}
            for u in usage
        ],
    }
    if heap is not None:
        h = heap.heap
        out["heap"] = {
            "known": h is not None,
            "reason": heap.reason,
            **(
                {}
                if h is None
                else {
                    "start": hexa(h.start),
                    "end": hexa(h.end),
                    "chunks": h.chunks,
                    "in_use": h.in_use,
                    "in_use_bytes": h.in_use_bytes,
                    "free": h.free,
                    "free_bytes": h.free_bytes,
                    "top": h.top,
                    "classes": [asdict(c) for c in h.classes],
                }
            ),
        }
    return out
