"""The window (``notmyfault ui``), driven headless with Textual's pilot.

Every fault here is real: the window starts real children, the kernel writes
real dumps, and the Dump Analysis tab shows the analyzer's real result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import resource
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RadioButton, Sparkline, Static, TabbedContent

from notmyfault.capture.config import DumpSettings, KernelDump, assess, probe
from notmyfault.capture.pattern import parse_pattern
from notmyfault.capture.watch import group_members
from notmyfault.dumps import ElfCore, open_dump
from notmyfault.faults.catalog import CATALOG, lookup
from notmyfault.faults.hang import HANGS
from notmyfault.faults.leak import memlock_allows
from notmyfault.memory.pool import pool_usage
from notmyfault.ui.app import NotMyfaultApp
from notmyfault.ui.jobs import ChildJob
from tests.conftest import CORPUS, gone, run_nmf

pytestmark = pytest.mark.usefixtures("cpu_hogs")  # they must hold on a machine at full load

SIZE = (120, 36)
MiB = 2**20


async def until(pilot: Pilot[None], cond: Callable[[], object], timeout: float = 60.0) -> None:
    """Let the window run until ``cond()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting in the window"
        await pilot.pause(0.1)


def text_of(app: NotMyfaultApp, widget_id: str) -> str:
    return str(app.query_one(f"#{widget_id}", Static).render())


def active(app: NotMyfaultApp) -> str:
    return app.query_one("#tabs", TabbedContent).active


def choose(app: NotMyfaultApp, table_id: str, name: str) -> None:
    table = app.query_one(f"#{table_id}", DataTable)
    table.move_cursor(row=table.get_row_index(name))


