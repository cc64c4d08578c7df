"""Probe how this machine handles core dumps, and say whether a crash would leave one.

This is NotMyfault's "Dump Configuration" tab for Linux.  :func:`probe` reads
the real settings; :func:`assess` turns settings into a verdict and is pure,
so it is tested on settings this machine does not have.
"""

from __future__ import annotations

import configparser
import glob
import os
import resource
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from notmyfault.base.caps import CAP_SYS_RESOURCE, has_capability
from notmyfault.base.files import user_cache_dir
from notmyfault.capture.pattern import CorePattern, Handler, PatternKind, parse_pattern

PROC_KERNEL = Path("/proc/sys/kernel")

# coredump_filter bits (core(5)).
FILTER_BITS: Mapping[int, str] = {
    0: "anonymous private",
    1: "anonymous shared",
    2: "file-backed private",
    3: "file-backed shared",
    4: "ELF headers",
    5: "private huge pages",
    6: "shared huge pages",
    7: "private DAX pages",
    8: "shared DAX pages",
}
WANTED_FILTER = 0b10011
"""Bits notmyfault sets before a fault: anonymous private and shared memory (so
leaks are in the dump) and ELF headers (so build-ids are)."""

SYSTEMD_COREDUMP_DIR = "/var/lib/systemd/coredump"
APPORT_CORE_DIR = "/var/lib/apport/coredump"
APPORT_REPORT_DIR = "/var/crash"


class Verdict(str, Enum):
    """Whether a crash of this tool would leave a dump."""

    WILL_DUMP = "will-dump"
    MAY_DUMP = "may-dump"
    NO_DUMP = "no-dump"


@dataclass(frozen=True)
class SystemdCoredump:
    """systemd-coredump's settings (coredump.conf and its drop-ins)."""

    storage: str
    """external (files), journal, or none."""
    process_size_max: str
    external_size_max: str
    compress: str
    directory: str
    coredumpctl: str | None
    """Path of coredumpctl, if installed."""


@dataclass(frozen=True)
class KernelDump:
    """Readiness for kernel crash dumps (kdump): not used by user-mode crashes."""

    crash_kernel_loaded: bool | None
    crash_kernel_size: int | None
    crashkernel_cmdline: str | None
    """The crashkernel= option of the running kernel, if given."""

    @property
    def ready(self) -> bool:
        """True if a crash kernel is loaded, so a kernel panic would be dumped."""
        return bool(self.crash_kernel_loaded)


@dataclass(frozen=True)
class DumpSettings:
    """Every setting that decides whether and where a user-mode core dump is written."""

    core_pattern: CorePattern
    core_uses_pid: bool
    core_pipe_limit: int
    suid_dumpable: int | None
    rlimit_core: tuple[int, int]
    """Soft and hard RLIMIT_CORE of this process (resource.RLIM_INFINITY = unlimited)."""
    can_raise_hard_limit: bool
    """True if this process may raise the hard limit (root / CAP_SYS_RESOURCE)."""
    coredump_filter: int | None
    dump_dir: str
    """Where notmyfault asks for dumps (--dump-dir, or the per-user default)."""
    dump_dir_writable: bool
    free_bytes: int | None
    """Free space on the file system that receives the dump."""
    systemd: SystemdCoredump | None = None
    kernel: KernelDump | None = None
    pattern_dir: str | None = None
    """For absolute file patterns: the directory the pattern names."""
    pattern_dir_writable: bool | None = None


@dataclass(frozen=True)
class Assessment:
    """The verdict on a set of settings: will a crash leave a dump, where, and what stops it."""

    verdict: Verdict
    where: str | None
    """Where the dump would go (a directory, a file pattern, or a handler's store)."""
    summary: str
    problems: tuple[str, ...] = field(default=())
    """Each thing that stops or endangers the dump, with what to change."""
    notes: tuple[str, ...] = field(default=())


