"""Run a child that will crash, watch it die, and find the dump it left.

The parent learns from the kernel itself whether a core was dumped: waitid()
reports CLD_DUMPED for a death that wrote a core (the WCOREDUMP bit).  The
child is reaped only after that status has been read (WNOWAIT), and waiting
uses a pidfd, so a timeout or Ctrl-C never leaves a child behind.

Where the dump went depends on kernel.core_pattern (see :mod:`.pattern`):

- relative file pattern: the child runs in a fresh staging directory inside
  the dump directory, so the kernel writes there; the core is then moved to a
  unique name in the dump directory (a plain ``core`` pattern would otherwise
  overwrite the previous dump);
- absolute file pattern: the kernel writes where the pattern says; the file is
  found by expanding the pattern with the child's pid, uid, gid and signal;
- systemd-coredump: the dump is fetched with ``coredumpctl dump PID``;
- apport: its core directory is searched for the child's pid;
- anything else: the report says who has the dump, or why there is none.
"""

from __future__ import annotations

import contextlib
import glob
import os
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notmyfault.base.files import reap_stale
from notmyfault.base.lifetime import PARENT_ENV
from notmyfault.base.sigcodes import CORE_SIGNALS, Stopped, signal_name
from notmyfault.capture.config import (
    APPORT_CORE_DIR,
    Assessment,
    DumpSettings,
    assess,
    effective_core_limit,
)
from notmyfault.capture.pattern import CrashFacts, Handler, PatternKind, expand

CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
CHILD_COMM = "notmyfault"
"""The name (comm) the crashing child gives itself; core_pattern's %e expands to it."""
COREDUMPCTL_WAIT = 15.0
"""Seconds to wait for systemd-coredump to register a dump."""


@dataclass(frozen=True)
class ChildExit:
    """How the child ended, as the kernel reported it."""

    pid: int
    signal: int | None
    """The signal that killed it, or None if it exited."""
    exit_code: int | None
    """Its exit code, or None if a signal killed it."""
    core_dumped: bool
    """The kernel's word (CLD_DUMPED): a core was dumped (to a file, a pipe or a socket)."""
    timed_out: bool
    elapsed_s: float
    """Seconds from spawning the child to reaping it."""
    stderr: str
    fault_at_s: float | None = None
    """Seconds from spawning the child to its first 'myfault:' line, said just before
    the fault (None if it said none); elapsed_s - fault_at_s is the time the kernel
    took to kill the process and write its core."""


@dataclass(frozen=True)
class DumpFile:
    """A dump that exists, and how it was found."""

    path: str
    size: int
    """Apparent size in bytes (st_size)."""
    allocated: int
    """Bytes allocated on disk (cores are sparse)."""
    source: str
    """How it was found: 'core_pattern file', 'systemd-coredump', 'apport'."""
    problem: str | None = None
    """Why the dump is not whole (empty, or cut short); None when it is."""


@dataclass(frozen=True)
class CrashRun:
    """Everything the parent knows after a crash in a child."""

    label: str
    child: ChildExit
    dump: DumpFile | None
    reason: str | None
    """Why there is no dump (None when there is one)."""
    assessment: Assessment
    locate_s: float
    notes: tuple[str, ...] = field(default=())

    @property
    def myfault_lines(self) -> tuple[str, ...]:
        """What myfault said on stderr before the fault."""
        return tuple(line for line in self.child.stderr.splitlines() if line.startswith("myfault:"))

    @property
    def other_lines(self) -> tuple[str, ...]:
        """Everything else on the child's stderr (e.g. the C library's abort message)."""
        return tuple(
            line
            for line in self.child.stderr.splitlines()
            if line.strip() and not line.startswith("myfault:")
        )


class CrashInterrupted(Exception):
    """The watch was interrupted (Ctrl-C or SIGTERM); the child was killed and reaped."""