def run(coro_fn: Callable[[], object]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


def test_every_tab_renders_the_real_machine(dump_dir: Path) -> None:
    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            assert active(app) == "crash"
            catalog = app.query_one("#catalog", DataTable)
            assert catalog.row_count == len(CATALOG)
            assert catalog.get_row("null-deref")[3] == "NULL_POINTER_WRITE"
            assert catalog.get_row("high-irql")[:2] == ["1", "high-irql"]
            await pilot.press("2")
            assert active(app) == "hang"
            assert app.query_one("#hangs", DataTable).row_count == len(HANGS)
            assert app.query_one("#hangs", DataTable).get_row("unkillable")[1] == "D"
            await pilot.press("3")
            assert active(app) == "leak"
            assert "safety floor" in text_of(app, "leak-status")
            await pilot.press("4")
            assert active(app) == "dumpconfig"
            verdict = assess(probe(str(dump_dir)))
            assert text_of(app, "dumpconfig-verdict").startswith(
                f"{verdict.verdict.value}: {verdict.summary}"
            )
            assert str(dump_dir) in text_of(app, "dumpconfig-text")
            assert repr(Path("/proc/sys/kernel/core_pattern").read_text().strip()) in text_of(
                app, "dumpconfig-text"
            )
            await pilot.press("5")
            assert active(app) == "analysis"
            assert "No dump analysed yet" in text_of(app, "analysis-where")
            # the footer offers each tab's own actions only
            await pilot.press("1")
            assert app.check_action("do_bug", ())
            assert not app.check_action("start_leak", ())
            await pilot.press("q")
        assert app.return_code == 0

    run(go)


@pytest.mark.parametrize("name", ["null-deref", "stack-overflow", "signal"])
def test_do_bug_shows_the_analysis_of_a_real_dump(name: str, dump_dir: Path) -> None:
    entry = lookup(name)

    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            choose(app, "catalog", name)
            if name == "signal":
                assert app.query_one("#signo", Input).value == "SIGQUIT"  # the catalog's default
                app.query_one("#signo", Input).value = "CHLD"
                await pilot.press("b")
                assert "SIGCHLD does not end a process by default" in text_of(app, "crash-status")
                assert not app.children_jobs.alive()
                app.query_one("#signo", Input).value = "3"
            if name == "stack-overflow":
                await pilot.click("#crash-bug")  # the button does what b does
            else:
                await pilot.press("b")
            await until(pilot, lambda: app.report is not None)
            assert active(app) == "analysis"
            a = app.report.analysis  # type: ignore[union-attr]
            assert a.crash_class == entry.outcome.crash_class
            assert a.signal == entry.outcome.signal
            if name != "signal":
                assert a.blamed is not None
                assert a.blamed.function == entry.frame
                assert "myfault" in a.probably_caused_by
            assert app.last_run is not None
            assert app.last_run.dump is not None
            path = app.last_run.dump.path
            assert Path(path).is_file()
            assert Path(path).parent == dump_dir
            assert path in text_of(app, "crash-status")
            assert text_of(app, "analysis-where").startswith(f"{path}\n{a.crash_class}; Probably caused by")
            assert f"{a.crash_class} ({entry.outcome.signal.name}" in text_of(app, "text-analyze")
            assert "rip" in text_of(app, "text-trap") or "pc" in text_of(app, "text-trap")
            assert "myfault!" in text_of(app, "text-stack") or name == "signal"
            assert "myfault" in text_of(app, "text-modules")
            assert not app.children_jobs.alive()
            assert gone(app.last_run.child.pid)
            await pilot.press("q")

    run(go)


async def start_leak(
    app: NotMyfaultApp, pilot: Pilot[None], rate: str, stop_at: str, pool: str, tag: str | None = None
) -> None:
    """Fill the Leak tab (Leak/second, stop-at, pool, and tag if given) and press l."""
    await pilot.press("3")
    app.query_one("#leak-rate", Input).value = rate
    app.query_one("#leak-stop", Input).value = stop_at
    if tag is not None:
        app.query_one("#leak-tag", Input).value = tag
    app.query_one(f"#pool-{pool}", RadioButton).value = True
    await pilot.press("l")


def _pool_for(nbytes: int) -> str:
    return "nonpaged" if memlock_allows(nbytes) else "paged"


def test_leak_tab_grows_the_chart_stops_at_its_limit_and_stop_frees(dump_dir: Path) -> None:
    stop_at = 24 * MiB
    pool = _pool_for(stop_at)
    counter = {"nonpaged": "Mlocked", "paged": "AnonPages"}[pool]

    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            await start_leak(app, pilot, "16MiB", "24MiB", pool)
            await until(pilot, lambda: any(e.event == "holding" for e in app.leak_events))
            job = app.leak_job
            assert job is not None
            assert job.pid is not None
            progress = [e.leaked for e in app.leak_events if e.event == "progress"]
            assert len(progress) >= 3  # about 1.5 s at 0.25 s a point
            assert progress == sorted(progress)
            assert progress[0] < stop_at
            limit = next(e for e in app.leak_events if e.event == "limit")
            assert limit.leaked == stop_at
            assert limit.blocks == stop_at // (64 * 1024)
            chart = app.query_one("#leak-chart", Sparkline).data
            assert chart is not None
            assert chart[-1] == stop_at
            assert min(chart) < stop_at
            counters = app.query_one("#counter-chart", Sparkline).data
            assert counters is not None
            assert max(counters) >= 0.9 * stop_at
            assert counter in str(app.query_one("#counter-chart-label").render())
            assert f"leaked {24.0:.1f} MiB" in text_of(app, "leak-status")
            # the memory is really held by the child
            status = Path(f"/proc/{job.pid}/status").read_text()
            field = "VmLck" if pool == "nonpaged" else "RssAnon"
            held = int(next(ln for ln in status.splitlines() if ln.startswith(field)).split()[1]) * 1024
            assert held >= stop_at
            await pilot.press("x")
            await until(pilot, lambda: not job.alive)
            await pilot.pause(0.2)
            freed = [e.freed for e in app.leak_events if e.event == "freed"]
            assert freed == [stop_at]
            assert "the leak ended: freed 24.0 MiB" in text_of(app, "leak-status")
            assert gone(job.pid)
            assert app.report is None  # no crash, no dump
            await pilot.press("q")

    run(go)


def test_leak_refused_in_the_window_says_why(dump_dir: Path) -> None:
    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            app.query_one("#leak-stop", Input).value = "100TB"
            await pilot.press("l")
            assert "below the safety floor" in text_of(app, "leak-status")
            app.query_one("#leak-stop", Input).value = "lots"
            await pilot.press("l")
            assert "lots" in text_of(app, "leak-status")
            assert not app.children_jobs.alive()
            await pilot.press("q")

    run(go)


def test_do_bug_after_a_leak_puts_the_leak_in_the_dump(dump_dir: Path) -> None:
    stop_at = 6 * MiB
    pool = _pool_for(stop_at)

    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            await start_leak(app, pilot, "12MiB", "6MiB", pool, tag="Tui1")
            await until(pilot, lambda: any(e.event == "holding" for e in app.leak_events))
            await pilot.press("b")
            await until(pilot, lambda: app.report is not None)
            a = app.report.analysis  # type: ignore[union-attr]
            assert a.crash_class == lookup("high-irql").outcome.crash_class
            assert a.blamed is not None
            assert a.blamed.function == "myfault_high_irql"
            path = app.report.path  # type: ignore[union-attr]
            with open_dump(path, ElfCore) as core:
                usage = {u.tag: u for u in pool_usage(core)}
            assert usage["Tui1"].bytes == stop_at
            assert usage["Tui1"].blocks == stop_at // (64 * 1024)
            assert usage["Tui1"].pool == pool
            assert "Tui1" in text_of(app, "text-poolused")
            assert str(stop_at) in text_of(app, "text-poolused").replace(",", "")
            # 'Tui1' is not in myfault's module (as 'Leak' is): the search covers the whole dump,
            # where every block's header holds it
            search = app.report.section("search")  # type: ignore[union-attr]
            assert search.command == 's -a (the whole dump) "Tui1"'
            hits = int(search.text.split()[0])
            assert hits >= stop_at // (64 * 1024)
            assert text_of(app, "text-search").startswith(f"{hits} hits\n")
            await pilot.press("q")

    run(go)


async def start_hang(app: NotMyfaultApp, pilot: Pilot[None], name: str) -> ChildJob:
    """Start hang ``name`` from the Hang tab; return its job once the window shows its pid."""
    await pilot.press("2")
    choose(app, "hangs", name)
    await pilot.press("s")
    await until(pilot, lambda: f"hangs ({name}" in text_of(app, "hang-status"))
    job = app.children_jobs.alive("hang")[0]
    assert f"pid {job.pid} hangs" in text_of(app, "hang-status")
    return job


def task_states(pid: int) -> list[str]:
    states = []
    for t in Path(f"/proc/{pid}/task").iterdir():
        stat = (t / "stat").read_text()
        states.append(stat[stat.rindex(")") + 2])
    return states


def test_hang_start_then_crash_it_now_shows_the_deadlock(dump_dir: Path) -> None:
    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            job = await start_hang(app, pilot, "deadlock")
            # both threads hold their first lock (myfault says so, in the window) and sleep on the other
            await until(pilot, lambda: text_of(app, "hang-status").count("takes lock") == 2)
            await until(pilot, lambda: set(task_states(job.pid or 0)) == {"S"})
            await pilot.press("b")
            await until(pilot, lambda: app.report is not None)
            a = app.report.analysis  # type: ignore[union-attr]
            assert a.crash_class == "DEADLOCK"
            assert a.signal_name == "SIGQUIT"
            assert [w.function for w in a.deadlock] == ["myfault_deadlock_a", "myfault_deadlock_b"]
            assert gone(job.pid or 0)
            await pilot.press("q")

    run(go)


def test_hang_stop_kills_the_hang_and_what_it_started(dump_dir: Path) -> None:
    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            job = await start_hang(app, pilot, "unkillable")
            assert job.pid is not None
            await until(pilot, lambda: len(group_members(job.pid or 0)) >= 2)  # the vfork child
            await pilot.press("x")
            await until(pilot, lambda: not job.alive)
            await pilot.pause(0.2)
            assert "stopped: pid" in text_of(app, "hang-status")
            assert group_members(job.pid) == []
            assert app.report is None
            await pilot.press("q")

    run(go)


def test_quit_leaves_no_child_behind(dump_dir: Path) -> None:
    pids: list[int] = []

    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            choose(app, "hangs", "unkillable")
            await pilot.press("s")
            await start_leak(app, pilot, "1MiB", "64MiB", _pool_for(64 * MiB))
            await until(pilot, lambda: len(app.children_jobs.alive()) == 2 and app.leak_events)
            await until(
                pilot, lambda: all(len(group_members(j.pid or 0)) >= 1 for j in app.children_jobs.alive())
            )
            pids.extend(j.pid for j in app.children_jobs.alive() if j.pid is not None)
            await pilot.press("q")
        assert app.return_code == 0

    run(go)
    assert len(pids) == 2
    for pid in pids:
        assert gone(pid)
        assert group_members(pid) == []


def test_ui_opens_an_existing_dump(tmp_path: Path, dump_dir: Path) -> None:
    """notmyfault ui DUMP: the Dump Analysis tab on a core the window did not make (windbg -z FILE)."""
    from tests.coretools import null_write_core

    null_write_core(tmp_path)
    core = str(tmp_path / "core")

    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir), open_path=core)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.report is not None)
            assert active(app) == "analysis"
            a = app.report.analysis  # type: ignore[union-attr]
            assert a.crash_class == "NULL_POINTER_WRITE"
            assert a.blamed is not None
            assert a.blamed.function == "store"
            assert core in text_of(app, "analysis-where")
            assert "nw!store" in text_of(app, "text-stack")
            await pilot.press("q")

    run(go)
    r = run_nmf("ui", str(tmp_path / "nw.c"))
    assert r.returncode == 2  # no terminal: one line, before anything else


