"""When ``notmyfault dump`` takes its dumps, as ProcDump does: at once, when the process's CPU or
memory stays over a threshold, when a signal is about to be delivered to it, or when it exits.

CPU and memory are sampled from /proc (no ptrace until the dump): the CPU is the process's share of
one CPU over the last sample (``top``'s %CPU: 200 is two CPUs busy), the memory its resident set.
Signals and the exit are caught under ptrace (``PTRACE_SEIZE``, all threads, new ones followed
with ``PTRACE_O_TRACECLONE``): at a signal-delivery stop the signal is not yet delivered, so the
dump shows the process as it was when the fault happened, and the signal is given back afterwards.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from notmyfault.base.sigcodes import signal_name
from notmyfault.capture.livecore import (
    PTRACE_CONT,
    PTRACE_EVENT_EXIT,
    PTRACE_O_TRACECLONE,
    PTRACE_O_TRACEEXIT,
    WALL,
    Attached,
    DumpFailed,
    ptrace,
    stat_fields,
)

POLL = 0.25
"""Seconds between samples of /proc, and between progress lines' updates."""


@dataclass(frozen=True)
class Usage:
    """One sample of a process: %CPU since the last sample, resident bytes."""

    cpu: float
    rss: int


class Sampler:
    """%CPU and RSS of a process, from /proc/PID/stat and statm."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.hz = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.last = self._ticks()

    def _ticks(self) -> tuple[float, int]:
        fields = stat_fields(f"/proc/{self.pid}/stat")
        if not fields or fields[0] in ("Z", "X"):
            raise DumpFailed(f"process {self.pid} exited before the trigger fired")
        return time.monotonic(), int(fields[11]) + int(fields[12])

    def sample(self) -> Usage:
        """The usage since the last call."""
        now, ticks = self._ticks()
        then, before = self.last
        self.last = (now, ticks)
        cpu = 100.0 * (ticks - before) / self.hz / max(now - then, 1e-3)
        try:
            with open(f"/proc/{self.pid}/statm", encoding="ascii") as f:
                rss = int(f.read().split()[1]) * self.page
        except (OSError, IndexError, ValueError):
            raise DumpFailed(f"process {self.pid} exited before the trigger fired") from None
        return Usage(cpu, rss)


Progress = Callable[[str], None]


def wait_for_usage(
    pid: int,
    cpu: float | None,
    mem: int | None,
    hold: float,
    progress: Progress,
    describe: Callable[[Usage, float], str],
) -> Usage:
    """Return when the process's %CPU is at least ``cpu`` and its RSS at least ``mem`` (those given),
    without a break for ``hold`` seconds; DumpFailed if it exits first."""
    sampler = Sampler(pid)
    since: float | None = None
    while True:
        time.sleep(POLL)
        usage = sampler.sample()
        over = (cpu is None or usage.cpu >= cpu) and (mem is None or usage.rss >= mem)
        now = time.monotonic()
        since = (since if since is not None else now) if over else None
        held = now - since if since is not None else 0.0
        progress(describe(usage, held))
        if over and held >= hold:
            return usage


def _stops(attached: Attached, waiting: str, gone: str, progress: Progress) -> Iterator[tuple[int, int, int]]:
    """The traced process's ptrace stops, as (thread, signal, event): new threads are added to
    ``attached``, ended ones dropped; DumpFailed(``gone``) when the process itself ends."""
    while True:
        got, status = os.waitpid(-1, WALL | os.WNOHANG)
        if got == 0:
            progress(waiting)
            time.sleep(0.02)
            continue
        if not os.WIFSTOPPED(status):
            if got == attached.pid:
                raise DumpFailed(gone)
            if got in attached.seized:
                attached.seized.remove(got)
            continue
        if got not in attached.seized:
            attached.seized.append(got)  # a new thread: its first stop
        yield got, os.WSTOPSIG(status), status >> 16


def wait_for_signal(pid: int, signals: set[int], progress: Progress) -> tuple[Attached, int, int]:
    """Trace the process until a thread is about to be delivered one of ``signals``; then every thread
    is stopped. Returns (the attachment, that thread, the signal); the signal is delivered on detach."""
    attached = Attached(pid, PTRACE_O_TRACECLONE, stop=False)
    names = ", ".join(signal_name(s) for s in sorted(signals))
    try:
        for tid, sig, event in _stops(
            attached,
            f"waiting for {names} in process {pid}",
            f"process {pid} exited without taking {names}",
            progress,
        ):
            if event == 0 and sig in signals:
                attached.pending[tid] = sig
                attached.stop_all({tid})
                return attached, tid, sig
            # a signal it takes as usual; or a new thread, a clone event, a group stop
            ptrace(PTRACE_CONT, tid, 0, sig if event == 0 and sig != signal.SIGTRAP else 0)
    except BaseException:
        attached.detach()
        raise
    raise AssertionError("unreachable: _stops ends only by an exception")


def wait_for_exit(pid: int, progress: Progress) -> tuple[Attached, int]:
    """Trace the process until it exits (its leader's PTRACE_EVENT_EXIT, memory still whole); every
    thread left is stopped. Returns (the attachment, the exit status as wait(2) gives it)."""
    attached = Attached(pid, PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXIT, stop=False)
    try:
        for tid, sig, event in _stops(
            attached,
            f"waiting for process {pid} to exit",
            f"process {pid} was gone before its exit could be caught",
            progress,
        ):
            if event == PTRACE_EVENT_EXIT and tid == pid:
                code = _event_message(tid)
                attached.stop_all({tid})
                return attached, code
            ptrace(PTRACE_CONT, tid, 0, sig if event == 0 and sig != signal.SIGTRAP else 0)
    except BaseException:
        attached.detach()
        raise
    raise AssertionError("unreachable: _stops ends only by an exception")


def _event_message(tid: int) -> int:
    import ctypes

    from notmyfault.capture.livecore import PTRACE_GETEVENTMSG

    value = ctypes.c_ulong(0)
    ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.c_void_p(ctypes.addressof(value)))
    return int(value.value)
