"""The user-mode crash catalog: one entry per crash type, as data.

Each entry says what the fault is (NotMyfault's number and analog, what
myfault does) and what the dump must show afterwards (signal, si_code, the
class of the fault address, the kind of access, the function that commits it,
the C library's message, and the crash class the analyzer will name).  The CLI
help, ``notmyfault crash --list``, the window and the tests all read it; the
tests hold real core dumps to it.

Adding a crash type is one C function in ``myfault.c``, one line in its table,
and one entry here.
"""

from __future__ import annotations

import platform
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType


class AddressClass(str, Enum):
    """Where the fault address (``si_addr``) lies, as the dump shows it."""

    NULL = "null"
    """In the first page of the address space (a NULL pointer, plus a small offset)."""
    UNMAPPED = "unmapped"
    """Not inside any mapping of the process (memory that was just unmapped or freed)."""
    MODULE_CODE = "module-code"
    """Inside myfault's own executable (read-only) code."""
    STACK_GUARD = "stack-guard"
    """Just below the faulting thread's stack, in its guard gap."""
    BEYOND_EOF = "beyond-eof"
    """Inside a file mapping, past the end of the file."""
    WILD = "wild"
    """A wild program counter: the address stack-trash wrote over the return address."""
    NONE = "none"
    """The signal carries no fault address (sent by a process, or a trap)."""


class Access(str, Enum):
    """The kind of memory access that faulted."""

    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    NONE = "none"


@dataclass(frozen=True)
class Outcome:
    """What the dump of a crash type must show.

    ``si_code`` maps an architecture (``platform.machine()``) to the name of
    the expected si_code; the entry ``"*"`` applies to every architecture not
    listed.
    """

    signal: signal.Signals
    si_code: Mapping[str, str]
    address: AddressClass
    access: Access
    crash_class: str
    abort_message: str | None = None
    """A substring of the message the C library prints before aborting."""

    def si_code_for(self, machine: str | None = None) -> str:
        """Return the expected si_code name on ``machine`` (default: this one)."""
        machine = machine or platform.machine()
        return self.si_code.get(machine, self.si_code["*"])


@dataclass(frozen=True)
class CrashType:
    """One crash type of the catalog."""

    number: int | None
    """NotMyfault's number for the analog (``notmyfault crash 1``), if it has one."""
    name: str
    """The name used on the command line (``high-irql``)."""
    analog: str
    """What NotMyfault (myfault.sys) does that this is the picture of."""
    summary: str
    """One line for lists."""
    fault: str
    """What myfault does, exactly."""
    function: str
    """The C function in myfault that commits the fault."""
    frame: str | None
    """The innermost named frame outside the C library on the crashing stack.

    None where the fault destroys its own frame (stack-trash); see ``scan_frame``.
    """
    outcome: Outcome
    scan_frame: str | None = None
    """A myfault function that a scan of the stack finds when ``frame`` is None."""
    takes_signal: bool = False
    """True for the ``--signal N`` entry, whose argument is the signal number."""
    notes: tuple[str, ...] = field(default=())


def _codes(default: str, **per_arch: str) -> Mapping[str, str]:
    return MappingProxyType({"*": default, **per_arch})


