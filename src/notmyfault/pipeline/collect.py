"""``notmyfault collect``: the core_pattern handler, and its installation.

The kernel runs the handler for every core dump (``|PROGRAM ARGS`` in kernel.core_pattern; see
core(5) and fs/coredump.c) as root, in the initial namespaces, with the core on standard input
and the crashing process still present (its /proc entry can be read until the core is read
whole). The handler:

1. reads what /proc says of the process *before* it reads the core (the executable, its command
   line, its namespaces), and what the kernel gave as arguments (pids in both namespaces, signal,
   time, uid and gid);
2. counts the crash against the per-program rate limit: one over it is dropped *unread*, so the
   kernel's write fails at once (EPIPE) and the dying process is not held;
3. streams the core through zstd into the store's ``incoming/``, up to ``max_raw`` bytes;
4. commits it (store.py): metadata beside the core, queued for processing, all or nothing.

``install`` writes the pattern and ``core_pipe_limit`` and keeps the previous values in the
store's ``installed.json``, which ``uninstall`` puts back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from notmyfault.pipeline.store import Dropped, Limits, Store

PATTERN_ARGS = "%P %p %I %i %s %t %u %g"
"""What the kernel passes: pid and tid in the initial and in the process's own pid namespace,
signal, time, uid, gid."""
FROM_KERNEL = "--from-kernel"
"""The argument that makes ``notmyfault collect`` the handler (cli/entry.py starts it directly)."""
CORE_PATTERN = "/proc/sys/kernel/core_pattern"
PIPE_LIMIT = "/proc/sys/kernel/core_pipe_limit"
SETTINGS = (CORE_PATTERN, PIPE_LIMIT)
"""The kernel settings install changes and uninstall restores."""
CORENAME_MAX = 127
"""The longest core_pattern the kernel keeps (capture.pattern.CORENAME_MAX)."""
CHUNK = 1 << 20
DEFAULT_PIPE_LIMIT = 16
"""core_pipe_limit while installed (systemd's value): the kernel waits for at most this many
handlers at once, keeping each crashing process until its handler ends, and skips the dumps of
crashes past it (a storm costs at most 16 handlers at a time)."""


def default_store() -> str:
    """$NOTMYFAULT_STORE, else /var/lib/notmyfault/crashes for root, else the user's state directory."""
    if env := os.environ.get("NOTMYFAULT_STORE"):
        return env
    if os.geteuid() == 0:
        return "/var/lib/notmyfault/crashes"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "notmyfault", "crashes")


# -- the handler ---------------------------------------------------------------------------------


def _read(path: str, limit: int = 1 << 16) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def process_facts(host_pid: int) -> dict[str, Any]:
    """What /proc says of the crashing process (read while it still exists): executable, command
    line, name, its pid namespace (and whether it is another than ours: a container) and cgroup:
    cheap reads, done before the rate limit decides (see :func:`exe_build_id`)."""
    proc = f"/proc/{host_pid}"
    exe = _link(f"{proc}/exe")
    cmdline = _read(f"{proc}/cmdline")
    comm = _read(f"{proc}/comm")
    ns = _link(f"{proc}/ns/pid")
    cgroup = _read(f"{proc}/cgroup", 4096)
    return {
        "exe": exe.removesuffix(" (deleted)") if exe else None,
        "cmdline": [a.decode(errors="replace") for a in cmdline.split(b"\0")[:-1]] if cmdline else None,
        "comm": comm.decode(errors="replace").rstrip("\n") if comm else None,
        "pid_namespace": ns,
        "other_namespace": ns is not None and ns != _link("/proc/self/ns/pid"),
        "cgroup": cgroup.decode(errors="replace").strip() if cgroup else None,
    }


def exe_build_id(host_pid: int) -> str | None:
    """The build id of the file the process runs (``/proc/PID/exe``: the file itself, even if it was
    deleted or lies in a container's file system). Read only for a crash that is kept."""
    from notmyfault.dumps.buildid import file_build_id

    return file_build_id(f"/proc/{host_pid}/exe")


@dataclass(frozen=True)
class KernelArgs:
    """The arguments core_pattern passes (PATTERN_ARGS)."""

    host_pid: int
    pid: int
    host_tid: int
    tid: int
    signal: int
    time: int
    uid: int
    gid: int

    @classmethod
    def parse(cls, args: list[str]) -> KernelArgs:
        """From the handler's arguments after the store; ValueError if they are not 8 numbers."""
        if len(args) != 8 or not all(a.isdigit() for a in args):
            raise ValueError(f"expected the 8 numbers of {PATTERN_ARGS!r}, got {args!r}")
        return cls(*(int(a) for a in args))