def state_dir() -> str:
    """notmyfault's per-user state: $XDG_STATE_HOME/notmyfault (~/.local/state/notmyfault)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "notmyfault")


def cache_dir() -> str:
    """notmyfault's per-user cache (what can be fetched or built again): $XDG_CACHE_HOME/notmyfault
    (~/.cache/notmyfault)."""
    return os.path.join(user_cache_dir(), "notmyfault")


def default_dump_dir() -> str:
    """The per-user directory for dumps: $NOTMYFAULT_DUMP_DIR, else $XDG_STATE_HOME/notmyfault/dumps."""
    env = os.environ.get("NOTMYFAULT_DUMP_DIR")
    if env:
        return os.path.abspath(env)
    return os.path.join(state_dir(), "dumps")


def _read(path: Path | str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _read_int(path: Path | str, base: int = 10) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def _writable_dir(path: str, must_exist: bool = False) -> bool:
    """True if ``path`` is (or, unless ``must_exist``, can be created as) a directory
    this process may write in.  The kernel creates no directories for core_pattern,
    so a pattern's directory must exist; notmyfault creates its own dump directory."""
    p = Path(path)
    if must_exist and not p.is_dir():
        return False
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def _free_bytes(path: str) -> int | None:
    p = Path(path)
    while not p.exists() and p.parent != p:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _can_raise_hard_limit() -> bool:
    """True if this process holds CAP_SYS_RESOURCE (root usually does; root in a
    container or under setpriv may not), which raising a hard limit needs."""
    return has_capability(CAP_SYS_RESOURCE, unknown=os.geteuid() == 0)


def read_systemd_coredump(root: str = "/") -> SystemdCoredump:
    """Read systemd-coredump's configuration: coredump.conf, then drop-ins in order."""
    values = {
        "Storage": "external",
        "Compress": "yes",
        "ProcessSizeMax": "2G",
        "ExternalSizeMax": "2G",
    }
    files = [
        os.path.join(root, "usr/lib/systemd/coredump.conf"),
        os.path.join(root, "etc/systemd/coredump.conf"),
    ]
    for d in (
        "usr/lib/systemd/coredump.conf.d",
        "run/systemd/coredump.conf.d",
        "etc/systemd/coredump.conf.d",
    ):
        files.extend(sorted(glob.glob(os.path.join(root, d, "*.conf"))))
    for f in files:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read(f)
        except configparser.Error:
            continue
        if parser.has_section("Coredump"):
            for key in values:
                if parser.has_option("Coredump", key):
                    values[key] = parser.get("Coredump", key).strip()
    return SystemdCoredump(
        storage=values["Storage"],
        process_size_max=values["ProcessSizeMax"],
        external_size_max=values["ExternalSizeMax"],
        compress=values["Compress"],
        directory=SYSTEMD_COREDUMP_DIR,
        coredumpctl=shutil.which("coredumpctl"),
    )


def read_kernel_dump() -> KernelDump:
    """Read kdump readiness: loaded crash kernel, reserved size, crashkernel= option."""
    loaded = _read_int("/sys/kernel/kexec_crash_loaded")
    size = _read_int("/sys/kernel/kexec_crash_size")
    cmdline = _read("/proc/cmdline") or ""
    option = next((w.split("=", 1)[1] for w in cmdline.split() if w.startswith("crashkernel=")), None)
    return KernelDump(
        crash_kernel_loaded=None if loaded is None else bool(loaded),
        crash_kernel_size=size,
        crashkernel_cmdline=option,
    )


def probe(dump_dir: str | None = None) -> DumpSettings:
    """Read this machine's core dump settings, as they apply to this process."""
    pattern = parse_pattern(_read(PROC_KERNEL / "core_pattern") or "")
    dump_dir = os.path.abspath(dump_dir or default_dump_dir())
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    target_dir = dump_dir
    pattern_dir = None
    pattern_dir_writable = None
    if pattern.kind is PatternKind.FILE and not pattern.relative:
        pattern_dir = os.path.dirname(pattern.raw) or "/"
        pattern_dir_writable = _writable_dir(pattern_dir, must_exist=True) and "%" not in pattern_dir
        target_dir = pattern_dir
    systemd = read_systemd_coredump() if pattern.handler is Handler.SYSTEMD_COREDUMP else None
    if systemd is not None:
        target_dir = systemd.directory
    return DumpSettings(
        core_pattern=pattern,
        core_uses_pid=bool(_read_int(PROC_KERNEL / "core_uses_pid")),
        core_pipe_limit=_read_int(PROC_KERNEL / "core_pipe_limit") or 0,
        suid_dumpable=_read_int("/proc/sys/fs/suid_dumpable"),
        rlimit_core=(soft, hard),
        can_raise_hard_limit=_can_raise_hard_limit(),
        coredump_filter=_read_int("/proc/self/coredump_filter", 16),
        dump_dir=dump_dir,
        dump_dir_writable=_writable_dir(dump_dir),
        free_bytes=_free_bytes(target_dir),
        systemd=systemd,
        kernel=read_kernel_dump(),
        pattern_dir=pattern_dir,
        pattern_dir_writable=pattern_dir_writable,
    )


