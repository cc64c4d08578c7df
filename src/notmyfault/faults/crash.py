"""Commit a crash in the current process, through the native module myfault.

This module only commits the fault; making sure that the fault leaves a dump
is the job of :mod:`notmyfault.capture`, and a front end calls both.
"""

from __future__ import annotations

import faulthandler
import signal

from notmyfault.base.sigcodes import NON_FATAL_SIGNALS, signal_name
from notmyfault.faults.catalog import DEFAULT_SIGNAL, CrashType


class FaultSurvived(RuntimeError):
    """The process survived the fault it committed (nothing killed it)."""


def check_signal(signo: int) -> None:
    """Raise ValueError if signal ``signo`` would not end the process by default."""
    if signo in NON_FATAL_SIGNALS:
        raise ValueError(
            f"{signal_name(signo)} does not end a process by default (it is ignored, stops or "
            "continues it); choose a fatal signal such as SIGQUIT, SIGABRT, SIGSEGV or SIGTERM"
        )


def commit(crash: CrashType, signo: int | None = None) -> None:
    """Commit ``crash`` in this process; it returns only by raising FaultSurvived.

    ``signo`` is the signal for the ``signal`` entry (default SIGQUIT).
    Python's faulthandler is switched off first: it would catch the fatal
    signal, print a Python traceback and add its own frames to the dump.
    """
    from notmyfault.native import myfault  # the native module; imported when a fault is due

    arg = 0
    if crash.takes_signal:
        arg = int(signo if signo is not None else DEFAULT_SIGNAL)
        check_signal(arg)
    elif signo is not None:
        raise ValueError(f"--signal applies only to the 'signal' crash type, not {crash.name}")
    if faulthandler.is_enabled():
        faulthandler.disable()
    # Python turns SIGPIPE and SIGXFSZ to "ignore" at start-up; give the fatal
    # signals their default action so the fault ends the process the way it
    # would end any C program.
    for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT):
        signal.signal(s, signal.SIG_DFL)
    myfault.do_bug(crash.name, arg)
    raise FaultSurvived(f"the process survived {crash.name}: myfault.do_bug returned")