def crash_meta(k: KernelArgs, facts: dict[str, Any]) -> dict[str, Any]:
    """The metadata stored beside a collected core."""
    return {
        "source": "kernel",
        "host": socket.gethostname(),
        "pid": k.pid,
        "host_pid": k.host_pid,
        "tid": k.tid,
        "host_tid": k.host_tid,
        "signal": k.signal,
        "time": dt.datetime.fromtimestamp(k.time, dt.timezone.utc).isoformat(),
        "received_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "uid": k.uid,
        "gid": k.gid,
        **facts,
    }


def compress_into(source: BinaryIO, path: str, max_raw: int) -> tuple[int, int, str]:
    """Stream ``source`` through zstd into a new file ``path``; (raw bytes, stored bytes, SHA-256
    of the stored file). Dropped past ``max_raw`` raw bytes (what was read is left to the caller)."""
    import zstandard

    raw = 0
    digest = hashlib.sha256()

    class _Hashing:
        def __init__(self, f: BinaryIO) -> None:
            self.f = f

        def write(self, data: bytes) -> int:
            digest.update(data)
            return self.f.write(data)

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        writer = zstandard.ZstdCompressor(level=3).stream_writer(_Hashing(out), closefd=False)  # type: ignore[arg-type]
        while chunk := source.read(CHUNK):
            raw += len(chunk)
            if raw > max_raw:
                raise Dropped(f"size: the core is over {max_raw} bytes (the largest read)")
            writer.write(chunk)
        writer.close()  # type: ignore[no-untyped-call]
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    return raw, size, digest.hexdigest()


def from_kernel(argv: list[str], core: BinaryIO | None = None) -> int:
    """Run as the core_pattern handler: ``argv`` is STORE and PATTERN_ARGS' values; the core is
    on ``core`` (standard input). Returns the exit status (the kernel ignores it; failures are
    recorded in the store's dropped.jsonl)."""
    if len(argv) != 9:
        sys.stderr.write(f"notmyfault collect {FROM_KERNEL}: expected STORE and {PATTERN_ARGS}\n")
        return 2
    store = Store(argv[0])
    try:
        k = KernelArgs.parse(argv[1:])
    except ValueError as e:
        sys.stderr.write(f"notmyfault collect {FROM_KERNEL}: {e}\n")
        return 2
    meta = crash_meta(k, process_facts(k.host_pid))
    try:
        store.create()
        limits = store.limits()
        store.admit(meta["exe"] or meta["comm"] or "?", limits.rate, limits.interval)
        with store.locked():
            store.room(0, limits)  # full of unprocessed crashes: drop this one before reading it
        meta["build_id"] = exe_build_id(k.host_pid) if meta["exe"] else None
        with store.begin(k.time) as pending:
            raw, size, digest = compress_into(
                core or sys.stdin.buffer, pending.file("core.zst"), limits.max_raw
            )
            if raw == 0:
                raise Dropped("empty: the kernel sent no core (the process may not be dumpable)")
            meta.update(raw_size=raw, size=size, sha256=digest, packing="zstd")
            pending.commit(meta, "core.zst", limits)
        return 0
    except Dropped as e:
        store.drop(meta, str(e))
        return 0
    except (OSError, ValueError) as e:
        store.drop(meta, f"error: {e}")
        return 1


# -- installation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    """What install or uninstall did."""

    store: str
    pattern: str
    """core_pattern now."""
    previous: dict[str, str]
    """The settings before install (what uninstall restores), by /proc/sys path."""


def pattern_for(executable: str, store: str) -> str:
    """The core_pattern that pipes cores to ``executable collect --from-kernel STORE``; ValueError
    if the kernel would cut it (over 127 characters) or a path has a space (the kernel splits
    the helper's arguments on spaces)."""
    for what, path in (("the notmyfault program", executable), ("the store", store)):
        if any(c.isspace() for c in path) or "%" in path:
            raise ValueError(
                f"{what} {path!r} has a space or '%': core_pattern cannot name it; use another path"
            )
    pattern = f"|{executable} collect {FROM_KERNEL} {store} {PATTERN_ARGS}"
    if len(pattern) > CORENAME_MAX:
        raise ValueError(
            f"the core_pattern would be {len(pattern)} characters, over the kernel's {CORENAME_MAX}:"
            " choose a shorter --store path, or install notmyfault at a shorter path"
        )
    return pattern