def effective_core_limit(s: DumpSettings) -> int:
    """The RLIMIT_CORE a crash of this tool will have: notmyfault raises the soft
    limit to the hard one, and the hard one to unlimited when it may."""
    _soft, hard = s.rlimit_core
    if s.can_raise_hard_limit:
        return resource.RLIM_INFINITY
    return hard


MIN_USEFUL_CORE = 64 * 1024
"""A core limit below this cuts even a small process's dump to a useless stub."""
CORE_OF_THIS_TOOL = 32 * 1024 * 1024
"""Free space below this cuts a core of this tool short (the Python interpreter with myfault dumps
about 15 MB; a leak's core holds the leak as well)."""


def shared_directory(directory: str) -> str | None:
    """A warning if ``directory`` may be written by other users (group or world write, as /tmp's
    1777): they can read what lands there if they plant a file first, and plant files for us to
    pick up; None if only its owner can write it (or it does not exist yet)."""
    try:
        mode = os.stat(directory).st_mode
    except OSError:
        return None
    if not mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    who = "every user" if mode & stat.S_IWOTH else "its group"
    return (
        f"the dump directory {directory} is writable by {who} (mode {stat.S_IMODE(mode):04o}): "
        "cores hold secrets, and others can plant files there; give a directory only you can write "
        f"(chmod 700 {directory}, or --dump-dir)"
    )


