"""The hang catalog: NotMyfault's Hang tab for Linux, as data, and committing a hang."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HangType:
    """One hang type."""

    name: str
    analog: str
    summary: str
    functions: tuple[str, ...]
    """The myfault functions the hung threads sit in (what a dump of the hang shows)."""
    state: str
    """The state of the hung threads in /proc (and ps): S, R or D."""
    dump_hint: str
    """How to take a dump of the hung process (PID is replaced)."""


HANGS: tuple[HangType, ...] = (
    HangType(
        name="deadlock",
        analog="Deadlock: two threads wait for each other's lock forever",
        summary="two threads in myfault take two pthread mutexes in opposite order",
        functions=("myfault_deadlock_a", "myfault_deadlock_b"),
        state="S",
        dump_hint="notmyfault dump PID (a core, the process left hanging), or kill -QUIT PID (a core by core_pattern)",
    ),
    HangType(
        name="spin",
        analog="Hang with DPC: a CPU busy forever at raised IRQL (--realtime: SCHED_FIFO)",
        summary="threads busy-loop inside myfault on N CPUs",
        functions=("myfault_spin",),
        state="R",
        dump_hint="notmyfault dump PID (a core, the process left hanging), or kill -QUIT PID (a core by core_pattern)",
    ),
    HangType(
        name="unkillable",
        analog="Hang with IRP: a thread stuck in an uninterruptible kernel wait (an 'unkillable process')",
        summary="a thread vforks a child that never execs: it waits in the kernel, state D",
        functions=("myfault_hang_unkillable",),
        state="D",
        dump_hint=(
            "kill -QUIT PID (the watchdog thread takes the signal and dumps; notmyfault dump and gcore "
            "cannot stop a thread in D state)"
        ),
    ),
)

ALIASES = {"d-state": "unkillable"}


def lookup_hang(name: str) -> HangType:
    """Find a hang type by name (or alias); raise LookupError listing the valid ones."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    for h in HANGS:
        if h.name == key:
            return h
    valid = ", ".join([h.name for h in HANGS] + [f"{a} (= {b})" for a, b in ALIASES.items()])
    raise LookupError(f"unknown hang type {name!r}; valid types: {valid}")


def commit_hang(hang: HangType, threads: int, realtime: bool, crash_after: float | None) -> int:
    """Hang this process's calling thread in myfault; returns only if the hang is released.

    A watchdog thread is always started first: with ``crash_after`` it aborts
    the process after that many seconds, so the dump shows the hung threads
    where they hang; without it, it only waits, so that a signal sent to the
    process (kill -QUIT) has a thread to take it even when the hung thread
    cannot.
    """
    from notmyfault.native import myfault

    myfault.start_watchdog(crash_after or 0.0)
    return myfault.hang(hang.name, threads, realtime)