def ours(pattern: str) -> str | None:
    """The store a core_pattern of ours pipes to, or None for any other pattern."""
    words = pattern.strip().split()
    if len(words) >= 4 and words[0].startswith("|") and words[1:3] == ["collect", FROM_KERNEL]:
        return words[3]
    return None


def _load(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_setting(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\n")


def _write_setting(path: str, value: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(value + "\n")
    except PermissionError:
        raise PermissionError(
            f"cannot write {path}: run as root (the kernel's dump settings are the machine's)"
        ) from None
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror}") from None


def install(
    store_root: str, executable: str, limits: Limits | None = None, pipe_limit: int = DEFAULT_PIPE_LIMIT
) -> Installed:
    """Make ``executable collect`` the machine's core_pattern handler into the store at
    ``store_root`` (with ``limits`` if given), keeping the previous settings; installing again
    keeps the settings of before the first install. PermissionError unless root; ValueError for
    a path the pattern cannot hold."""
    store = Store(store_root)
    pattern = pattern_for(os.path.abspath(executable), store.root)
    for path in SETTINGS:
        if not os.access(path, os.W_OK):
            raise PermissionError(
                f"cannot write {path}: run as root (the kernel's dump settings are the machine's)"
            )
    current = {path: _read_setting(path) for path in SETTINGS}
    saved = os.path.join(store.root, "installed.json")
    previous = current
    other = ours(current[CORE_PATTERN])
    if other is not None:  # installed already (here or into another store): keep what was before it
        for root in {store.root, other}:
            with contextlib.suppress(OSError, ValueError, KeyError):
                previous = _load(os.path.join(root, "installed.json"))["previous"]
                break
    store.create()
    if limits is not None:
        store.set_limits(limits)
    from notmyfault.base import write_file

    record = {
        "previous": previous,
        "pattern": pattern,
        "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    write_file(saved, json.dumps(record, indent=1) + "\n")
    _write_setting(PIPE_LIMIT, str(pipe_limit))
    _write_setting(CORE_PATTERN, pattern)
    if _read_setting(CORE_PATTERN) != pattern:
        raise OSError(
            f"the kernel did not keep the core_pattern written: it reads {_read_setting(CORE_PATTERN)!r}"
        )
    return Installed(store.root, pattern, previous)


def uninstall(store_root: str | None = None) -> Installed:
    """Put back the settings of before install. The store is the one the current pattern names,
    else ``store_root``; ValueError if neither has a record of an install (nothing to restore)."""
    current = _read_setting(CORE_PATTERN)
    roots = [r for r in (ours(current), store_root) if r]
    for root in roots:
        path = os.path.join(root, "installed.json")
        try:
            record = _load(path)
            previous = {k: str(v) for k, v in record["previous"].items() if k in SETTINGS}
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        if ours(current) is None:
            raise ValueError(
                f"core_pattern is {current!r}, not notmyfault's: it was changed after the install;"
                " left as it is"
            )
        for setting in (CORE_PATTERN, PIPE_LIMIT):
            if setting in previous:
                _write_setting(setting, previous[setting])
        os.replace(path, path + ".restored")
        return Installed(root, _read_setting(CORE_PATTERN), previous)
    if ours(current) is None:
        raise ValueError(f"notmyfault collect is not installed: core_pattern is {current!r}")
    raise ValueError(
        f"core_pattern pipes to notmyfault, but {roots[0]}/installed.json is missing or unreadable:"
        " there is nothing to restore; write the pattern you want to /proc/sys/kernel/core_pattern"
    )


def status(store_root: str) -> dict[str, Any]:
    """The store and the installation at a glance."""
    store = Store(store_root)
    try:
        current = _read_setting(CORE_PATTERN)
    except OSError:
        current = None
    limits = store.limits()
    resolved = None
    with contextlib.suppress(OSError):
        resolved = limits.resolved(store.root)
    dropped = store.dropped()
    return {
        "store": store.root,
        "installed": current is not None and ours(current) == store.root,
        "core_pattern": current,
        "crashes": len(store.ids()),
        "queued": len(store.queued()),
        "dropped": len(dropped),
        "dropped_by_reason": _by_reason(dropped),
        "bytes": store.usage(),
        "limits": {
            **limits.to_dict(),
            **({"max_use": resolved[0], "keep_free": resolved[1]} if resolved else {}),
        },
        "checked_at": time.time(),
    }


def _by_reason(dropped: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dropped:
        kind = str(d.get("dropped", "?")).split(":")[0]
        out[kind] = out.get(kind, 0) + 1
    return out
