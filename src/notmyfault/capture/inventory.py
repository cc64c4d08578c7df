"""The crashes a machine kept: what ``coredumpctl list`` and ``/var/crash`` show, and our own dumps.

Four sources, each read as its writer leaves it:

- **systemd-coredump's store** (``/var/lib/systemd/coredump``): files named
  ``core.COMM.UID.BOOT_ID.PID.USEC[.zst|.lz4|.xz]``, with the crash's fields in
  ``user.coredump.*`` extended attributes where the file system keeps them;
- **the journal**: systemd-coredump's entries (MESSAGE_ID
  fc2e22bc6ee647b6b90729ab34a250b1) with their ``COREDUMP_*`` fields, read
  from ``journalctl -o json`` or from such an export; an entry whose core was
  not stored (Storage=none, too large) is listed as not present;
- **apport** (``/var/crash/*.crash``): the report's header fields;
- **notmyfault's dump directory**: the cores our crashes left, read from their
  notes (pid, signal, executable).

A journal entry and the stored file it names are one crash.

Each crash has a stable ID (``KeptCrash.id``), made from when it happened and its pid, so that an
ID names the same crash however many come after it. A core cut short is said to be (``truncated``):
from the core's own headers where it lies uncompressed, from the journal's ``COREDUMP_TRUNCATED``
where systemd-coredump cut it; a compressed stored core is not unpacked to find out (null).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

COREDUMP_MESSAGE_ID = "fc2e22bc6ee647b6b90729ab34a250b1"
SYSTEMD_STORE = "/var/lib/systemd/coredump"
APPORT_DIR = "/var/crash"
_STORE_NAME = re.compile(
    r"^core\.(?P<comm>.+)\.(?P<uid>\d+)\.(?P<boot>[0-9a-f]{32}|[0-9a-f]+)\.(?P<pid>\d+)\.(?P<usec>\d+)(?:\.(?:zst|lz4|xz))?$"
)
_SIGNALS = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
    9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS",
}  # fmt: skip


@dataclass(frozen=True)
class KeptCrash:
    """One crash a machine kept a record of."""

    source: str
    """systemd-coredump, journal, apport or notmyfault."""
    time: float | None
    """When it crashed (seconds since the epoch)."""
    pid: int | None
    uid: int | None
    signal: int | None
    executable: str | None
    path: str | None
    """The dump (a core, a packed core, an apport report); None when none was kept."""
    size: int | None
    """Bytes of that file as stored."""
    present: bool
    """Whether the dump is there to read."""
    note: str | None = None
    """Why no dump is there, when the record says."""
    truncated: bool | None = None
    """Whether the dump is cut short (None: not known, as for a compressed core)."""
    truncation: str | None = None
    """What a cut-short dump is missing, one line."""

    @property
    def id(self) -> str:
        """A stable ID: 8 hex digits of a hash of when the crash happened (to the microsecond) and
        its pid, or of its dump's path when the record lacks either. New crashes never change it;
        a stored core and its journal entry, or the entry alone once the core is gone, share it."""
        if self.time is not None and self.pid is not None:
            key = f"{round(self.time * 1e6)}:{self.pid}"
        else:
            key = f"{self.source}:{self.path or self.executable}:{self.time}"
        return hashlib.sha256(key.encode()).hexdigest()[:8]

    @property
    def signal_name(self) -> str | None:
        """SIGSEGV, ... (Linux numbering)."""
        return None if self.signal is None else _SIGNALS.get(self.signal, f"signal {self.signal}")


def _xattrs(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for name in os.listxattr(path):
            if name.startswith("user.coredump."):
                with contextlib.suppress(OSError):
                    out[name[len("user.coredump.") :]] = os.getxattr(path, name).decode(errors="replace")
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _core_truncation(path: str) -> tuple[bool | None, str | None]:
    """Whether the uncompressed ELF core at ``path`` is cut short, and what it misses (its
    headers say how long it should be); (None, None) for another file or one that cannot be read."""
    from notmyfault.dumps import DumpError, ElfCore, open_dump

    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return None, None
        with open_dump(path, ElfCore) as core:
            return bool(core.truncated), core.truncation
    except (OSError, DumpError):
        return None, None


def systemd_store(directory: str = SYSTEMD_STORE) -> list[KeptCrash]:
    """The cores systemd-coredump stored in ``directory``."""
    out = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(directory)):
            m = _STORE_NAME.match(name)
            path = os.path.join(directory, name)
            if m is None or not os.path.isfile(path):
                continue
            attrs = _xattrs(path)
            usec = _int(attrs.get("timestamp")) or _int(m.group("usec"))
            out.append(
                KeptCrash(
                    "systemd-coredump",
                    usec / 1e6 if usec else None,
                    _int(attrs.get("pid")) or _int(m.group("pid")),
                    _int(attrs.get("uid")) if "uid" in attrs else _int(m.group("uid")),
                    _int(attrs.get("signal")),
                    attrs.get("exe") or m.group("comm"),
                    path,
                    os.path.getsize(path),
                    True,
                    None,
                    *_core_truncation(path),
                )
            )
    return out


def journal_entries(lines: Iterable[str]) -> list[KeptCrash]:
    """systemd-coredump's entries among journal records (``journalctl -o json``: one JSON object a line)."""
    out = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or entry.get("MESSAGE_ID") != COREDUMP_MESSAGE_ID:
            continue
        fields = {k: v for k, v in entry.items() if isinstance(v, str)}  # binary fields come as lists
        field = fields.get

        path = field("COREDUMP_FILENAME")
        present = bool(path and os.path.isfile(path))
        usec = _int(field("COREDUMP_TIMESTAMP")) or _int(field("__REALTIME_TIMESTAMP"))
        cut = field("COREDUMP_TRUNCATED") == "1"
        note = None
        if not present:
            note = "the core was not stored (systemd-coredump's Storage=none, or over its size limits)"
            if path:
                note = f"the stored core {path} is gone (removed, or vacuumed by systemd-tmpfiles)"
        out.append(
            KeptCrash(
                "journal",
                usec / 1e6 if usec else None,
                _int(field("COREDUMP_PID")),
                _int(field("COREDUMP_UID")),
                _int(field("COREDUMP_SIGNAL")),
                field("COREDUMP_EXE") or field("COREDUMP_COMM"),
                path if present else None,
                os.path.getsize(path) if present and path else None,
                present,
                note,
                True if cut else None,
                "systemd-coredump cut the core short (over its ProcessSizeMax or ExternalSizeMax)"
                if cut
                else None,
            )
        )
    return out


