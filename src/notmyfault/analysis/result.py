"""What an analysis of a dump says (``CrashAnalysis``), whatever the dump: the result type that every
analyzer (process cores, minidumps, Windows kernel dumps, vmcores) returns and every view renders.

Kept apart from the analyzers so that a view, or the analysis of one kind of dump, does not import
the others' machinery (a minidump's analysis loaded the ELF unwinder and the Python frame reader).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from notmyfault.analysis.signature import (
    PYTHON_LIBRARY,
    SIGN_DEPTH,
    SignFrame,
    bucket_key,
    signature,
)
from notmyfault.analysis.signature import program as program_name
from notmyfault.unwind.frames import Frame, PythonFrame
from notmyfault.unwind.names import base_name

if TYPE_CHECKING:
    from notmyfault.analysis.deadlock import LockWait
    from notmyfault.unwind.python import PythonThread


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
