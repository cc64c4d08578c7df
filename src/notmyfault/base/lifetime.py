"""Children that die with their parent: the kernel's parent-death signal, asked for by the child.

A parent sets ``PARENT_ENV`` to its pid in the environment of a child it starts; the child calls
:func:`die_with_parent` first thing. Asked for by the child itself, the signal needs no
``preexec_fn`` (unsafe in a parent with threads, as triage's is).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PARENT_ENV = "NOTMYFAULT_PARENT"
"""Set by a parent to its pid for the children it starts: they die with it (see die_with_parent)."""


def ended(pid: int) -> bool:
    """True if process ``pid`` is gone or a zombie (it exited; its parent has not reaped it yet): its
    memory and its part are gone. ``kill(pid, 0)`` says a zombie is alive."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in "ZXx"
    except (OSError, IndexError):
        return True


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


def tied(argv: list[str]) -> list[str]:
    """``argv`` run through this module, which asks for the parent-death signal and then execs it
    (the signal survives execve): for a program that cannot ask itself (QEMU). Its environment
    must carry ``PARENT_ENV`` (see :func:`tied_env`)."""
    return [sys.executable, "-m", "notmyfault.base.lifetime", *argv]


def tied_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) for a child that is to die with this process."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def _main() -> None:
    """``python -m notmyfault.base.lifetime PROGRAM ARGS...``: die with the parent, run PROGRAM."""
    die_with_parent()
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as e:
        print(f"notmyfault: cannot run {sys.argv[1]}: {e.strerror}", file=sys.stderr)
        os._exit(127)


if __name__ == "__main__":
    _main()
