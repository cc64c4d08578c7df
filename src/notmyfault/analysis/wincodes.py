"""Exception codes of minidumps, as data: their public names and the crash class each one means.

Windows records an NTSTATUS exception code; Breakpad on Linux records the
signal number in its place and the si_code in the exception flags.
"""

from __future__ import annotations

import signal

NULL_PAGE = 0x10000
"""Addresses below this are a null pointer plus an offset (Windows reserves the first 64 KiB)."""

EXCEPTIONS: dict[int, tuple[str, str]] = {
    # code: (name, crash class)
    0xC0000005: ("EXCEPTION_ACCESS_VIOLATION", "INVALID_MEMORY_READ"),
    0xC0000006: ("EXCEPTION_IN_PAGE_ERROR", "BUS_ERROR"),
    0x80000002: ("EXCEPTION_DATATYPE_MISALIGNMENT", "BUS_ERROR"),
    0x80000003: ("EXCEPTION_BREAKPOINT", "BREAKPOINT"),
    0x80000004: ("EXCEPTION_SINGLE_STEP", "BREAKPOINT"),
    0xC000008C: ("EXCEPTION_ARRAY_BOUNDS_EXCEEDED", "INVALID_MEMORY_READ"),
    0xC000008D: ("EXCEPTION_FLT_DENORMAL_OPERAND", "ARITHMETIC_ERROR"),
    0xC000008E: ("EXCEPTION_FLT_DIVIDE_BY_ZERO", "DIVIDE_BY_ZERO"),
    0xC000008F: ("EXCEPTION_FLT_INEXACT_RESULT", "ARITHMETIC_ERROR"),
    0xC0000090: ("EXCEPTION_FLT_INVALID_OPERATION", "ARITHMETIC_ERROR"),
    0xC0000091: ("EXCEPTION_FLT_OVERFLOW", "ARITHMETIC_ERROR"),
    0xC0000092: ("EXCEPTION_FLT_STACK_CHECK", "ARITHMETIC_ERROR"),
    0xC0000093: ("EXCEPTION_FLT_UNDERFLOW", "ARITHMETIC_ERROR"),
    0xC0000094: ("EXCEPTION_INT_DIVIDE_BY_ZERO", "DIVIDE_BY_ZERO"),
    0xC0000095: ("EXCEPTION_INT_OVERFLOW", "ARITHMETIC_ERROR"),
    0xC0000096: ("EXCEPTION_PRIV_INSTRUCTION", "ILLEGAL_INSTRUCTION"),
    0xC000001D: ("EXCEPTION_ILLEGAL_INSTRUCTION", "ILLEGAL_INSTRUCTION"),
    0xC0000025: ("EXCEPTION_NONCONTINUABLE_EXCEPTION", "ABORT"),
    0xC0000026: ("EXCEPTION_INVALID_DISPOSITION", "ABORT"),
    0xC00000FD: ("EXCEPTION_STACK_OVERFLOW", "STACK_OVERFLOW"),
    0xC0000008: ("EXCEPTION_INVALID_HANDLE", "ABORT"),
    0xC0000374: ("STATUS_HEAP_CORRUPTION", "HEAP_CORRUPTION"),
    0xC0000409: ("STATUS_STACK_BUFFER_OVERRUN", "STACK_CORRUPTION"),
    0xC0000420: ("STATUS_ASSERTION_FAILURE", "ASSERTION_FAILURE"),
    0x40000015: ("STATUS_FATAL_APP_EXIT", "ABORT"),
    0xE06D7363: ("EXCEPTION_CPP (an unhandled C++ exception)", "ABORT"),
}
ACCESS_KINDS = {0: "read", 1: "write", 8: "execute"}
"""What the faulting instruction did, as an access violation's first parameter (and argument 3 of the
IRQL bug checks) codes it."""
ACCESS_NAMES = {0: "READ", 1: "WRITE", 8: "EXEC"}
"""The suffix of EXCEPTION_ACCESS_VIOLATION_* for each kind."""

SIGNAL_CLASSES: dict[int, str] = {
    int(signal.SIGSEGV): "INVALID_MEMORY_READ",
    int(signal.SIGBUS): "BUS_ERROR",
    int(signal.SIGFPE): "DIVIDE_BY_ZERO",
    int(signal.SIGILL): "ILLEGAL_INSTRUCTION",
    int(signal.SIGTRAP): "BREAKPOINT",
    int(signal.SIGABRT): "ABORT",
}


def exception_name(code: int, parameters: tuple[int, ...], linux: bool) -> str:
    """The public name: EXCEPTION_ACCESS_VIOLATION_WRITE, or for Linux dumps the signal (SIGSEGV)."""
    if linux:
        try:
            return signal.Signals(code).name
        except ValueError:
            return f"signal {code}"
    name = EXCEPTIONS.get(code, (f"unknown exception {code:#010x}", ""))[0]
    if code == 0xC0000005 and parameters:
        name += "_" + ACCESS_NAMES.get(parameters[0], "UNKNOWN")
    return name


def exception_class(
    code: int | None, parameters: tuple[int, ...], address: int | None, linux: bool, access: str | None = None
) -> str:
    """The crash class (see analysis/classes.py) that an exception code means.

    For Linux dumps a SIGSEGV says nothing of the access: ``access`` is what
    the faulting instruction did, when its code is in the dump.
    """
    if code is None:
        return "UNKNOWN"
    if linux:
        cls = SIGNAL_CLASSES.get(code)
        if cls is None:
            return "KILLED_BY_SIGNAL"
        if cls == "INVALID_MEMORY_READ":
            return _memory_class(access or "read", address)
        return cls
    if code == 0xC0000005 and len(parameters) >= 2:
        return _memory_class(ACCESS_KINDS.get(parameters[0], "read"), parameters[1])
    return EXCEPTIONS.get(code, ("", "UNKNOWN"))[1]


def _memory_class(access: str, address: int | None) -> str:
    null = address is not None and address < NULL_PAGE
    if access == "execute":
        return "NULL_POINTER_EXECUTE" if null else "EXECUTE_NON_EXECUTABLE"
    if access == "write":
        return "NULL_POINTER_WRITE" if null else "INVALID_MEMORY_WRITE"
    return "NULL_POINTER_READ" if null else "INVALID_MEMORY_READ"
