"""The crash store: where collected and uploaded crashes wait to be processed, and stay.

A directory, laid out so that every step is one atomic rename and a crash is whole or absent::

    STORE/
      limits.json          the limits (see Limits), written by ``collect --install`` or ``serve``
      crashes/ID/          one crash: meta.json and its dump (core.zst, or upload.dmp/core.zst)
      queue/ID             an empty file: the crash is still to be processed
      incoming/            crashes being written (a directory each, renamed into crashes/ whole)
      dropped.jsonl        one line per crash not kept, and why (rate, quota, size, error)
      .lock .rate.json     the lock that orders commits, and the recent crashes per program

A crash is written in ``incoming/``, fsynced, queued (``queue/ID``) and renamed into ``crashes/``;
the processor handles a queued id once its crash directory is there, and removes the queue entry
only after the database has its row, so a stop at any point loses nothing. A queue entry whose
crash never arrived (its writer was killed) is removed after an hour.

The limits follow coredump.conf(5): ``max_use`` (MaxUse) and ``keep_free`` (KeepFree) bound the
whole store, ``max_core`` (ExternalSizeMax) one stored dump, ``max_raw`` (ProcessSizeMax) what is
read of one core; and a rate limit per program, so that a crash storm cannot fill the disk nor hold
the machine. Over a store limit, the oldest crashes already processed lose their dumps first (their
metadata stays); a crash that still does not fit is dropped and said so in ``dropped.jsonl``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

CRASH_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{6}\d{6}$")
"""A crash id: a random UUID whose last six digits are the day it was received (YYMMDD), as
Socorro's collector makes them (so that ids sort into days)."""
ORPHAN_SECONDS = 3600.0
"""How old a queue entry whose crash never arrived must be before it is removed."""
USAGE_RESCAN = 60.0
"""How long the store trusts its count of the bytes it holds before it counts the files again."""
DROP_LOG_MAX = 4 << 20
"""dropped.jsonl stops growing at this size (a storm of drops cannot fill the disk either)."""
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """What the store may hold. Sizes are bytes; None: no limit of that kind."""

    max_use: int | None = None
    """The most all stored dumps may take (coredump.conf's MaxUse); None: 10% of the file
    system, at most 4 GiB, as systemd-coredump's default."""
    keep_free: int | None = None
    """The least free space a new dump may leave (KeepFree); None: 15% of the file system, at
    most 4 GiB."""
    max_core: int = GiB
    """The largest stored (compressed) dump (ExternalSizeMax)."""
    max_raw: int = 2 * GiB
    """The largest core read from the kernel (ProcessSizeMax): one past it is dropped unread."""
    rate: int = 20
    """At most this many crashes of one program are kept per ``interval`` (the rest are dropped)."""
    interval: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        """The limits as stored in limits.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """Limits from limits.json; unknown keys are ignored, missing ones take the defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def resolved(self, root: str) -> tuple[int, int]:
        """(max_use, keep_free) in bytes for a store at ``root``: the defaults from its file system."""
        st = os.statvfs(root)
        total = st.f_blocks * st.f_frsize
        max_use = self.max_use if self.max_use is not None else min(total // 10, 4 * GiB)
        keep_free = self.keep_free if self.keep_free is not None else min(total * 15 // 100, 4 * GiB)
        return max_use, keep_free


class Dropped(Exception):
    """A crash was not kept: over a limit; the message says which (one line)."""


def new_id(when: float | None = None) -> str:
    """A fresh crash id (see CRASH_ID)."""
    day = dt.datetime.fromtimestamp(when if when is not None else time.time(), dt.timezone.utc)
    return str(uuid.uuid4())[:-6] + day.strftime("%y%m%d")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """A crash store at ``root`` (created, mode 0700, on first write)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.crashes = os.path.join(self.root, "crashes")
        self.queue = os.path.join(self.root, "queue")
        self.incoming = os.path.join(self.root, "incoming")

    # -- layout -------------------------------------------------------------------------------

    def create(self) -> None:
        """Make the store's directories (0700: dumps hold what processes held); ValueError if the
        root is a link or not a directory."""
        for path in (self.root, self.crashes, self.queue, self.incoming):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                if os.path.islink(path) or not os.path.isdir(path):
                    raise ValueError(
                        f"the store {path} is not a directory (a link or a file is there)"
                    ) from None

    def limits(self) -> Limits:
        """The store's limits (limits.json), the defaults where it has none."""
        try:
            with open(os.path.join(self.root, "limits.json"), encoding="utf-8") as f:
                return Limits.from_dict(json.load(f))
        except (OSError, ValueError, TypeError):
            return Limits()

    def set_limits(self, limits: Limits) -> None:
        """Write limits.json (atomically)."""
        from notmyfault.base import write_file

        self.create()
        write_file(os.path.join(self.root, "limits.json"), json.dumps(limits.to_dict(), indent=1) + "\n")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store's lock, held (commits, the rate table and vacuuming take it)."""
        fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- limits -------------------------------------------------------------------------------

    def admit(self, program: str, rate: int, interval: float, now: float | None = None) -> None:
        """Count one crash of ``program`` against the rate limit: at most ``rate`` crashes in a
        window of ``interval`` seconds that starts with the first crash after the last window (as
        journald's RateLimitIntervalSec and RateLimitBurst); Dropped past it, until the window ends."""
        now = time.time() if now is None else now
        path = os.path.join(self.root, ".rate.json")
        with self.locked():
            try:
                with open(path, encoding="utf-8") as f:
                    table: dict[str, list[float]] = json.load(f)
            except (OSError, ValueError):
                table = {}
            # each program: [when its window began, crashes in it]; windows that ended are forgotten
            table = {
                k: v
                for k, v in table.items()
                if isinstance(v, list) and len(v) == 2 and now - v[0] < interval
            }
            began, count = table.get(program, [now, 0])
            if count >= rate:
                raise Dropped(
                    f"rate limit: {int(count)} crashes of {program} in the {interval:g} s since"
                    f" {time.strftime('%H:%M:%S', time.gmtime(began))} UTC (at most {rate})"
                )
            table[program] = [began, count + 1]
            temp = f"{path}.{os.getpid()}.{threading.get_ident()}"
            with open(temp, "w", encoding="utf-8") as f:
                json.dump(table, f)
            os.replace(temp, path)

    def usage(self) -> int:
        """Bytes the stored crashes take (their files)."""
        total = 0
        for crash in self._crash_dirs():
            with contextlib.suppress(OSError):
                for entry in os.scandir(crash):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
        return total

    def _crash_dirs(self) -> list[str]:
        try:
            return [e.path for e in os.scandir(self.crashes) if CRASH_ID.match(e.name)]
        except FileNotFoundError:
            return []

    def room(self, size: int, limits: Limits) -> None:
        """Make room for ``size`` more bytes, removing the dumps of the oldest processed crashes
        where the store is over its limits (call with the lock held); Dropped if it cannot."""
        max_use, keep_free = limits.resolved(self.root)
        if size > max_use:
            raise Dropped(
                f"quota: the dump ({size} bytes) is larger than the store's max use ({max_use} bytes)"
            )
        used = self.cached_usage()
        if used + size <= max_use and self._free() - size >= keep_free:
            return
        queued = set(self.queued())
        oldest = sorted(
            (d for d in self._crash_dirs() if os.path.basename(d) not in queued),
            key=lambda d: os.stat(d).st_mtime,
        )
        try:
            while used + size > max_use or self._free() - size < keep_free:
                if not oldest:
                    raise Dropped(
                        f"quota: the store holds {used} bytes of max use {max_use}, and {self._free()} bytes"
                        f" are free of the {keep_free} to keep free; no processed crash is left to remove"
                    )
                used -= self._forget_dump(oldest.pop(0))
        finally:
            self.record_usage(used)

    def cached_usage(self) -> int:
        """What the stored crashes take, as the store keeps count of it (call with the lock held):
        counted again from the files when the count is missing or older than USAGE_RESCAN seconds
        (files removed by hand are noticed then)."""
        try:
            with open(os.path.join(self.root, ".usage.json"), encoding="utf-8") as f:
                cached = json.load(f)
            if time.time() - float(cached["at"]) < USAGE_RESCAN:
                return int(cached["bytes"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        used = self.usage()
        self.record_usage(used, rescanned=True)
        return used

    def record_usage(self, used: int, rescanned: bool = False) -> None:
        """Keep ``used`` as the store's count of its bytes (call with the lock held)."""
        path = os.path.join(self.root, ".usage.json")
        at = time.time()
        if not rescanned:  # keep the time of the last count from the files
            with (
                contextlib.suppress(OSError, ValueError, KeyError, TypeError),
                open(path, encoding="utf-8") as f,
            ):
                at = float(json.load(f)["at"])
        temp = f"{path}.{os.getpid()}.{threading.get_ident()}"
        with open(temp, "w", encoding="utf-8") as f:
            json.dump({"bytes": used, "at": at}, f)
        os.replace(temp, path)

    def _free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def _forget_dump(self, crash: str) -> int:
        """Remove the dump of a processed crash (its metadata stays, marked); the bytes freed."""
        freed = 0
        meta_path = os.path.join(crash, "meta.json")
        if {e.name for e in os.scandir(crash)} <= {"meta.json"}:
            return 0  # its dump is gone already
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = {}
        for entry in os.scandir(crash):
            if entry.name != "meta.json":
                freed += entry.stat(follow_symlinks=False).st_blocks * 512
                os.unlink(entry.path)
        meta["dump"] = None
        meta["dump_removed"] = "removed to keep the store under its limits"
        _write_json(meta_path, meta)
        return freed

    def drop(self, meta: dict[str, Any], reason: str) -> None:
        """Record a crash that was not kept (``dropped.jsonl``, bounded)."""
        path = os.path.join(self.root, "dropped.jsonl")
        line = json.dumps({**meta, "dropped": reason, "dropped_at": _now()}, sort_keys=True) + "\n"
        with contextlib.suppress(OSError):
            if os.path.exists(path) and os.path.getsize(path) > DROP_LOG_MAX:
                return
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def dropped(self) -> list[dict[str, Any]]:
        """The crashes that were not kept, oldest first."""
        try:
            with open(os.path.join(self.root, "dropped.jsonl"), encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    # -- writing ------------------------------------------------------------------------------

    def begin(self, when: float | None = None) -> PendingCrash:
        """A new crash being written in ``incoming/``."""
        self.create()
        crash_id = new_id(when)
        path = os.path.join(self.incoming, f"{crash_id}.{os.getpid()}")
        os.mkdir(path, 0o700)
        return PendingCrash(self, crash_id, path)

    def reap_incoming(self, older_than: float = ORPHAN_SECONDS) -> int:
        """Remove the crashes that writers killed mid-way left in ``incoming/``; how many. A writer
        killed between queueing its crash and renaming it into ``crashes/`` left a queue entry
        too: it goes with the directory (the crash was never acknowledged, so nothing is lost),
        not an hour later as an orphan (``ready``)."""
        n = 0
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.incoming):
                crash_id, _, pid = entry.name.rpartition(".")
                gone = pid.isdigit() and not os.path.exists(f"/proc/{pid}")
                if gone or now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    n += 1
                    if CRASH_ID.match(crash_id) and not os.path.isdir(os.path.join(self.crashes, crash_id)):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(self.queue, crash_id))
        return n

    # -- reading ------------------------------------------------------------------------------

    def queued(self) -> list[str]:
        """The ids still to be processed, oldest first (their crash may still be arriving)."""
        try:
            entries = [e for e in os.scandir(self.queue) if CRASH_ID.match(e.name)]
        except FileNotFoundError:
            return []
        dated = []
        for e in entries:
            with contextlib.suppress(FileNotFoundError):  # processed meanwhile
                dated.append((e.stat().st_mtime, e.name))
        return [name for _, name in sorted(dated)]

    def ready(self) -> list[str]:
        """The queued ids whose crash is whole in the store; queue entries orphaned for an hour
        (their writer died before the rename) are removed."""
        out = []
        now = time.time()
        for crash_id in self.queued():
            if os.path.isdir(os.path.join(self.crashes, crash_id)):
                out.append(crash_id)
                continue
            entry = os.path.join(self.queue, crash_id)
            with contextlib.suppress(OSError):
                if now - os.stat(entry).st_mtime > ORPHAN_SECONDS:
                    os.unlink(entry)
        return out

    def processed(self, crash_id: str) -> None:
        """The crash's row is stored: take it off the queue."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.queue, crash_id))

    def ids(self) -> list[str]:
        """Every stored crash's id, sorted."""
        return sorted(os.path.basename(d) for d in self._crash_dirs())

    def meta(self, crash_id: str) -> dict[str, Any]:
        """A stored crash's metadata; KeyError if there is no such crash."""
        if not CRASH_ID.match(crash_id):
            raise KeyError(crash_id)
        try:
            with open(os.path.join(self.crashes, crash_id, "meta.json"), encoding="utf-8") as f:
                data: dict[str, Any] = json.load(f)
                return data
        except (OSError, ValueError):
            raise KeyError(crash_id) from None

    def update_meta(self, crash_id: str, fields: dict[str, Any]) -> None:
        """Add ``fields`` to a stored crash's metadata (atomically)."""
        meta = self.meta(crash_id)
        with self.locked():
            _write_json(os.path.join(self.crashes, crash_id, "meta.json"), {**meta, **fields})

    def dump_path(self, crash_id: str) -> str | None:
        """The stored dump of a crash, or None (removed to keep the store under its limits)."""
        name = self.meta(crash_id).get("dump")
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            return None
        path = os.path.join(self.crashes, crash_id, name)
        return path if os.path.isfile(path) and not os.path.islink(path) else None


class PendingCrash:
    """A crash being written: files go into ``path``; :meth:`commit` puts it in the store whole."""

    def __init__(self, store: Store, crash_id: str, path: str) -> None:
        self.store = store
        self.id = crash_id
        self.path = path
        self.done = False

    def file(self, name: str) -> str:
        """The path of a file of this crash (its name: letters, digits, dot, dash, underscore)."""
        if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name):
            raise ValueError(f"not a crash file name: {name!r}")
        return os.path.join(self.path, name)

    def commit(self, meta: dict[str, Any], dump: str | None, limits: Limits | None = None) -> str:
        """Write ``meta`` (with the id and the dump's file name) and put the crash in the store,
        within its limits (Dropped if over them: nothing is left). Returns the crash id."""
        limits = limits or self.store.limits()
        meta = {**meta, "id": self.id, "dump": dump}
        try:
            if dump is not None:
                size = os.stat(self.file(dump)).st_size
                if size > limits.max_core:
                    raise Dropped(
                        f"size: the dump is {size} bytes, over the largest stored ({limits.max_core})"
                    )
            _write_json(self.file("meta.json"), meta)
            _fsync_dir(self.path)
            with self.store.locked():
                size = sum(e.stat().st_blocks * 512 for e in os.scandir(self.path))
                self.store.room(size, limits)
                used = self.store.cached_usage()
                queue_entry = os.path.join(self.store.queue, self.id)
                os.close(os.open(queue_entry, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
                _fsync_dir(self.store.queue)
                os.rename(self.path, os.path.join(self.store.crashes, self.id))
                _fsync_dir(self.store.crashes)
                self.store.record_usage(used + size)
            self.done = True
            return self.id
        finally:
            if not self.done:
                self.discard()

    def discard(self) -> None:
        """Remove what was written (nothing of this crash is left)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.done = True

    def __enter__(self) -> PendingCrash:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.discard()


def _write_json(path: str, data: dict[str, Any]) -> None:
    temp = f"{path}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()