def assess(s: DumpSettings) -> Assessment:
    """Say whether a crash of this tool, with these settings, would leave a dump."""
    p = s.core_pattern
    limit = effective_core_limit(s)
    problems: list[str] = []
    notes: list[str] = []
    if p.kind is PatternKind.DISABLED:
        return Assessment(
            Verdict.NO_DUMP,
            None,
            "core dumps are disabled: kernel.core_pattern is empty",
            (
                "kernel.core_pattern is empty, so the kernel writes nothing; set a pattern as root, "
                "e.g. sysctl -w kernel.core_pattern=core",
            ),
        )
    if p.kind is PatternKind.PIPE and p.handler is Handler.DISCARD:
        return Assessment(
            Verdict.NO_DUMP,
            None,
            f"core dumps are thrown away: kernel.core_pattern pipes them to {p.program}",
            (
                f"kernel.core_pattern is {p.raw!r}, a helper that discards the dump; set a file pattern "
                "as root, e.g. sysctl -w kernel.core_pattern=core, or install systemd-coredump",
            ),
        )
    if p.kind is PatternKind.FILE:
        if limit == 0:
            problems.append(
                "the hard core size limit is 0 and this user may not raise it: run 'ulimit -H -c unlimited' "
                "as root in the parent shell, or set 'hard core unlimited' in /etc/security/limits.conf"
            )
        elif limit != resource.RLIM_INFINITY and limit < MIN_USEFUL_CORE:
            problems.append(
                f"the hard core size limit is {limit} bytes: dumps are cut off there and hardly usable; "
                "raise it with 'ulimit -H -c unlimited' as root"
            )
        if p.relative:
            where = s.dump_dir
            if not s.dump_dir_writable:
                problems.append(
                    f"the dump directory {s.dump_dir} is not writable by this user: give --dump-dir a "
                    "directory you can write"
                )
            if shared := shared_directory(s.dump_dir):
                notes.append(shared)
        else:
            where = p.raw
            if "%" in (os.path.dirname(p.raw)):
                notes.append(
                    "the pattern's directory part holds %-specifiers; the kernel does not create directories"
                )
            elif not s.pattern_dir_writable:
                problems.append(
                    f"core_pattern writes to {s.pattern_dir}, which this user cannot write: the kernel "
                    "writes the dump as the crashing user, so make that directory writable (e.g. mode 1777) "
                    "or set a relative pattern"
                )
            if s.dump_dir != default_dump_dir():
                notes.append(
                    f"core_pattern is an absolute path, so the kernel writes there, not in {s.dump_dir}"
                )
        if s.free_bytes is not None and s.free_bytes < CORE_OF_THIS_TOOL and not problems:
            problems.append(
                f"the filesystem of {where} has {s.free_bytes} bytes free: the kernel would cut a core of "
                f"this tool (about 15 MB, more with a leak) short there; free space or give --dump-dir "
                "another filesystem"
            )
        if s.core_uses_pid and not p.pid_in_pattern:
            notes.append("core_uses_pid=1 appends '.PID' to the file name")
        if problems and limit == 0:
            return Assessment(
                Verdict.NO_DUMP, None, "no dump: the core size limit is 0", tuple(problems), tuple(notes)
            )
        verdict = Verdict.NO_DUMP if problems else Verdict.WILL_DUMP
        summary = (
            f"a crash of this tool would leave a dump at {where}"
            if not problems
            else "no dump: " + problems[0].split(":")[0]
        )
        return Assessment(verdict, where, summary, tuple(problems), tuple(notes))
    if p.kind is PatternKind.SOCKET:
        return Assessment(
            Verdict.MAY_DUMP,
            p.program,
            f"dumps go to the coredump server on socket {p.program}; it decides where they are kept",
            (),
            ("notmyfault cannot fetch dumps from a coredump socket server; ask its tool for them",),
        )
    # PIPE to a real handler
    if limit == 0 and p.handler is Handler.SYSTEMD_COREDUMP:
        problems.append(
            "the hard core size limit is 0 and systemd-coredump honours it ('Resource limits disable core "
            "dumping'): raise it with 'ulimit -H -c unlimited' as root, or DefaultLimitCORE= in system.conf"
        )
    if limit == 1:
        problems.append("the core size limit is 1, which tells the kernel to skip piped dumps: raise it")
    if p.handler is Handler.SYSTEMD_COREDUMP:
        sd = s.systemd
        if sd is not None and sd.storage == "none":
            problems.append(
                "systemd-coredump has Storage=none: it logs the crash and drops the dump; set Storage=external "
                "in /etc/systemd/coredump.conf"
            )
        if sd is not None and sd.coredumpctl is None:
            notes.append(
                "coredumpctl is not installed, so notmyfault cannot fetch the dump: apt-get install systemd-coredump"
            )
        where = (
            sd.directory if sd else SYSTEMD_COREDUMP_DIR
        ) + " (fetched with coredumpctl into the dump directory)"
        if sd is not None and sd.storage == "journal":
            where = "the journal (fetched with coredumpctl into the dump directory)"
        if problems:
            return Assessment(
                Verdict.NO_DUMP, None, "no dump: " + problems[0].split(":")[0], tuple(problems), tuple(notes)
            )
        return Assessment(
            Verdict.WILL_DUMP,
            where,
            f"a crash of this tool would leave a dump with systemd-coredump, in {where}",
            (),
            tuple(notes),
        )
    if p.handler is Handler.APPORT:
        notes.append(
            "apport writes a report to /var/crash only for programs from distribution packages, and keeps "
            f"cores of other programs in {APPORT_CORE_DIR} only when configured to; notmyfault looks in both"
        )
        return Assessment(
            Verdict.MAY_DUMP if not problems else Verdict.NO_DUMP,
            APPORT_CORE_DIR,
            "apport is in charge: it decides whether the dump is kept",
            tuple(problems),
            tuple(notes),
        )
    return Assessment(
        Verdict.MAY_DUMP if not problems else Verdict.NO_DUMP,
        p.program,
        f"dumps are piped to {p.program}; it decides whether and where they are kept",
        tuple(problems),
        ("notmyfault cannot tell where that helper keeps dumps; if it writes files, look there",),
    )


def with_pattern(s: DumpSettings, raw: str) -> DumpSettings:
    """The same settings with another core_pattern (for 'what if' checks and tests)."""
    pattern = parse_pattern(raw)
    pattern_dir = None
    writable = None
    if pattern.kind is PatternKind.FILE and not pattern.relative:
        pattern_dir = os.path.dirname(pattern.raw) or "/"
        writable = _writable_dir(pattern_dir, must_exist=True) and "%" not in pattern_dir
    systemd = s.systemd
    if pattern.handler is Handler.SYSTEMD_COREDUMP and systemd is None:
        systemd = read_systemd_coredump()
    return replace(
        s, core_pattern=pattern, pattern_dir=pattern_dir, pattern_dir_writable=writable, systemd=systemd
    )


def decode_filter(value: int) -> tuple[str, ...]:
    """Name the memory kinds that coredump_filter ``value`` puts in a dump."""
    return tuple(name for bit, name in FILTER_BITS.items() if value & (1 << bit))
