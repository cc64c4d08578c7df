"""Leak memory on purpose, at a set rate, in tagged blocks: NotMyfault's Leak Paged / Nonpaged.

Pools:

- ``paged``: anonymous memory, every page written (AnonPages, the process's
  RSS); the system may swap it.  With ``persist`` it goes into System V shared
  memory segments instead (Shmem), which outlive the process.
- ``nonpaged``: the same, locked with mlock (Mlocked, Unevictable, VmLck); it
  is never swapped.  Needs RLIMIT_MEMLOCK or CAP_IPC_LOCK.
- ``kernel``: messages on System V message queues.  The kernel copies each
  message into memory it allocates for it (kmalloc, counted in SUnreclaim and
  the cgroup's ``kernel`` / ``slab_unreclaimable``): not the process's pages,
  never swapped, and kept until the queue is removed, so it outlives the
  process.  Messages are 4048 bytes by default, so each fills one 4 KiB slab
  object with the kernel's 48-byte message header.  Chosen over pipe buffers
  because queues outlive the process (``persist``), are listed by the system
  (``ipcs -q``, /proc/sysvipc/msg) and show in one clear counter.

Pacing is by the clock: block n is taken when the leak's schedule says the
bytes up to its end are due (start + bytes / rate), so the rate holds over the
whole run whatever each allocation costs; the last block is cut so the leak
stops exactly at its limit.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from notmyfault.base.caps import CAP_IPC_LOCK, has_capability
from notmyfault.base.units import format_size
from notmyfault.faults import sysv
from notmyfault.faults.pool import PoolCode, normalize_tag
from notmyfault.faults.safety import check_floor

PAGE = os.sysconf("SC_PAGESIZE")
KERNEL_MSG_OVERHEAD = 48
"""Bytes the kernel adds to each message (struct msg_msg on 64-bit)."""
DEFAULT_BLOCK = 64 * 1024
DEFAULT_KERNEL_BLOCK = 4096 - KERNEL_MSG_OVERHEAD


class Stop(Protocol):
    """What tells a leak to stop: threading.Event, or a flag a signal handler may set."""

    def is_set(self) -> bool:
        """True once the leak must stop."""
        ...

    def wait(self, timeout: float) -> bool:
        """Sleep until set or ``timeout`` seconds pass; return whether it is set."""
        ...


class Pool(str, Enum):
    """The pool a leak takes memory from."""

    PAGED = "paged"
    NONPAGED = "nonpaged"
    KERNEL = "kernel"


class LeakRefused(ValueError):
    """A leak that cannot or must not start; the message says why and what to change."""


@dataclass(frozen=True)
class LeakPlan:
    """A checked leak: everything needed to run it."""

    pool: Pool
    rate: int
    """Bytes per second."""
    stop_at: int
    """Bytes leaked when the leak stops by itself."""
    tag: str
    """4 characters."""
    block: int
    """Bytes per block (a multiple of the page size; for the kernel pool, one message)."""
    persist: bool

    @property
    def code(self) -> PoolCode:
        """The pool code written in every block's header."""
        if self.pool is Pool.KERNEL:
            return PoolCode.KERNEL
        if self.persist:
            return PoolCode.SHARED
        return PoolCode.PAGED if self.pool is Pool.PAGED else PoolCode.NONPAGED

    @property
    def blocks(self) -> int:
        """How many blocks the whole leak takes."""
        return len(block_sizes(self))


def _read_int(path: str) -> int:
    return int(Path(path).read_text().split()[0])


def memlock_allows(nbytes: int) -> bool:
    """True if this process may lock ``nbytes``: it holds CAP_IPC_LOCK, or its hard
    RLIMIT_MEMLOCK (to which the leak raises the soft one) is at least that."""
    if has_capability(CAP_IPC_LOCK):
        return True
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return hard == resource.RLIM_INFINITY or nbytes <= hard


def block_sizes(plan: LeakPlan) -> list[int]:
    """The size of every block, in order: full blocks, then the cut last one."""
    full, rest = divmod(plan.stop_at, plan.block)
    sizes = [plan.block] * full
    if plan.pool is not Pool.KERNEL:
        rest -= rest % PAGE
    if rest >= (PAGE if plan.pool is not Pool.KERNEL else 32):
        sizes.append(rest)
    return sizes


