"""Children that die with their parent: the kernel's parent-death signal, asked for by the child.

A parent sets ``PARENT_ENV`` to its pid in the environment of a child it starts; the child calls
:func:`die_with_parent` first thing. Asked for by the child itself, the signal needs no
``preexec_fn`` (unsafe in a parent with threads, as triage's is).
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
PARENT_ENV = "NOTMYFAULT_PARENT"
"""Set by a parent to its pid for the children it starts: they die with it (see die_with_parent)."""


def die_with_parent() -> None:
    """If a notmyfault parent started this process (``$NOTMYFAULT_PARENT``), have the kernel SIGKILL
    it when that parent dies, so that a hang, a leak, a crash-to-be or an analysis never outlives a
    killed notmyfault (a spin kept a core at 99.7%, a nonpaged leak kept growing). A parent already
    gone: exit now."""
    parent = os.environ.pop(PARENT_ENV, "")
    if not parent.isdigit():
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(parent):  # it died before the line above
        os._exit(128 + signal.SIGKILL)
