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
    """The threads of a wait-for cycle on pthread mutexes, in order; empty when there is none."""
    waits: dict[int, LockWait] = {}
    for t in core.threads:
        mutex = _waiting(core, t)
        if mutex is None:
            continue
        frames = thread_frames(program, core, t.tid)
        if not any(f.function and any(name in f.function for name in LOCK_FUNCTIONS) for f in frames[:8]):
            continue
        try:
            (owner,) = struct.unpack("<i", core.read(mutex + OWNER_OFFSET, 4))
        except UnreadableMemory:
            continue
        own = next((f for f in frames if f.module and not is_system_module(f.module)), None)
        waits[t.tid] = LockWait(t.tid, mutex, owner, own.function if own else None, own, tuple(frames))
    for start in waits:
        chain: list[LockWait] = []
        seen: set[int] = set()
        tid = start
        while tid in waits and tid not in seen:
            seen.add(tid)
            chain.append(waits[tid])
            tid = waits[tid].owner
        if tid == start and len(chain) > 1:
            # start the cycle at a canonical member, so the bucket does not depend on thread order
            first = min(range(len(chain)), key=lambda i: _order(chain[i]))
            return tuple(chain[first:] + chain[:first])
    return ()


def _order(w: LockWait) -> tuple[str, int]:
    return (w.frame.symbolic() if w.frame is not None else "~", w.tid)
