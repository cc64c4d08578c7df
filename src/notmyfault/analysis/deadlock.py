"""Deadlocks in dumps of hung processes: threads blocked on pthread mutexes whose owners wait on each other.

A thread blocked in pthread_mutex_lock sits in the futex system call; its
saved registers name the futex word, which is the start of the mutex (x86_64:
rdi, with orig_rax = 202; aarch64: x0, with x8 = 98).  glibc keeps the owner's
thread id at offset 8 of pthread_mutex_t (__data.__owner, the same on both).
Following "waits for the mutex held by" from thread to thread, a cycle is a
deadlock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from notmyfault.analysis.blame import is_system_module
from notmyfault.dumps.elfcore import ElfCore, ThreadState
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.unwind.elf import Program, thread_frames
from notmyfault.unwind.frames import Frame

FUTEX = {"x86_64": ("orig_rax", 202, "rdi"), "aarch64": ("x8", 98, "x0")}
OWNER_OFFSET = 8
LOCK_FUNCTIONS = ("pthread_mutex_lock", "__lll_lock_wait", "pthread_mutex_timedlock", "__pthread_mutex_lock")


@dataclass(frozen=True)
class LockWait:
    """One thread waiting for a mutex."""

    tid: int
    mutex: int
    owner: int
    function: str | None
    """The thread's innermost function outside the system modules (who asked for the lock)."""
    frame: Frame | None
    stack: tuple[Frame, ...] = ()
    """The thread's whole stack, innermost first (the signature of a deadlock is taken from it)."""


def _waiting(core: ElfCore, t: ThreadState) -> int | None:
    """The futex address thread ``t`` waits on, if it is in the futex system call."""
    spec = FUTEX.get(core.arch)
    if spec is None:
        return None
    nr_reg, nr, addr_reg = spec
    if t.regs.get(nr_reg) != nr:
        return None
    return t.regs.get(addr_reg)


def find_deadlock(core: ElfCore, program: Program) -> tuple[LockWait, ...]:
    """The threads of a wait-for cycle on pthread mutexes, in order; empty when there is none.

    The wait-for graph comes from registers and memory alone (each waiting thread's futex word and
    its mutex's owner); only the threads on a cycle are walked, to confirm that each waits in a
    lock function (a process of 10,000 threads waiting on one held mutex walks none of them)."""
    owners: dict[int, tuple[int, int]] = {}  # tid -> (mutex, owner)
    for t in core.threads:
        mutex = _waiting(core, t)
        if mutex is None:
            continue
        try:
            (owner,) = struct.unpack("<i", core.read(mutex + OWNER_OFFSET, 4))
        except UnreadableMemory:
            continue
        owners[t.tid] = (mutex, owner)
    checked: dict[int, LockWait | None] = {}

    def lock_wait(tid: int) -> LockWait | None:
        """Thread ``tid``'s wait, if its innermost frames are in a lock function."""
        if tid not in checked:
            frames = thread_frames(program, core, tid)
            locking = any(f.function and any(n in f.function for n in LOCK_FUNCTIONS) for f in frames[:8])
            own = next((f for f in frames if f.module and not is_system_module(f.module)), None)
            mutex, owner = owners[tid]
            checked[tid] = (
                LockWait(tid, mutex, owner, own.function if own else None, own, tuple(frames))
                if locking
                else None
            )
        return checked[tid]

    for start in owners:
        chain: list[int] = []
        seen: set[int] = set()
        tid = start
        while tid in owners and tid not in seen:
            seen.add(tid)
            chain.append(tid)
            tid = owners[tid][1]
        if tid != start or len(chain) < 2:
            continue
        waits = [lock_wait(t) for t in chain]
        if all(w is not None for w in waits):
            cycle = [w for w in waits if w is not None]
            # start the cycle at a canonical member, so the bucket does not depend on thread order
            first = min(range(len(cycle)), key=lambda i: _order(cycle[i]))
            return tuple(cycle[first:] + cycle[:first])
    return ()


def _order(w: LockWait) -> tuple[str, int]:
    return (w.frame.symbolic() if w.frame is not None else "~", w.tid)