CATALOG: tuple[CrashType, ...] = (
    CrashType(
        number=1,
        name="high-irql",
        analog="High IRQL fault (Kernel-mode): touches pageable memory at DISPATCH_LEVEL, bug check D1",
        summary="blocks every signal, then reads a page it has just unmapped",
        fault=(
            "maps a page, writes to it, unmaps it, blocks every signal with sigprocmask, "
            "then reads a word at offset 8 of the unmapped page"
        ),
        function="myfault_high_irql",
        frame="myfault_high_irql",
        outcome=Outcome(
            signal=signal.SIGSEGV,
            si_code=_codes("SEGV_MAPERR"),
            address=AddressClass.UNMAPPED,
            access=Access.READ,
            crash_class="INVALID_MEMORY_READ",
        ),
        notes=("every signal is blocked at the fault; the dump's blocked-signal mask shows it",),
    ),
    CrashType(
        number=2,
        name="buffer-overflow",
        analog="Buffer overflow: overruns a nonpaged pool block, corrupting the pool",
        summary="writes past the end of a heap block over the allocator's metadata, then frees",
        fault=(
            "allocates 2000 bytes, fills the block and the next chunk's size field "
            "with 'A', then frees the block"
        ),
        function="myfault_buffer_overflow",
        frame="myfault_buffer_overflow",
        outcome=Outcome(
            signal=signal.SIGABRT,
            si_code=_codes("SI_TKILL"),
            address=AddressClass.NONE,
            access=Access.NONE,
            crash_class="HEAP_CORRUPTION",
            abort_message="free(): invalid next size",
        ),
    ),
    CrashType(
        number=3,
        name="code-overwrite",
        analog="Code overwrite: writes over the code of a driver",
        summary="writes into its own machine code",
        fault="stores one byte at the first instruction of myfault_code_overwrite",
        function="myfault_code_overwrite",
        frame="myfault_code_overwrite",
        outcome=Outcome(
            signal=signal.SIGSEGV,
            si_code=_codes("SEGV_ACCERR"),
            address=AddressClass.MODULE_CODE,
            access=Access.WRITE,
            crash_class="WRITE_TO_READONLY_MEMORY",
        ),
    ),
    CrashType(
        number=4,
        name="stack-trash",
        analog="Stack trash: corrupts the stack of a thread",
        summary="overwrites its own return address and returns",
        fault=(
            "writes 0x414141414141 over its saved frame pointer and its return address, then returns to it"
        ),
        function="myfault_stack_trash",
        frame=None,
        scan_frame="myfault_py_do_bug",
        outcome=Outcome(
            signal=signal.SIGSEGV,
            si_code=_codes("SEGV_MAPERR"),
            address=AddressClass.WILD,
            access=Access.EXECUTE,
            crash_class="STACK_CORRUPTION",
        ),
        notes=(
            "the program counter is the wild value, outside every mapping; the faulting "
            "frame is gone, and a scan of the stack finds the return address into "
            "myfault_py_do_bug left by the frame below",
        ),
    ),
    CrashType(
        number=5,
        name="null-deref",
        analog="High IRQL fault (User-mode): a driver dereferences a bad pointer (NotMyfault's #5)",
        summary="writes through a NULL pointer",
        fault="stores an int through a NULL pointer",
        function="myfault_null_deref",
        frame="myfault_null_deref",
        outcome=Outcome(
            signal=signal.SIGSEGV,
            si_code=_codes("SEGV_MAPERR"),
            address=AddressClass.NULL,
            access=Access.WRITE,
            crash_class="NULL_POINTER_WRITE",
        ),
    ),
    CrashType(
        number=6,
        name="stack-overflow",
        analog="Stack overflow: recursion until the kernel stack runs out",
        summary="recurses without end",
        fault=(
            "calls itself with a 192-byte frame buffer until the stack meets its guard; "
            "the stack is capped at 8 MiB first when RLIMIT_STACK is larger or unlimited"
        ),
        function="myfault_stack_overflow",
        frame="myfault_stack_overflow",
        outcome=Outcome(
            signal=signal.SIGSEGV,
            si_code=_codes("SEGV_MAPERR"),
            address=AddressClass.STACK_GUARD,
            access=Access.WRITE,
            crash_class="STACK_OVERFLOW",
        ),
    ),
    CrashType(
        number=7,
        name="breakpoint",
        analog="Hard-coded breakpoint (bug check 0x7E with STATUS_BREAKPOINT)",
        summary="executes a hard-coded breakpoint instruction",
        fault="executes int3 (x86) or brk (aarch64)",
        function="myfault_breakpoint",
        frame="myfault_breakpoint",
        outcome=Outcome(
            signal=signal.SIGTRAP,
            si_code=_codes("TRAP_BRKPT", x86_64="SI_KERNEL", i686="SI_KERNEL"),
            address=AddressClass.NONE,
            access=Access.NONE,
            crash_class="BREAKPOINT",
        ),
    ),
    CrashType(
        number=8,
        name="double-free",
        analog="Double free: frees a pool block twice (bug check C2)",
        summary="frees the same heap block twice",
        fault="allocates 64 bytes and frees the block twice",
        function="myfault_double_free",
        frame="myfault_double_free",
        outcome=Outcome(
            signal=signal.SIGABRT,
            si_code=_codes("SI_TKILL"),
            address=AddressClass.NONE,
            access=Access.NONE,
            crash_class="DOUBLE_FREE",
            abort_message="double free",
        ),
    ),
    CrashType(
        number=None,
        name="use-after-free",
        analog="Use after free: touches a pool block after freeing it (special pool catches it)",
        summary="reads a field of a heap block after freeing it",
        fault=(
            "allocates 1 MiB (served by mmap, so free returns it to the kernel), frees it, "
            "then reads the word at offset 512"
        ),
        function="myfault_use_after_free",
        frame="myfault_use_after_free",
        outcome=Outcome(
            signal=signal.SIGSEGV,
            si_code=_codes("SEGV_MAPERR"),
            address=AddressClass.UNMAPPED,
            access=Access.READ,
            crash_class="INVALID_MEMORY_READ",
        ),
    ),
    CrashType(
        number=None,
        name="abort",
        analog="KeBugCheck from a driver: the module stops the system on purpose",
        summary="calls abort()",
        fault="calls the C library's abort()",
        function="myfault_abort",
        frame="myfault_abort",
        outcome=Outcome(
            signal=signal.SIGABRT,
            si_code=_codes("SI_TKILL"),
            address=AddressClass.NONE,
            access=Access.NONE,
            crash_class="ABORT",
        ),
    ),
    CrashType(
        number=None,
        name="divide-by-zero",
        analog="Integer divide fault in a driver (bug check 0x7F, trap 0)",
        summary="divides an integer by zero",
        fault="divides by zero with idiv (x86); on aarch64, which does not trap, raises SIGFPE",
        function="myfault_divide_by_zero",
        frame="myfault_divide_by_zero",
        outcome=Outcome(
            signal=signal.SIGFPE,
            si_code=_codes("SI_TKILL", x86_64="FPE_INTDIV", i686="FPE_INTDIV"),
            address=AddressClass.MODULE_CODE,
            access=Access.EXECUTE,
            crash_class="DIVIDE_BY_ZERO",
        ),
        notes=(
            "on x86 si_addr is the divide instruction; aarch64 integer division never traps, "
            "so there the dump shows SIGFPE sent by the process itself (SI_TKILL)",
        ),
    ),
    CrashType(
        number=None,
        name="illegal-instruction",
        analog="Illegal opcode in a driver (bug check 0x1E, STATUS_ILLEGAL_INSTRUCTION)",
        summary="executes an undefined instruction",
        fault="executes ud2 (x86) or udf #0 (aarch64)",
        function="myfault_illegal_instruction",
        frame="myfault_illegal_instruction",
        outcome=Outcome(
            signal=signal.SIGILL,
            si_code=_codes("ILL_ILLOPC", x86_64="ILL_ILLOPN", i686="ILL_ILLOPN"),
            address=AddressClass.MODULE_CODE,
            access=Access.EXECUTE,
            crash_class="ILLEGAL_INSTRUCTION",
        ),
    ),
    CrashType(
        number=None,
        name="bus-error",
        analog="In-page I/O error: a mapped file's page cannot be read (bug check 0x7A)",
        summary="reads a mapped page that lies past the end of its file",
        fault="maps one page of an empty memfd file and reads its first byte",
        function="myfault_bus_error",
        frame="myfault_bus_error",
        outcome=Outcome(
            signal=signal.SIGBUS,
            si_code=_codes("BUS_ADRERR"),
            address=AddressClass.BEYOND_EOF,
            access=Access.READ,
            crash_class="BUS_ERROR",
        ),
    ),
    CrashType(
        number=None,
        name="jump-to-null",
        analog="Call through a NULL function pointer in a driver",
        summary="calls through a NULL function pointer",
        fault="calls a function pointer whose value is NULL",
        function="myfault_jump_to_null",
        frame="myfault_jump_to_null",
        outcome=Outcome(
            signal=signal.SIGSEGV,
            si_code=_codes("SEGV_MAPERR"),
            address=AddressClass.NULL,
            access=Access.EXECUTE,
            crash_class="NULL_POINTER_EXECUTE",
        ),
        notes=("the program counter is 0; the caller's return address is on top of the stack",),
    ),
    CrashType(
        number=None,
        name="signal",
        analog="/bugcheck CODE: crash with a bug check code of your choice",
        summary="dies by the signal given with --signal N",
        fault="resets the signal to its default action, unblocks it and raises it",
        function="myfault_signal",
        frame="myfault_signal",
        takes_signal=True,
        outcome=Outcome(
            signal=signal.SIGQUIT,
            si_code=_codes("SI_TKILL"),
            address=AddressClass.NONE,
            access=Access.NONE,
            crash_class="KILLED_BY_SIGNAL",
        ),
        notes=(
            "the outcome shown is for the default, SIGQUIT; any signal whose default action "
            "terminates the process is accepted, but the kernel writes a core only for those "
            "whose default action is to dump core (SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, "
            "SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS)",
        ),
    ),
)

DEFAULT_SIGNAL = signal.SIGQUIT

_BY_NAME = {c.name: c for c in CATALOG}
_BY_NUMBER = {c.number: c for c in CATALOG if c.number is not None}


class UnknownCrashType(LookupError):
    """A crash type that is not in the catalog; the message lists the valid ones."""


def valid_choices() -> str:
    """Return the valid crash types, numbers and names, for an error message."""
    return ", ".join(f"{c.number} {c.name}" if c.number is not None else c.name for c in CATALOG)


def lookup(key: str) -> CrashType:
    """Find a crash type by NotMyfault number (``"1"``) or by name (``"high-irql"``).

    Names are case-insensitive and accept underscores for dashes.
    """
    k = key.strip().lower().replace("_", "-")
    if k.isdigit() and int(k) in _BY_NUMBER:
        return _BY_NUMBER[int(k)]
    if k in _BY_NAME:
        return _BY_NAME[k]
    raise UnknownCrashType(f"unknown crash type {key!r}; valid types: {valid_choices()}")
