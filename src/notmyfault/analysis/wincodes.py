"""Exception codes of minidumps, as data: their public names and the crash class each one means.

Each writer fills the exception record in its own way, so it is read by the
operating system the dump names:

- Windows: an NTSTATUS code; only access violations and in-page errors carry
  (access, address) parameters.
- Linux (Breakpad): the signal number as the code, the si_code as the flags,
  si_addr as the exception address; 0xFFFFFFFF is a dump requested without a crash.
- macOS (Crashpad, Breakpad): the Mach exception type as the code, its first
  code (``KERN_INVALID_ADDRESS``) as the flags, the second (the address) as the
  exception address; an ``EXC_CRASH`` carries the signal in bits 24-31 of its code.
  Crashpad's 0x43507378 ('CPsx') is a dump requested without a crash.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

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
    0xC0000409: ("EXCEPTION_STACK_BUFFER_OVERRUN", "STACK_BUFFER_OVERRUN"),
    0xC0000420: ("STATUS_ASSERTION_FAILURE", "ASSERTION_FAILURE"),
    0x40000015: ("STATUS_FATAL_APP_EXIT", "ABORT"),
    0xE06D7363: ("EXCEPTION_CPP (an unhandled C++ exception)", "ABORT"),
    0xC000000D: ("STATUS_INVALID_PARAMETER", "ASSERTION_FAILURE"),
    0xC0000017: ("STATUS_NO_MEMORY", "ABORT"),
    0xC0000135: ("STATUS_DLL_NOT_FOUND", "ABORT"),
    0xC0000142: ("STATUS_DLL_INIT_FAILED", "ABORT"),
    0xC0000194: ("STATUS_POSSIBLE_DEADLOCK", "DEADLOCK"),
    0xC0000602: ("STATUS_FAIL_FAST_EXCEPTION", "ABORT"),
    0xC000041D: ("STATUS_FATAL_USER_CALLBACK_EXCEPTION", "ABORT"),
    0xC06D007E: ("EXCEPTION_MODULE_NOT_FOUND", "ABORT"),
    0xC06D007F: ("EXCEPTION_ENTRY_POINT_NOT_FOUND", "ABORT"),
    0x4000001F: ("STATUS_WX86_BREAKPOINT", "BREAKPOINT"),
}
STACK_BUFFER_OVERRUN = 0xC0000409
"""Since Windows 8 also a fast fail (__fastfail, int 0x29): its first parameter is the FAST_FAIL_ code."""
FAST_FAIL: dict[int, tuple[str, str]] = {
    # code: (name, crash class); winnt.h
    0: ("FAST_FAIL_LEGACY_GS_VIOLATION", "STACK_BUFFER_OVERRUN"),
    1: ("FAST_FAIL_VTGUARD_CHECK_FAILURE", "ABORT"),
    2: ("FAST_FAIL_STACK_COOKIE_CHECK_FAILURE", "STACK_BUFFER_OVERRUN"),
    3: ("FAST_FAIL_CORRUPT_LIST_ENTRY", "ABORT"),
    4: ("FAST_FAIL_INCORRECT_STACK", "ABORT"),
    5: ("FAST_FAIL_INVALID_ARG", "ASSERTION_FAILURE"),
    6: ("FAST_FAIL_GS_COOKIE_INIT", "STACK_BUFFER_OVERRUN"),
    7: ("FAST_FAIL_FATAL_APP_EXIT", "ABORT"),
    8: ("FAST_FAIL_RANGE_CHECK_FAILURE", "ASSERTION_FAILURE"),
    9: ("FAST_FAIL_UNSAFE_REGISTRY_ACCESS", "ABORT"),
    10: ("FAST_FAIL_GUARD_ICALL_CHECK_FAILURE", "ABORT"),
    11: ("FAST_FAIL_GUARD_WRITE_CHECK_FAILURE", "ABORT"),
    12: ("FAST_FAIL_INVALID_FIBER_SWITCH", "ABORT"),
    13: ("FAST_FAIL_INVALID_SET_OF_CONTEXT", "ABORT"),
    14: ("FAST_FAIL_INVALID_REFERENCE_COUNT", "ABORT"),
    18: ("FAST_FAIL_INVALID_JUMP_BUFFER", "ABORT"),
    19: ("FAST_FAIL_MRDATA_MODIFIED", "ABORT"),
    20: ("FAST_FAIL_CERTIFICATION_FAILURE", "ABORT"),
    21: ("FAST_FAIL_INVALID_EXCEPTION_CHAIN", "ABORT"),
    22: ("FAST_FAIL_CRYPTO_LIBRARY", "ABORT"),
    23: ("FAST_FAIL_INVALID_CALL_IN_DLL_CALLOUT", "ABORT"),
    24: ("FAST_FAIL_INVALID_IMAGE_BASE", "ABORT"),
    25: ("FAST_FAIL_DLOAD_PROTECTION_FAILURE", "ABORT"),
    26: ("FAST_FAIL_UNSAFE_EXTENSION_CALL", "ABORT"),
    27: ("FAST_FAIL_DEPRECATED_SERVICE_INVOKED", "ABORT"),
    28: ("FAST_FAIL_INVALID_BUFFER_ACCESS", "ABORT"),
    29: ("FAST_FAIL_INVALID_BALANCED_TREE", "ABORT"),
    30: ("FAST_FAIL_INVALID_NEXT_THREAD", "ABORT"),
    31: ("FAST_FAIL_GUARD_ICALL_CHECK_SUPPRESSED", "ABORT"),
    32: ("FAST_FAIL_APCS_DISABLED", "ABORT"),
}
"""The fast-fail codes: FATAL_APP_EXIT is abort() in the C runtime; the GS codes a stack cookie check."""
MEMORY_EXCEPTIONS = (0xC0000005, 0xC0000006)
"""The exceptions whose parameters are (access kind, address): access violations and in-page errors."""

MAC_EXCEPTIONS: dict[int, tuple[str, str]] = {
    # exception type: (name, crash class); <mach/exception_types.h>
    1: ("EXC_BAD_ACCESS", "INVALID_MEMORY_READ"),
    2: ("EXC_BAD_INSTRUCTION", "ILLEGAL_INSTRUCTION"),
    3: ("EXC_ARITHMETIC", "ARITHMETIC_ERROR"),
    4: ("EXC_EMULATION", "ILLEGAL_INSTRUCTION"),
    5: ("EXC_SOFTWARE", "KILLED_BY_SIGNAL"),
    6: ("EXC_BREAKPOINT", "BREAKPOINT"),
    7: ("EXC_SYSCALL", "UNKNOWN"),
    8: ("EXC_MACH_SYSCALL", "UNKNOWN"),
    9: ("EXC_RPC_ALERT", "UNKNOWN"),
    10: ("EXC_CRASH", "KILLED_BY_SIGNAL"),
    11: ("EXC_RESOURCE", "ABORT"),
    12: ("EXC_GUARD", "ABORT"),
    13: ("EXC_CORPSE_NOTIFY", "UNKNOWN"),
}
MAC_CODES: dict[int, dict[int, str]] = {
    # exception type -> its first code's names (kern_return.h, mach/i386|arm/exception.h)
    1: {1: "KERN_INVALID_ADDRESS", 2: "KERN_PROTECTION_FAILURE", 8: "KERN_NO_ACCESS",
        9: "KERN_MEMORY_FAILURE", 10: "KERN_MEMORY_ERROR", 13: "EXC_I386_GPFLT",
        50: "KERN_CODESIGN_ERROR", 0x101: "EXC_ARM_DA_ALIGN", 0x102: "EXC_ARM_DA_DEBUG"},
    2: {1: "EXC_I386_INVOP"},
    3: {1: "EXC_I386_DIV", 2: "EXC_I386_INTO", 3: "EXC_I386_NOEXT", 4: "EXC_I386_EXTOVR",
        5: "EXC_I386_EXTERR", 6: "EXC_I386_EMERR", 7: "EXC_I386_BOUND", 8: "EXC_I386_SSEEXTERR"},
    5: {0x10000: "EXC_UNIX_BAD_SYSCALL", 0x10001: "EXC_UNIX_BAD_PIPE", 0x10002: "EXC_UNIX_ABORT",
        0x10003: "EXC_SOFT_SIGNAL"},
    6: {1: "EXC_I386_SGL", 2: "EXC_I386_BPT"},
}  # fmt: skip
MAC_SIGNALS = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGEMT",
    8: "SIGFPE", 9: "SIGKILL", 10: "SIGBUS", 11: "SIGSEGV", 12: "SIGSYS", 13: "SIGPIPE",
    14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 30: "SIGUSR1", 31: "SIGUSR2",
}  # fmt: skip
"""macOS's signal numbers (sys/signal.h): SIGBUS, SIGSYS and the user signals differ from Linux's."""
MAC_SIGNAL_CLASSES = {
    "SIGSEGV": "INVALID_MEMORY_READ", "SIGBUS": "BUS_ERROR", "SIGFPE": "DIVIDE_BY_ZERO",
    "SIGILL": "ILLEGAL_INSTRUCTION", "SIGTRAP": "BREAKPOINT", "SIGABRT": "ABORT",
}  # fmt: skip
EXC_CRASH = 10
LINUX_DUMP_REQUESTED = 0xFFFFFFFF
CRASHPAD_SIMULATED = 0x43507378
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


@dataclass(frozen=True)
class Decoded:
    """An exception record read by its operating system's rules."""

    name: str
    """EXCEPTION_ACCESS_VIOLATION_WRITE, SIGSEGV, EXC_BAD_ACCESS / KERN_INVALID_ADDRESS, ..."""
    crash_class: str
    """The class before the access and address refine it (INVALID_MEMORY_READ stands for any memory fault)."""
    fault_address: int | None
    """The address the fault touched, where the exception carries one."""
    access: str | None
    """read, write or execute where the record itself says (a Windows access violation)."""
    signal: int | None = None
    """Linux: the signal number (the code)."""
    memory: bool = False
    """A memory fault: the faulting instruction's access may refine the class."""


