"""Signal and si_code vocabulary shared by the injector, capture and analysis.

Numbers are Linux's (asm-generic/siginfo.h); the names are the ones the man
pages use, so they can be compared with gdb's ``$_siginfo`` and with dumps.
Imports nothing from the rest of the package.
"""

from __future__ import annotations

import signal

# si_code values that do not depend on the signal (negative: sent by a process).
SI_USER = 0
SI_KERNEL = 0x80
SI_QUEUE = -1
SI_TIMER = -2
SI_MESGQ = -3
SI_ASYNCIO = -4
SI_SIGIO = -5
SI_TKILL = -6

_GENERIC_CODES = {
    SI_USER: "SI_USER",
    SI_KERNEL: "SI_KERNEL",
    SI_QUEUE: "SI_QUEUE",
    SI_TIMER: "SI_TIMER",
    SI_MESGQ: "SI_MESGQ",
    SI_ASYNCIO: "SI_ASYNCIO",
    SI_SIGIO: "SI_SIGIO",
    SI_TKILL: "SI_TKILL",
}

# si_code values whose meaning depends on the signal (positive, from the kernel).
_FAULT_CODES: dict[int, dict[int, str]] = {
    signal.SIGSEGV: {
        1: "SEGV_MAPERR",
        2: "SEGV_ACCERR",
        3: "SEGV_BNDERR",
        4: "SEGV_PKUERR",
        5: "SEGV_ACCADI",
        6: "SEGV_ADIDERR",
        7: "SEGV_ADIPERR",
        8: "SEGV_MTEAERR",
        9: "SEGV_MTESERR",
        10: "SEGV_CPERR",
    },
    signal.SIGBUS: {
        1: "BUS_ADRALN",
        2: "BUS_ADRERR",
        3: "BUS_OBJERR",
        4: "BUS_MCEERR_AR",
        5: "BUS_MCEERR_AO",
    },
    signal.SIGILL: {
        1: "ILL_ILLOPC",
        2: "ILL_ILLOPN",
        3: "ILL_ILLADR",
        4: "ILL_ILLTRP",
        5: "ILL_PRVOPC",
        6: "ILL_PRVREG",
        7: "ILL_COPROC",
        8: "ILL_BADSTK",
        9: "ILL_BADIADDR",
    },
    signal.SIGFPE: {
        1: "FPE_INTDIV",
        2: "FPE_INTOVF",
        3: "FPE_FLTDIV",
        4: "FPE_FLTOVF",
        5: "FPE_FLTUND",
        6: "FPE_FLTRES",
        7: "FPE_FLTINV",
        8: "FPE_FLTSUB",
        14: "FPE_FLTUNK",
        15: "FPE_CONDTRAP",
    },
    signal.SIGTRAP: {
        1: "TRAP_BRKPT",
        2: "TRAP_TRACE",
        3: "TRAP_BRANCH",
        4: "TRAP_HWBKPT",
        5: "TRAP_UNK",
        6: "TRAP_PERF",
    },
}

# Signals whose default action writes a core dump (signal(7): "Core").
CORE_SIGNALS = frozenset(
    {
        signal.SIGQUIT,
        signal.SIGILL,
        signal.SIGTRAP,
        signal.SIGABRT,
        signal.SIGBUS,
        signal.SIGFPE,
        signal.SIGSEGV,
        signal.SIGXCPU,
        signal.SIGXFSZ,
        signal.SIGSYS,
    }
)

# Signals whose default action does not end the process (ignore, stop, continue).
NON_FATAL_SIGNALS = frozenset(
    {
        signal.SIGCHLD,
        signal.SIGCONT,
        signal.SIGSTOP,
        signal.SIGTSTP,
        signal.SIGTTIN,
        signal.SIGTTOU,
        signal.SIGURG,
        signal.SIGWINCH,
    }
)


def signal_name(signo: int) -> str:
    """Return the name of signal ``signo`` (``SIGSEGV``, ``SIGRTMIN+3``), or ``signal N``."""
    if signal.SIGRTMIN < signo <= signal.SIGRTMAX:
        return f"SIGRTMIN+{signo - signal.SIGRTMIN}"
    try:
        return signal.Signals(signo).name
    except ValueError:
        return f"signal {signo}"


def si_code_name(signo: int, code: int) -> str:
    """Return the name of ``code`` for signal ``signo`` (``SEGV_MAPERR``), or the number."""
    if code <= 0 or code == SI_KERNEL:
        return _GENERIC_CODES.get(code, str(code))
    return _FAULT_CODES.get(signo, {}).get(code, str(code))


def si_code_value(signo: int, name: str) -> int:
    """Return the number of the si_code called ``name`` for signal ``signo``."""
    for value, known in _GENERIC_CODES.items():
        if known == name:
            return value
    for value, known in _FAULT_CODES.get(signo, {}).items():
        if known == name:
            return value
    raise KeyError(f"{name} is not an si_code of {signal_name(signo)}")


def parse_signal(text: str) -> int:
    """Parse a signal given as a number, ``SIGQUIT``, ``QUIT`` or ``SIGRTMIN+2``.

    Raises ValueError with a message that says what is accepted.
    """
    t = text.strip().upper()
    if t.isdigit():
        signo = int(t)
    else:
        if not t.startswith("SIG"):
            t = "SIG" + t
        if t.startswith("SIGRTMIN+") and t[9:].isdigit():
            signo = signal.SIGRTMIN + int(t[9:])
        elif t == "SIGRTMIN":
            signo = signal.SIGRTMIN
        elif t == "SIGRTMAX":
            signo = signal.SIGRTMAX
        else:
            try:
                signo = signal.Signals[t].value
            except KeyError:
                raise ValueError(
                    f"unknown signal {text!r}: give a number (1-{signal.SIGRTMAX}) "
                    "or a name such as SIGQUIT, QUIT or SIGRTMIN+2"
                ) from None
    if not 1 <= signo <= signal.SIGRTMAX:
        raise ValueError(f"signal {signo} is out of range: Linux signals are 1-{signal.SIGRTMAX}")
    return signo


class Stopped(KeyboardInterrupt):
    """A stop asked by a signal (the CLI's handlers raise it for SIGTERM and SIGHUP; Python raises
    a plain KeyboardInterrupt for Ctrl-C).  Code that treats Ctrl-C as "stop the work, then finish"
    (a leak before its crash) tells the two apart by this class: a Stopped always ends everything."""

    def __init__(self, signo: int) -> None:
        super().__init__(signal.Signals(signo).name)
        self.signo = signo