def kernel_bytes(plan: LeakPlan) -> int:
    """Kernel memory the kernel pool leak will take: whole 4 KiB pieces per message."""
    per_msg = -(-(plan.block + KERNEL_MSG_OVERHEAD) // 4096) * 4096
    return plan.blocks * per_msg


def messages_per_queue(block: int) -> int:
    """How many messages of ``block`` bytes fit on one queue (kernel.msgmnb)."""
    return max(1, _read_int("/proc/sys/kernel/msgmnb") // block)


def plan_leak(
    pool: Pool,
    rate: int,
    stop_at: int,
    tag: str = "Leak",
    block: int | None = None,
    persist: bool = False,
    force: bool = False,
) -> LeakPlan:
    """Check a leak before it starts; raise LeakRefused saying what is wrong and what to do."""
    try:
        tag = normalize_tag(tag)
    except ValueError as e:
        raise LeakRefused(str(e)) from None
    if rate <= 0:
        raise LeakRefused("--rate must be more than 0 bytes per second")
    if persist and pool is Pool.NONPAGED:
        raise LeakRefused(
            "--persist keeps paged (System V shared memory) and kernel (message queue) leaks; "
            "locked memory cannot outlive the process"
        )
    if pool is Pool.KERNEL:
        msgmax = _read_int("/proc/sys/kernel/msgmax")
        block = DEFAULT_KERNEL_BLOCK if block is None else block
        if not 32 <= block <= min(msgmax, 8192):
            raise LeakRefused(
                f"a kernel-pool block is one message of 32 to {min(msgmax, 8192)} bytes "
                f"(kernel.msgmax is {msgmax}), not {block}"
            )
    else:
        block = DEFAULT_BLOCK if block is None else block
        if block < PAGE:
            raise LeakRefused(f"--block must be at least one page ({PAGE} bytes), not {block}")
        block -= block % PAGE
    if stop_at < (32 if pool is Pool.KERNEL else PAGE):
        raise LeakRefused(f"--stop-at {stop_at} is less than one block")
    plan = LeakPlan(pool, rate, stop_at, tag, block, persist)
    _check_limits(plan)
    if not force:
        need = kernel_bytes(plan) if pool is Pool.KERNEL else plan.stop_at
        try:
            check_floor(need)
        except ValueError as e:
            raise LeakRefused(f"refused: {e}, or add --force") from None
    return plan


def _check_limits(plan: LeakPlan) -> None:
    if plan.pool is Pool.NONPAGED and not memlock_allows(plan.stop_at):
        hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
        raise LeakRefused(
            f"a nonpaged leak of {format_size(plan.stop_at)} must lock that much, but RLIMIT_MEMLOCK "
            f"is {format_size(hard)} (hard) and this user may not raise it: ask for at most "
            f"{format_size(hard)}, or raise the limit as root (ulimit -l unlimited, 'memlock' in "
            "/etc/security/limits.conf, or LimitMEMLOCK= for a systemd service)"
        )
    if plan.pool is Pool.KERNEL:
        per_queue = messages_per_queue(plan.block)
        queues = -(-plan.blocks // per_queue)
        msgmni = _read_int("/proc/sys/kernel/msgmni")
        free = msgmni - sysv.count("msg")
        if queues > free:
            raise LeakRefused(
                f"a kernel leak of {format_size(plan.stop_at)} needs {queues} message queues "
                f"({per_queue} messages of {plan.block} bytes each, kernel.msgmnb), but only {free} of "
                f"kernel.msgmni={msgmni} are free: leak less, or raise it as root "
                f"(sysctl -w kernel.msgmni={msgmni + queues})"
            )
    if plan.persist and plan.pool is Pool.PAGED:
        shmmni = _read_int("/proc/sys/kernel/shmmni")
        free = shmmni - sysv.count("shm")
        if plan.blocks > free:
            raise LeakRefused(
                f"a persistent paged leak keeps one shared memory segment per block: {plan.blocks} blocks "
                f"of {format_size(plan.block)}, but only {free} of kernel.shmmni={shmmni} are free: "
                "use a bigger --block, or raise kernel.shmmni as root"
            )


@dataclass
class LeakStatus:
    """Where a leak stands."""

    leaked: int = 0
    blocks: int = 0
    elapsed_s: float = 0.0
    reached_limit: bool = False
    stopped: bool = False
    """Stopped early by a signal."""
    error: str | None = None

    @property
    def rate(self) -> float:
        """Bytes per second achieved so far."""
        return self.leaked / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class Leaker:
    """Runs a leak plan through myfault and remembers every block so it can free them."""

    plan: LeakPlan
    status: LeakStatus = field(default_factory=LeakStatus)
    _blocks: list[tuple[str, int, int]] = field(default_factory=list)
    _queue: int | None = None
    _queue_fill: int = 0
    _per_queue: int = 0
    _keys: dict[str, Iterator[int]] = field(default_factory=dict)

    def _take(self, size: int, seq: int) -> None:
        from notmyfault.native import myfault

        tag = self.plan.tag.encode("ascii")
        if self.plan.pool is Pool.KERNEL:
            if self._per_queue == 0:
                self._per_queue = messages_per_queue(self.plan.block)
            if self._queue is None or self._queue_fill >= self._per_queue:
                self._queue = self._new_ipc("msg", lambda key: myfault.msg_queue(key))
                self._blocks.append(("msg", self._queue, 0))
                self._queue_fill = 0
            myfault.msg_block(self._queue, size, tag, seq)
            self._queue_fill += 1
        elif self.plan.persist:
            ident = self._new_ipc("shm", lambda key: myfault.shm_block(key, size, tag, seq))
            self._blocks.append(("shm", ident, size))
        else:
            addr = myfault.leak_block(int(self.plan.code), size, tag, seq)
            self._blocks.append(("mem", addr, size))

    def _new_ipc(self, kind: str, make: Callable[[int], int]) -> int:
        # One snapshot of the keys in use per leak; a key taken since then
        # fails with EEXIST and the next one is tried.
        keys = self._keys.setdefault(kind, sysv.free_keys(kind))
        for key in keys:
            try:
                return make(key)
            except FileExistsError:
                continue
        raise OSError(f"no free System V {kind} key with notmyfault's prefix")

    def run(
        self,
        stop: Stop,
        progress: Callable[[LeakStatus], None] | None = None,
        tick: float = 1.0,
    ) -> LeakStatus:
        """Leak until the limit, or until ``stop`` is set; call ``progress`` every ``tick`` seconds."""
        st = self.status
        if self.plan.pool is Pool.NONPAGED:
            _soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
        t0 = time.monotonic()
        next_tick = t0 + tick
        for seq, size in enumerate(block_sizes(self.plan)):
            due = t0 + (st.leaked + size) / self.plan.rate
            while True:
                now = time.monotonic()
                if progress is not None and now >= next_tick:
                    st.elapsed_s = now - t0
                    progress(st)
                    next_tick += tick * max(1, int((now - next_tick) // tick) + 1)
                if now >= due or stop.is_set():
                    break
                stop.wait(min(due, next_tick) - now)
            if stop.is_set():
                st.stopped = True
                break
            try:
                self._take(size, seq)
            except OSError as e:
                st.error = f"block {seq} ({format_size(size)}) failed: {e.strerror or e}"
                break
            st.leaked += size
            st.blocks += 1
        else:
            st.reached_limit = True
        st.elapsed_s = time.monotonic() - t0
        if progress is not None:
            progress(st)
        return st

    def free(self) -> int:
        """Free every block this leaker took (persistent objects too); return bytes freed."""
        from notmyfault.native import myfault

        freed = 0
        for kind, ident, size in reversed(self._blocks):
            if kind == "mem":
                myfault.free_block(ident, size)
                freed += size
            else:
                with contextlib.suppress(OSError):
                    myfault.ipc_remove(kind, ident)
        if self.plan.pool is Pool.KERNEL or self.plan.persist:
            freed = self.status.leaked
        self._blocks.clear()
        return freed

    def release_ownership(self) -> None:
        """Forget the blocks without freeing them (a persistent leak outlives the process)."""
        self._blocks.clear()


def counters(plan: LeakPlan) -> dict[str, int]:
    """The system counters a person watches for this pool, in bytes (/proc/meminfo and VmRSS/VmLck)."""
    from notmyfault.faults.safety import meminfo

    info = meminfo()
    status = meminfo("/proc/self/status")
    if plan.pool is Pool.KERNEL:
        keys = ["SUnreclaim", "Slab"]
    elif plan.persist:
        keys = ["Shmem"]
    elif plan.pool is Pool.NONPAGED:
        keys = ["Mlocked", "Unevictable"]
    else:
        keys = ["AnonPages"]
    out = {k: info.get(k, 0) for k in keys}
    if plan.pool is Pool.NONPAGED and not plan.persist:
        out["VmLck"] = status.get("VmLck", 0)
    if plan.pool is not Pool.KERNEL and not plan.persist:
        out["VmRSS"] = status.get("VmRSS", 0)
    out["MemAvailable"] = info.get("MemAvailable", 0)
    return out
