"""Prepare the current process so that its crash leaves a complete core dump."""

from __future__ import annotations

import ctypes
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from notmyfault.base.lifetime import die_with_parent
from notmyfault.capture.config import WANTED_FILTER

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_NAME = 15


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare_current_process` set, for the report."""

    rlimit_core: tuple[int, int]
    coredump_filter: int | None
    dumpable: int
    cwd: str


def _prctl(option: int, arg: int | bytes = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, arg, 0, 0, 0))


def raise_core_limit() -> tuple[int, int]:
    """Raise RLIMIT_CORE: the soft limit to the hard one, and both to unlimited if allowed."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_CORE)


def widen_coredump_filter(bits: int = WANTED_FILTER) -> int | None:
    """Add ``bits`` to /proc/self/coredump_filter; return the new value (None if unreadable)."""
    path = Path("/proc/self/coredump_filter")
    try:
        current = int(path.read_text().strip(), 16)
        path.write_text(f"{current | bits:#x}")
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def prepare_current_process(workdir: str | None = None, name: str | None = None) -> Prepared:
    """Make this process's crash dump complete and put it where it is expected.

    Raises the core size limit, widens coredump_filter so that anonymous
    private and shared memory (leaks) and ELF headers (build-ids) are dumped,
    marks the process dumpable, optionally names it (``comm``, used by %e) and
    changes into ``workdir`` (where a relative core_pattern writes).
    """
    die_with_parent()
    limits = raise_core_limit()
    filt = widen_coredump_filter()
    _prctl(PR_SET_DUMPABLE, 1)
    if name:
        _prctl(PR_SET_NAME, name.encode()[:15])
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
    return Prepared(limits, filt, _prctl(PR_GET_DUMPABLE), os.getcwd())