def _wait(
    proc: subprocess.Popen[bytes], timeout: float | None, on_interrupt: str, group: bool
) -> tuple[int, int, bool]:
    """Wait for ``proc`` to exit; return (si_code, si_status, timed_out), reaping it.

    On Ctrl-C (KeyboardInterrupt): with ``on_interrupt="forward"`` the first one
    is passed on to the child as SIGINT (it stops what it does and finishes, e.g.
    a leak that then crashes), and waiting goes on.  Otherwise, at the second
    one, or on SIGTERM / SIGHUP (Stopped: they end everything), the child, and
    its process group when ``group``, is killed and reaped and CrashInterrupted
    is raised.
    """
    fd = os.pidfd_open(proc.pid)
    forwarded = False
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([fd], [], [], left)
                break
            except KeyboardInterrupt as stop:
                if on_interrupt == "forward" and not forwarded and not isinstance(stop, Stopped):
                    forwarded = True  # Ctrl-C: the child stops its work and finishes (a leak crashes)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGINT)
                    continue
                _kill(proc, group)
                raise CrashInterrupted(f"interrupted; the child (pid {proc.pid}) was killed") from None
        timed_out = not ready
        if timed_out:
            _kill(proc, group, reap=False)
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        assert info is not None
        code, status = info.si_code, info.si_status
    finally:
        os.close(fd)
    proc.wait()
    if group:  # whatever the child left in its group (a vfork child)
        _kill_group(proc.pid)
    return code, status, timed_out


PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Make this process inherit its descendants' orphans, so it can reap them."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def group_members(pgid: int) -> list[int]:
    """The pids of the processes in process group ``pgid`` (from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # state, ppid, pgrp
                members.append(int(entry))
    return members


def _kill_group(pgid: int) -> None:
    """Kill process group ``pgid`` and reap its members that became ours.

    The watcher is a child subreaper (see run_child), so what the child
    started (e.g. the unkillable hang's vfork child) is reparented to us when
    the child dies, and is reaped here instead of lingering as a zombie.
    """
    members = [m for m in group_members(pgid) if m != pgid]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for m in members:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(m, 0)


def _kill(proc: subprocess.Popen[bytes], group: bool, reap: bool = True) -> None:
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    if reap:
        proc.wait()
        if group:
            _kill_group(proc.pid)


def run_child(
    argv: Sequence[str],
    cwd: str,
    timeout: float | None,
    env: dict[str, str] | None = None,
    *,
    on_interrupt: str = "kill",
    new_session: bool = False,
    echo_stderr: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_stdout: Callable[[bytes], None] | None = None,
    on_stderr: Callable[[bytes], None] | None = None,
) -> ChildExit:
    """Run ``argv`` in ``cwd``, wait up to ``timeout`` seconds (None: no limit), and say how it ended.

    stderr is collected (the C library writes its abort message there when
    LIBC_FATAL_STDERR_ is set), and with ``echo_stderr`` also copied to ours as
    it comes.  With ``on_stdout`` the child's stdout is read too, and each
    line of it (and with ``on_stderr`` each line of stderr) is given to that
    callback, from a reader thread, as it comes.  ``new_session`` puts the child in a session (and process group)
    of its own, so that the terminal's Ctrl-C reaches only this parent, which
    decides (``on_interrupt``, see :func:`_wait`), and so that killing it kills
    whatever it started.  ``on_start`` is called with the child's pid.  A child
    that is killed because of an interruption is reaped before
    CrashInterrupted is raised.
    """
    if new_session:
        _become_subreaper()
    child_env = dict(os.environ if env is None else env)
    child_env["LIBC_FATAL_STDERR_"] = "1"
    child_env[PARENT_ENV] = str(os.getpid())  # a notmyfault child dies with us (die_with_parent)
    child_env.pop("PYTHONFAULTHANDLER", None)
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=None if on_stdout is None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=new_session,
    )
    chunks: list[bytes] = []
    fault_at: list[float] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in iter(proc.stderr.readline, b""):
            if not fault_at and line.startswith(b"myfault:"):
                fault_at.append(time.monotonic() - start)
            chunks.append(line)
            if echo_stderr:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
            if on_stderr is not None:
                on_stderr(line)

    def pump_stdout() -> None:
        assert proc.stdout is not None
        assert on_stdout is not None
        for line in iter(proc.stdout.readline, b""):
            on_stdout(line)

    readers = [threading.Thread(target=pump, daemon=True)]
    if on_stdout is not None:
        readers.append(threading.Thread(target=pump_stdout, daemon=True))
    for reader in readers:
        reader.start()
    try:
        if on_start is not None:
            on_start(proc.pid)
        code, status, timed_out = _wait(proc, timeout, on_interrupt, new_session)
    except CrashInterrupted:
        raise
    except BaseException:
        _kill(proc, new_session)
        raise CrashInterrupted(f"interrupted; the child (pid {proc.pid}) was killed") from None
    elapsed = time.monotonic() - start
    for reader in readers:
        reader.join(timeout=2.0)
    stderr = b"".join(chunks).decode(errors="replace")
    when = fault_at[0] if fault_at else None
    if code == CLD_EXITED:
        return ChildExit(proc.pid, None, status, False, timed_out, elapsed, stderr, when)
    return ChildExit(proc.pid, status, None, code == CLD_DUMPED, timed_out, elapsed, stderr, when)


def _dump_file(path: str, source: str, settings: DumpSettings) -> DumpFile:
    """The dump at ``path``, checked whole: the kernel leaves a core cut short (and still says it
    dumped one) when the disk fills up or RLIMIT_CORE is reached."""
    st = os.stat(path)
    problem = _problem(path, st.st_size, effective_core_limit(settings))
    return DumpFile(path, st.st_size, st.st_blocks * 512, source, problem)


def _problem(path: str, size: int, core_limit: int) -> str | None:
    """Why the core at ``path`` is not whole, with what may have cut it (``core_limit``: the
    RLIMIT_CORE the crashing child had); None when it is whole."""
    from notmyfault.dumps import DumpError, ElfCore, open_dump

    what: str | None
    if size == 0:
        what = "the core is empty (0 bytes)"
    else:
        try:
            with open_dump(path, ElfCore) as core:
                what = core.truncation
        except DumpError as e:  # too short for even its headers and notes
            what = str(e)
    if what is None:
        return None
    free = shutil.disk_usage(os.path.dirname(path) or ".").free
    limit = "unlimited" if core_limit == resource.RLIM_INFINITY else f"{core_limit} bytes"
    return (
        f"{what}; the disk filled up or RLIMIT_CORE stopped the kernel "
        f"({free} bytes free there now, RLIMIT_CORE {limit}): free space, or raise the limit"
    )


def _unique(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{n}")
        n += 1
    return candidate


def dump_name(label: str, pid: int) -> str:
    """The file name notmyfault gives a dump it files away: core.LABEL.PID.YYYYmmdd-HHMMSS."""
    return f"core.{label}.{pid}.{time.strftime('%Y%m%d-%H%M%S')}"


def crash_facts(pid: int, signo: int | None) -> CrashFacts:
    """What is known about a crashing notmyfault process of this user before its dump exists."""
    return CrashFacts(
        pid=pid,
        tid=None,
        uid=os.getuid(),
        gid=os.getgid(),
        signal=signo,
        comm=CHILD_COMM,
        hostname=socket.gethostname(),
    )


def expected_dump_glob(settings: DumpSettings, facts: CrashFacts, workdir: str) -> str | None:
    """The glob that the dump file of a crash with ``facts`` will match (None unless a file pattern).

    A relative pattern is taken from ``workdir``, the crashing process's working directory.
    """
    p = settings.core_pattern
    if p.kind is not PatternKind.FILE:
        return None
    name = expand(p, facts, settings.core_uses_pid, as_glob=True)
    return os.path.join(glob.escape(workdir), name) if p.relative else name


def _no_core_reason(child: ChildExit, settings: DumpSettings, verdict: Assessment) -> str:
    if child.timed_out:
        return "the child survived the fault for its whole time limit and was killed; no dump was asked for"
    if child.signal is None:
        return f"the child exited with code {child.exit_code} instead of crashing, so there is no dump"
    name = signal_name(child.signal)
    if child.signal not in CORE_SIGNALS:
        return (
            f"{name}'s default action is to terminate without a core dump, so the kernel wrote none; "
            "use a core-dumping signal (SIGQUIT, SIGABRT, SIGSEGV ...) for a dump"
        )
    if verdict.problems:
        return "the kernel wrote no dump: " + verdict.problems[0]
    p = settings.core_pattern
    return (
        f"the kernel wrote no dump although {name} dumps core and the settings allow it "
        f"(core_pattern {p.raw!r}); look at the kernel log (dmesg) for a coredump message: "
        "the target file may exist and belong to another user, the file system may be full or "
        "read-only, or the process may not have been dumpable"
    )


def _coredumpctl(pid: int, out: Path, deadline: float) -> str | None:
    """Fetch the dump of ``pid`` from systemd-coredump into ``out``; return an error or None."""
    exe = shutil.which("coredumpctl")
    if exe is None:
        return "systemd-coredump took the dump, but coredumpctl is not installed to fetch it (apt-get install systemd-coredump)"
    last = ""
    while time.monotonic() < deadline:
        r = subprocess.run(
            [exe, "--no-pager", "dump", str(pid), "--output", str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode == 0 and out.exists() and out.stat().st_size > 0:
            return None
        said = (r.stderr or r.stdout).strip()
        last = said.splitlines()[-1] if said else ""
        time.sleep(0.25)
    return f"systemd-coredump did not give up the dump of pid {pid} in time: {last or 'no answer'}"


def locate(
    child: ChildExit, settings: DumpSettings, staging: str, label: str, start_time: float
) -> tuple[DumpFile | None, str | None, tuple[str, ...]]:
    """Find the dump ``child`` left, file it into the dump directory where that is ours to do.

    Returns (dump, reason when there is none, notes).
    """
    verdict = assess(settings)
    if not child.core_dumped:
        return None, _no_core_reason(child, settings, verdict), ()
    p = settings.core_pattern
    notes: list[str] = []
    dump_dir = Path(settings.dump_dir)
    name_glob = expected_dump_glob(settings, crash_facts(child.pid, child.signal), staging)
    if name_glob is not None:
        matches = sorted(
            (m for m in glob.glob(name_glob) if os.path.isfile(m)),
            key=lambda m: os.stat(m).st_mtime,
        )
        if not p.relative:
            matches = [m for m in matches if os.stat(m).st_mtime >= start_time - 1]
        if not matches:
            return None, f"the kernel says a core was dumped, but no file matches {name_glob!r}", ()
        found = matches[-1]
        if p.relative:
            final = _unique(dump_dir / dump_name(label, child.pid))
            os.replace(found, final)
            return _dump_file(str(final), "core_pattern file", settings), None, ()
        notes.append("core_pattern is absolute, so the dump stays where the kernel wrote it")
        return _dump_file(found, "core_pattern file", settings), None, tuple(notes)
    if p.handler is Handler.SYSTEMD_COREDUMP:
        dump_dir.mkdir(parents=True, exist_ok=True)
        final = _unique(dump_dir / dump_name(label, child.pid))
        err = _coredumpctl(child.pid, final, time.monotonic() + COREDUMPCTL_WAIT)
        if err:
            return None, err, ()
        return _dump_file(str(final), "systemd-coredump", settings), None, ("fetched with coredumpctl dump",)
    if p.handler is Handler.APPORT:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            hits = [
                h
                for h in glob.glob(os.path.join(APPORT_CORE_DIR, f"core.*.{child.pid}.*"))
                if os.path.isfile(h)
            ]
            if hits:
                return _dump_file(hits[-1], "apport", settings), None, ()
            time.sleep(0.25)
        return (
            None,
            (
                f"apport took the dump and kept no core for pid {child.pid} in {APPORT_CORE_DIR}; "
                "apport keeps cores of non-packaged programs only when configured to "
                "(or set a file core_pattern as root: sysctl -w kernel.core_pattern=core)"
            ),
            (),
        )
    return (
        None,
        (
            f"the kernel handed the dump to {p.program!r} ({p.raw!r}); notmyfault cannot tell where "
            "that helper keeps it"
        ),
        (),
    )


def crash_in_child(
    argv: Sequence[str],
    settings: DumpSettings,
    label: str,
    timeout: float | None = 120.0,
    **child_options: Any,
) -> CrashRun:
    """Run a child that will crash, and report how it died and where its dump is.

    The child runs in a fresh staging directory inside the dump directory, so
    a relative core_pattern writes there; the staging directory is removed
    afterwards whatever happens.  ``child_options`` go to :func:`run_child`.
    """
    verdict = assess(settings)
    dump_dir = Path(settings.dump_dir)
    dump_dir.mkdir(parents=True, exist_ok=True)
    adopted = adopt_orphans(dump_dir)
    reap_stale(str(dump_dir))  # a dump PID killed while it wrote here left its temporary core
    staging = tempfile.mkdtemp(prefix=f"{STAGING}{os.getpid()}-", dir=dump_dir)
    start_time = time.time()
    try:
        child = run_child(argv, staging, timeout, **child_options)
        t0 = time.monotonic()
        dump, reason, notes = locate(child, settings, staging, label, start_time)
        locate_s = time.monotonic() - t0
    finally:
        if _keep_cores(Path(staging), dump_dir):
            shutil.rmtree(staging, ignore_errors=True)
    return CrashRun(label, child, dump, reason, verdict, locate_s, tuple(adopted) + notes)


def _keep_cores(staging: Path, dump_dir: Path) -> bool:
    """Move the cores still in ``staging`` into ``dump_dir`` (as ``NAME.adopted``) before it is
    removed: a stop that comes after the child died and before its core was filed must not take the
    dump with it (after a filed core there is none left). False if one could not be moved: the
    directory then stays, for the next run to adopt (``adopt_orphans``)."""
    try:
        for f in sorted(staging.iterdir()):
            if _our_core(f):
                os.replace(f, _unique(dump_dir / f"{f.name}.adopted"))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


STAGING = ".incoming-"
"""The start of a staging directory's name: .incoming-PID-XXXXXXXX, PID the run that made it."""
ORPHAN_AGE = 600.0
"""A staging directory without a pid in its name (made by an older version) is an orphan after this."""


def _staging_owner(name: str) -> int | None:
    """The pid in a staging directory's name, if it has one."""
    head = name[len(STAGING) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_use(directory: Path) -> bool:
    """True if some process (that this user may see) works in ``directory``."""
    real = os.path.realpath(directory)
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        with contextlib.suppress(OSError):
            if os.readlink(cwd) == real:
                return True
    return False


def _our_core(f: Path) -> bool:
    """True if ``f`` is a regular file of this user that is an ELF core (what the kernel writes for
    a relative core_pattern): only such a file is adopted, never a link or something put there."""
    try:
        st = f.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size < 64:
            return False
        with open(f, "rb") as fh:
            head = fh.read(18)
    except OSError:
        return False
    return head[:4] == b"\x7fELF" and int.from_bytes(head[16:18], "little" if head[5] == 1 else "big") == 4


def adopt_orphans(dump_dir: Path) -> list[str]:
    """Move the cores that interrupted runs left in their staging directories into ``dump_dir``
    (a run killed with SIGKILL, or whose machine lost power, never moved its child's core out of
    .incoming-*), remove those directories, and say what was done, one line each."""
    said: list[str] = []
    for d in sorted(dump_dir.glob(f"{STAGING}*")):
        try:
            if not d.is_dir() or d.is_symlink():
                continue
            if (uid := d.lstat().st_uid) != os.geteuid():  # another user's, in a shared (1777) directory
                said.append(f"left {d.name} alone: it belongs to uid {uid}, not to this user")
                continue
            owner = _staging_owner(d.name)
            if owner is not None and (owner == os.getpid() or _alive(owner)):
                continue  # a run that is still going
            if owner is None and time.time() - d.stat().st_mtime < ORPHAN_AGE:
                continue
            if _in_use(d):
                continue  # the orphaned child still runs there (a hang), or the kernel writes its core
            for f in sorted(d.iterdir()):
                if not _our_core(f):
                    continue
                final = _unique(dump_dir / f"{f.name}.adopted")
                os.replace(f, final)
                said.append(
                    f"adopted {final} ({final.stat().st_size} bytes): a core an interrupted run left in {d.name}"
                )
            shutil.rmtree(d)
            said.append(f"removed {d.name}, the staging directory of an interrupted run")
        except OSError as e:
            said.append(f"could not clear {d} (left by an interrupted run): {e.strerror}")
    return said