FOREIGN = {
    "minidump": (CORPUS / "breakpad-linux_null_read_av" / "linux_null_read_av.dmp", "NULL_POINTER_READ",
                 "null_read_av+0x2170", "is a minidump: it holds no system memory counters"),
    "windows-kernel": (CORPUS / "rizin-dmp-triage_arm64" / "triage_arm64.dmp", None, "ntoskrnl+0x",
                       "Virtual Memory Usage"),
}  # fmt: skip
"""Dumps the window did not make and no ELF core: what the analysis, the stack and !vm show."""


@pytest.mark.shared
@pytest.mark.parametrize("kind", list(FOREIGN))
def test_ui_opens_a_minidump_and_a_windows_kernel_dump(kind: str, dump_dir: Path) -> None:
    """Every dump the analyzer reads, the window reads (windbg -z FILE): each tab shows its
    section, or why this format has none."""
    path, crash_class, frame, vm = FOREIGN[kind]

    async def go() -> None:
        app = NotMyfaultApp(str(dump_dir), open_path=str(path))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.report is not None)
            assert active(app) == "analysis"
            a = app.report.analysis  # type: ignore[union-attr]
            assert a.dump_kind == ("minidump" if kind == "minidump" else "windows-kernel")
            if crash_class:
                assert a.crash_class == crash_class
            assert str(path) in text_of(app, "analysis-where")
            assert frame in text_of(app, "text-stack")
            assert vm in text_of(app, "text-vm")
            assert "Thread" in text_of(app, "text-trap")
            await pilot.press("q")

    run(go)


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["elf-core", *FOREIGN])
def test_ui_dump_in_a_terminal_opens_every_kind(kind: str, tmp_path: Path, dump_dir: Path) -> None:
    """The real command on a pseudo-terminal, 'notmyfault ui DUMP' for an ELF core, a minidump and
    a Windows kernel dump: the window draws the analysis and the blamed frame, and q ends it with exit 0."""
    if kind == "elf-core":
        from tests.coretools import null_write_core

        path, frame = null_write_core(tmp_path), "nw!store"
    else:
        path, frame = FOREIGN[kind][0], FOREIGN[kind][2]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the window on the pty
        os.environ["TERM"] = "xterm-256color"
        os.execv(
            sys.executable, [sys.executable, "-m", "notmyfault", "ui", str(path), "--dump-dir", str(dump_dir)]
        )
    screen = bytearray()
    try:
        deadline = time.monotonic() + 60
        while b"Probably caused by" not in screen:
            assert time.monotonic() < deadline, (
                f"the window did not show the analysis: {bytes(screen[-500:])!r}"
            )
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    screen.extend(os.read(fd, 65536))
                except OSError:
                    break
        os.write(fd, b"q")
        end = time.monotonic() + 15
        while True:
            assert time.monotonic() < end, "q did not end the window"
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            with contextlib.suppress(OSError):
                if select.select([fd], [], [], 0.1)[0]:
                    os.read(fd, 65536)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert frame.encode() in screen  # the dump's own blamed frame, drawn in the window


