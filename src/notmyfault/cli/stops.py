"""How a command is stopped: SIGTERM and SIGHUP raise KeyboardInterrupt (``Stopped``) as Ctrl-C
does, so that every command ends by one path (its cleanup in finally blocks, exit 130).

Light on purpose: the entry point sets these handlers before it imports anything else, so that a
stop that comes while the command is still starting is handled too.
"""

from __future__ import annotations

import os
import signal

from notmyfault.base import Stopped

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a command as Ctrl-C does: a kill, a closed terminal or a dropped ssh session."""


def install() -> None:
    """Set the stop handlers: SIGTERM and SIGHUP raise Stopped, Ctrl-C raises KeyboardInterrupt (but
    not inside a finalizer); a SIGINT that was ignored when the command started stays ignored."""
    for signo in STOP_SIGNALS:
        signal.signal(signo, raise_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, raise_keyboard_interrupt)


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler that turns SIGTERM or SIGHUP into a KeyboardInterrupt (Stopped), as Ctrl-C is.

    A signal that comes while a finalizer runs (``Popen.__del__`` as the collector frees a finished
    child) is sent again instead, to be handled once the finalizer is done: raised inside it, the
    stop would be printed as "Exception ignored" with a traceback, and lost."""
    if _in_finalizer(frame):
        _again_soon(signum)
        return
    raise Stopped(signum)


def raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C handler (KeyboardInterrupt), but a Ctrl-C that comes while a finalizer
    runs is sent again to be handled after it (see ``raise_interrupt``): raised inside one, it was
    lost, and a command stopped while starting ran on (a spin hang, for ever, on a loaded machine).
    The window puts Python's own back (asyncio takes over Ctrl-C only from that one)."""
    if _in_finalizer(frame):
        _again_soon(signum)
        return
    raise KeyboardInterrupt


def _in_finalizer(frame: Any) -> bool:
    """True if ``frame`` runs inside an object's ``__del__``: an exception raised there is printed
    as "Exception ignored" and lost."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _again_soon(signum: int) -> None:
    """Send ``signum`` to this process again in a moment, from a thread: sent from the handler
    itself, it would be handled at once, inside the same finalizer, without end."""
    import threading

    t = threading.Timer(0.01, os.kill, (os.getpid(), signum))
    t.daemon = True
    t.start()