def decode_exception(
    os_kind: str, code: int, flags: int, address: int, parameters: tuple[int, ...]
) -> Decoded:
    """Read an exception record as ``os_kind`` (windows, linux or mac) writes it."""
    if os_kind == "linux":
        if code == LINUX_DUMP_REQUESTED:
            return Decoded("DUMP_REQUESTED", "LIVE_DUMP", None, None)
        try:
            name = signal.Signals(code).name
        except ValueError:
            name = f"signal {code}"
        cls = SIGNAL_CLASSES.get(code, "KILLED_BY_SIGNAL")
        faults = code in (4, 5, 7, 8, 11)  # SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV: si_addr is an address
        return Decoded(name, cls, address if faults else None, None, code, cls == "INVALID_MEMORY_READ")
    if os_kind == "mac":
        return _decode_mac(code, flags, address, parameters)
    if code == CRASHPAD_SIMULATED:
        return Decoded("SIMULATED", "LIVE_DUMP", None, None)
    name, cls = EXCEPTIONS.get(code, (f"unknown exception {code:#010x}", "UNKNOWN"))
    if code in MEMORY_EXCEPTIONS and len(parameters) >= 2:
        access = ACCESS_KINDS.get(parameters[0])
        if code == 0xC0000005:
            name += "_" + ACCESS_NAMES.get(parameters[0], "UNKNOWN")
            cls = _memory_class(access or "read", parameters[1])
        return Decoded(name, cls, parameters[1], access)
    if code == STACK_BUFFER_OVERRUN and parameters:
        sub, cls = FAST_FAIL.get(parameters[0], (f"FAST_FAIL {parameters[0]:#x}", "ABORT"))
        return Decoded(f"{name} / {sub}", cls, None, None)
    return Decoded(name, cls, None, None)