def test_ui_needs_a_terminal() -> None:
    r = run_nmf("ui")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "notmyfault: error: the window needs a terminal; for scripts use the commands (crash, hang, leak, analyze)"
    )


# -------------------------------------------------------------- snapshots
# The look of each tab, compared with the SVGs kept in tests/__snapshots__/
# (reviewed by eye; 'pytest --snapshot-update' rewrites them after a change
# of look). The machine is fixed here, so that the pictures do not depend on
# this machine's memory or dump settings; the tests above read the real ones.

GiB = 2**30


def _fixed_settings(dump_dir: str | None) -> DumpSettings:
    return DumpSettings(
        core_pattern=parse_pattern("core"),
        core_uses_pid=False,
        core_pipe_limit=0,
        suid_dumpable=0,
        rlimit_core=(0, resource.RLIM_INFINITY),
        can_raise_hard_limit=True,
        coredump_filter=0x33,
        dump_dir="/home/ana/.local/state/notmyfault/dumps",
        dump_dir_writable=True,
        free_bytes=80 * GiB,
        kernel=KernelDump(crash_kernel_loaded=False, crash_kernel_size=0, crashkernel_cmdline=None),
    )


def _fixed_meminfo() -> dict[str, int]:
    return {"MemTotal": 24 * GiB, "MemAvailable": 22 * GiB}


