"""The window's children: a crash, a leak or a hang, each run and watched from a worker thread.

Nothing here knows about Textual.  A :class:`ChildJob` is one child process
that notmyfault starts in a session of its own (so killing its group kills
everything it started) and watches with :func:`crash_in_child`, so that when
it dies the dump it left is found as for ``notmyfault crash``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from notmyfault.capture import CrashRun, DumpSettings, crash_in_child

LEAK_INTERVAL = 0.25
"""Seconds between the leak child's progress events (the chart's resolution)."""
LEAK_BUG = "high-irql"
"""The crash that Do Bug commits in a leaking child: the seed's."""
CRASH_TIMEOUT = 120.0
"""Seconds a crash child may take before it is killed."""


def _notmyfault(*args: str) -> list[str]:
    return [sys.executable, "-m", "notmyfault", *args]


def crash_argv(name: str, signo: int | None = None) -> list[str]:
    """The child that commits crash type ``name`` (``signal`` takes ``signo``)."""
    argv = _notmyfault("crash", name, "--child")
    if signo is not None:
        argv += ["--signal", str(signo)]
    return argv


def leak_argv(pool: str, rate: int, stop_at: int, tag: str) -> list[str]:
    """The child that leaks, holds the leak, reports progress as JSON Lines, and crashes on SIGUSR1."""
    return _notmyfault("leak", "--pool", pool, "--rate", str(rate), "--stop-at", str(stop_at),
                       "--tag", tag, "--hold", "--json", "--interval", str(LEAK_INTERVAL),
                       "--crash-on-usr1", LEAK_BUG, "--child")  # fmt: skip


def hang_argv(name: str) -> list[str]:
    """The child that hangs with ``name`` (spin: on one CPU, so the window stays responsive)."""
    argv = _notmyfault("hang", name, "--child")
    if name == "spin":
        argv += ["--threads", "1"]
    return argv


@dataclass(frozen=True)
class LeakEvent:
    """One JSON Lines event of the leak child (see docs/json-schema.md, ``leak``)."""

    event: str
    leaked: int
    blocks: int
    rate: float
    state: str | None
    counters: dict[str, int]
    freed: int | None = None
    message: str | None = None


def parse_leak_event(line: bytes) -> LeakEvent | None:
    """Parse one line of the leak child's stdout; None for anything that is not a leak event."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("kind") != "leak":
        return None
    return LeakEvent(
        event=str(obj.get("event")),
        leaked=int(obj.get("leaked") or 0),
        blocks=int(obj.get("blocks") or 0),
        rate=float(obj.get("rate") or 0.0),
        state=obj.get("state"),
        counters={k: int(v) for k, v in (obj.get("counters") or {}).items()},
        freed=obj.get("freed"),
        message=obj.get("message"),
    )


@dataclass
class ChildJob:
    """One child of the window: what it runs, its pid once started, and how it ended."""

    kind: str
    """crash, leak or hang."""
    name: str
    """The crash, pool or hang type."""
    argv: list[str]
    label: str
    """What the dump file is named after (``core.LABEL.PID.TIME``)."""
    timeout: float | None = None
    tag: str | None = None
    """A leak's pool tag: the analysis of its dump searches for it."""
    pid: int | None = None
    run: CrashRun | None = None
    error: str | None = None
    stderr: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def alive(self) -> bool:
        """True from the start until the child has been reaped."""
        return not self.done.is_set()

    def send(self, signo: int) -> bool:
        """Send ``signo`` to the child; False if it is gone or not started."""
        if self.pid is None or self.done.is_set():
            return False
        try:
            os.kill(self.pid, signo)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """Kill the child and all it started (its process group); the watcher reaps them."""
        if self.pid is not None and not self.done.is_set():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def execute(
        self,
        settings: DumpSettings,
        on_start: Callable[[int], None] | None = None,
        on_stdout: Callable[[bytes], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
    ) -> CrashRun | None:
        """Run the child to its end (blocking: call from a worker thread); keep and return the run."""

        def started(pid: int) -> None:
            self.pid = pid
            self.started.set()
            if on_start is not None:
                on_start(pid)

        def err_line(line: bytes) -> None:
            text = line.decode(errors="replace").rstrip("\n")
            self.stderr.append(text)
            if on_stderr is not None:
                on_stderr(text)

        options: dict[str, Any] = {"new_session": True, "on_start": started, "on_stderr": err_line}
        if on_stdout is not None:
            options["on_stdout"] = on_stdout
        try:
            self.run = crash_in_child(self.argv, settings, self.label, self.timeout, **options)
        except Exception as e:  # the window must survive whatever the watch meets
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.started.set()
            self.done.set()
        return self.run


class Children:
    """The children the window started; all of them are killed and reaped when it quits."""

    def __init__(self) -> None:
        self._jobs: list[ChildJob] = []
        self._lock = threading.Lock()

    def add(self, job: ChildJob) -> ChildJob:
        """Track ``job``."""
        with self._lock:
            self._jobs = [j for j in self._jobs if j.alive] + [job]
        return job

    def alive(self, kind: str | None = None) -> list[ChildJob]:
        """The jobs whose child has not been reaped yet (of ``kind``, if given)."""
        with self._lock:
            return [j for j in self._jobs if j.alive and (kind is None or j.kind == kind)]

    def kill_all(self, wait: float = 10.0) -> list[int]:
        """Kill every live child's process group and wait up to ``wait`` s for the watchers to reap them.

        Returns the pids that were killed.
        """
        jobs = self.alive()
        for j in jobs:
            j.started.wait(wait)
            j.kill()
        for j in jobs:
            j.done.wait(wait)
        return [j.pid for j in jobs if j.pid is not None]