def _decode_mac(code: int, flags: int, address: int, parameters: tuple[int, ...]) -> Decoded:
    if code == CRASHPAD_SIMULATED:
        return Decoded("SIMULATED", "LIVE_DUMP", None, None)
    if code == 0 and parameters and parameters[0] == EXC_CRASH and len(parameters) > 1:
        # Crashpad unwraps EXC_CRASH to the exception it came from: 0 when a signal caused it
        sig = MAC_SIGNALS.get((parameters[1] >> 24) & 0xFF, f"signal {(parameters[1] >> 24) & 0xFF}")
        return Decoded(f"EXC_CRASH / {sig}", MAC_SIGNAL_CLASSES.get(sig, "KILLED_BY_SIGNAL"), None, None)
    if code not in MAC_EXCEPTIONS:  # spelt as minidump-stackwalk spells an exception it does not know
        return Decoded(f"unknown {code:#010x} / {flags:#010x}", "UNKNOWN", None, None)
    name, cls = MAC_EXCEPTIONS[code]
    if code == EXC_CRASH:
        sig = MAC_SIGNALS.get((flags >> 24) & 0xFF, f"signal {(flags >> 24) & 0xFF}")
        return Decoded(f"{name} / {sig}", MAC_SIGNAL_CLASSES.get(sig, "KILLED_BY_SIGNAL"), None, None)
    sub = MAC_CODES.get(code, {}).get(flags)
    if code == 5 and flags == 0x10003 and len(parameters) > 2:  # EXC_SOFT_SIGNAL: the signal is the subcode
        sub = f"{sub} / {MAC_SIGNALS.get(parameters[2], parameters[2])}"
    full = f"{name} / {sub}" if sub else (f"{name} / {flags:#x}" if code in MAC_CODES else name)
    if code == 1:
        return Decoded(full, cls, address, None, memory=True)
    return Decoded(full, cls, None, None)


def refine_class(decoded: Decoded, access: str | None) -> str:
    """The crash class once the faulting instruction's access is known (memory faults only)."""
    if decoded.memory and decoded.crash_class == "INVALID_MEMORY_READ":
        return _memory_class(access or "read", decoded.fault_address)
    return decoded.crash_class


def exception_name(code: int, parameters: tuple[int, ...], linux: bool) -> str:
    """The public name of a Windows exception (EXCEPTION_ACCESS_VIOLATION_WRITE) or Linux signal."""
    return decode_exception("linux" if linux else "windows", code, 0, 0, parameters).name


def _memory_class(access: str, address: int | None) -> str:
    null = address is not None and address < NULL_PAGE
    if access == "execute":
        return "NULL_POINTER_EXECUTE" if null else "EXECUTE_NON_EXECUTABLE"
    if access == "write":
        return "NULL_POINTER_WRITE" if null else "INVALID_MEMORY_WRITE"
    return "NULL_POINTER_READ" if null else "INVALID_MEMORY_READ"