def _snapshot_app() -> NotMyfaultApp:
    return NotMyfaultApp(probe_settings=_fixed_settings, read_meminfo=_fixed_meminfo)


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5"])
def test_tab_snapshot(key: str, snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(_snapshot_app(), press=[key], terminal_size=SIZE)


def _children_of(pid: int) -> list[tuple[int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append((int(entry), cmd))
    return out


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT", "ctrl+c"])
def test_the_window_in_a_terminal_stops_cleanly(how: str, dump_dir: Path) -> None:
    """The real command on a pseudo-terminal: start a hang, then SIGTERM, SIGHUP (the terminal
    closed), SIGINT sent from outside, or Ctrl-C typed: within a second, exit 0, no child is left."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the window on the pty
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "notmyfault", "ui", "--dump-dir", str(dump_dir)])
    screen = bytearray()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    screen.extend(os.read(fd, 65536))
                except OSError:
                    return

    try:
        deadline = time.monotonic() + 30
        while b"Do Bug" not in screen:
            assert time.monotonic() < deadline, "the window did not draw"
            pump(0.2)
        os.write(fd, b"2")
        pump(0.5)
        os.write(fd, b"s")
        hang: list[tuple[int, str]] = []
        while not hang:
            assert time.monotonic() < deadline, "the hang did not start"
            pump(0.2)
            hang = [c for c in _children_of(pid) if "hang spin" in c[1] or "hang deadlock" in c[1]]
        stopped = time.monotonic()
        if how.startswith("SIG"):
            os.kill(pid, signal.Signals[how])
        else:
            os.write(fd, b"\x03")
        while True:
            assert time.monotonic() < stopped + 1.0, "the window did not stop within a second"
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            pump(0.1)
        assert os.waitstatus_to_exitcode(status) == 0
        assert gone(hang[0][0])
        assert group_members(hang[0][0]) == []
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_leak_options_for_the_window_child() -> None:
    r = run_nmf("leak", "--crash-on-usr1", "high-irql", "--stop-at", "1MB")
    assert r.returncode == 2
    assert (
        r.stderr.strip() == "notmyfault: error: --crash-on-usr1 is for the window's leak child (with --child)"
    )
    r = run_nmf("leak", "--interval", "0", "--stop-at", "1MB")
    assert r.returncode == 2
    assert "--interval" in r.stderr
    assert "Traceback" not in r.stderr