def journal_from_journalctl(since: float | None = None) -> list[KeptCrash]:
    """systemd-coredump's entries in this machine's journal ([] where there is no journalctl)."""
    if shutil.which("journalctl") is None:
        return []
    cmd = ["journalctl", "-o", "json", "--no-pager", "-q", f"MESSAGE_ID={COREDUMP_MESSAGE_ID}"]
    if since is not None:
        cmd.append(f"--since=@{int(since)}")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return journal_entries(r.stdout.splitlines()) if r.returncode == 0 else []


def apport_reports(directory: str = APPORT_DIR) -> list[KeptCrash]:
    """The crash reports apport left in ``directory`` (their header fields; the core is not read)."""
    out = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not name.endswith(".crash") or not os.path.isfile(path):
                continue
            fields, has_core = _report_header(path)
            stamp = None
            with contextlib.suppress(ValueError, KeyError):
                stamp = time.mktime(time.strptime(fields["Date"]))
            status = fields.get("ProcStatus", "")
            pid = re.search(r"^Pid:\s*(\d+)", status, re.M)
            uid = re.search(r"^Uid:\s*(\d+)", status, re.M)
            out.append(
                KeptCrash(
                    "apport",
                    stamp or os.path.getmtime(path),
                    int(pid.group(1)) if pid else None,
                    int(uid.group(1)) if uid else None,
                    _int(fields.get("Signal")),
                    fields.get("ExecutablePath"),
                    path,
                    os.path.getsize(path),
                    has_core,
                    None if has_core else "the report holds no core (apport keeps one only for some crashes)",
                )
            )
    return out


def _report_header(path: str) -> tuple[dict[str, str], bool]:
    """The report's header fields (its first 200,000 lines at most) and whether a core follows them."""
    from notmyfault.dumps.unpack import report_header

    with open(path, "rb") as f:
        fields, stop = report_header(itertools.islice(f, 200_001))
    return fields, stop.startswith(b"CoreDump:")


def our_dumps(directory: str) -> list[KeptCrash]:
    """The cores in notmyfault's dump directory, read from their notes."""
    from notmyfault.dumps import DumpError, ElfCore, open_dump

    out = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                continue
            try:
                with open_dump(path, ElfCore) as core:
                    proc, sig = core.process, core.siginfo
                    cursig = core.threads[0].cursig if core.threads else None
                    exe = proc.command if proc else None
                    out.append(
                        KeptCrash(
                            "notmyfault",
                            os.path.getmtime(path),
                            proc.pid if proc else None,
                            proc.uid if proc else None,
                            sig.signo if sig else cursig,
                            exe,
                            path,
                            os.path.getsize(path),
                            True,
                            None,
                            bool(core.truncated),
                            core.truncation,
                        )
                    )
            except DumpError:
                continue
    return out


def inventory(
    store: str = SYSTEMD_STORE,
    crash_dir: str = APPORT_DIR,
    dump_dir: str | None = None,
    journal: Iterable[str] | None = None,
    since: float | None = None,
) -> list[KeptCrash]:
    """Every kept crash, newest first; a journal entry and the stored core it names are one crash
    (the store's record, with the journal's fields where the file had none)."""
    stored = systemd_store(store)
    by_path = {c.path: c for c in stored}
    logged = journal_entries(journal) if journal is not None else journal_from_journalctl(since)
    merged = list(stored)
    for entry in logged:
        twin = by_path.get(entry.path) if entry.path else None
        if twin is not None:
            merged[merged.index(twin)] = KeptCrash(
                twin.source,
                twin.time or entry.time,
                twin.pid or entry.pid,
                twin.uid if twin.uid is not None else entry.uid,
                twin.signal or entry.signal,
                entry.executable or twin.executable,
                twin.path,
                twin.size,
                twin.present,
                None,
                True if twin.truncated or entry.truncated else twin.truncated,
                twin.truncation or entry.truncation,
            )
        else:
            merged.append(entry)
    merged += apport_reports(crash_dir)
    if dump_dir:
        merged += our_dumps(dump_dir)
    if since is not None:
        merged = [c for c in merged if c.time is None or c.time >= since]
    return sorted(merged, key=lambda c: -(c.time or 0))
