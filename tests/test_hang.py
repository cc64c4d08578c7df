"""Hangs in real child processes: really stuck (from /proc), released cleanly, and dumped where they hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import check_contract, gone, proc_state, run_nmf
from tests.coretools import gdb_threads

CLK_TCK = os.sysconf("SC_CLK_TCK")


_RUNNING: list[HangProc] = []
"""Every hang a test started, killed after it by ``_reap_hangs`` (a failed assertion leaves a spinning
child otherwise, which then starves every test after it)."""


@pytest.fixture(autouse=True)
def _reap_hangs() -> Iterator[None]:
    try:
        yield
    finally:
        while _RUNNING:
            _RUNNING.pop().kill()


class HangProc:
    def __init__(self, *args: str) -> None:
        self.pid = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notmyfault", "hang", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _RUNNING.append(self)
        assert self.proc.stdout is not None
        self.started = json.loads(self.proc.stdout.readline())
        assert self.started["event"] == "started"
        self.pid = self.started["pid"]

    def kill(self) -> None:
        """SIGKILL the command and its hanging child, if they still run (the child only while its
        command line is still ours: its pid may have been reused)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        if self.pid:
            try:
                if b"hang" in Path(f"/proc/{self.pid}/cmdline").read_bytes():
                    os.kill(self.pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass

    def finish(self, timeout: float = 60) -> list[dict]:
        out, err = self.proc.communicate(timeout=timeout)
        assert "Traceback" not in err, err
        check_contract(out, ["hang"])  # every event, by its kind's schema
        check_contract(json.dumps(self.started))
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def _tasks(pid: int) -> dict[int, tuple[str, str, int]]:
    """tid -> (state, wchan, utime+stime ticks)."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        stat = (t / "stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(t.name)] = (fields[0], (t / "wchan").read_text(), int(fields[11]) + int(fields[12]))
    return out


def _wait_for(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_deadlock_threads_block_in_mutex_wait() -> None:
    h = HangProc("deadlock")
    _wait_for(lambda: len(_tasks(h.pid)) == 4)  # main, watchdog, the two deadlocked threads
    time.sleep(0.3)
    tasks = _tasks(h.pid)
    futex = [tid for tid, (state, wchan, _) in tasks.items() if state == "S" and "futex" in wchan]
    assert len(futex) >= 3  # the two deadlocked threads and main in pthread_join
    cpu = {tid: ticks for tid, (_, _, ticks) in tasks.items()}
    time.sleep(0.5)
    assert all(_tasks(h.pid)[tid][2] == cpu[tid] for tid in futex)  # blocked: no CPU
    h.proc.send_signal(signal.SIGTERM)
    events = h.finish()
    assert events[-1]["event"] == "released"
    assert h.proc.returncode == 130  # a stop ends it, as it ends every command
    assert gone(h.pid)


def test_spin_burns_cpu() -> None:
    h = HangProc("spin", "--threads", "1")
    _wait_for(lambda: any(s == "R" for s, _, _ in _tasks(h.pid).values()))
    before = sum(t for _, _, t in _tasks(h.pid).values())
    time.sleep(1.0)
    after = sum(t for _, _, t in _tasks(h.pid).values())
    assert (after - before) / CLK_TCK >= 0.5
    h.proc.send_signal(signal.SIGINT)
    assert h.finish()[-1]["event"] == "released"
    assert gone(h.pid)


def test_unkillable_thread_is_in_d_state() -> None:
    h = HangProc("unkillable")
    _wait_for(lambda: _tasks(h.pid)[h.pid][0] == "D")
    state, wchan, _ = _tasks(h.pid)[h.pid]
    assert state == "D"
    assert wchan in ("kernel_clone", "wait_for_vfork_done", "0")
    # SIGSTOP does not stop a thread in this wait (it stays in D)
    os.kill(h.pid, signal.SIGSTOP)
    time.sleep(0.3)
    assert _tasks(h.pid)[h.pid][0] == "D"
    os.kill(h.pid, signal.SIGCONT)
    h.proc.send_signal(signal.SIGTERM)
    assert h.finish()[-1]["event"] == "released"
    assert gone(h.pid)
    # the vfork child was killed and reaped too: nothing of the hang is left
    leftovers = subprocess.run(
        ["ps", "-eo", "ppid=,pid=,stat="], capture_output=True, text=True, check=True
    ).stdout
    assert not [line for line in leftovers.splitlines() if line.split()[0] == str(h.proc.pid)]


def test_a_sigkilled_d_state_hang_leaves_no_child_holding_the_output() -> None:
    """SIGKILL of the command: its hung child dies, and so does the vfork child (a parent-death
    signal; it also closed its copy of the output): a reader of the output sees its end."""
    h = HangProc("d-state")
    try:
        _wait_for(lambda: _tasks(h.pid)[h.pid][0] == "D")
        vfork_child = next(int(c) for c in Path(f"/proc/{h.pid}/task/{h.pid}/children").read_text().split())
        h.proc.kill()
        h.proc.communicate(timeout=30)  # EOF on both pipes: nobody holds them any more
        _wait_for(lambda: proc_state(h.pid) in (None, "Z") and proc_state(vfork_child) in (None, "Z"), 30)
    finally:
        h.proc.kill()
        h.proc.wait()


@pytest.mark.parametrize(
    ("hang", "functions"),
    [
        ("deadlock", {"myfault_deadlock_a", "myfault_deadlock_b", "myfault_hang_deadlock"}),
        ("spin", {"myfault_spin"}),
        ("unkillable", {"myfault_hang_unkillable"}),
    ],
)
def test_crash_after_dumps_the_hung_threads(hang: str, functions: set[str], dump_dir: Path) -> None:
    args = [hang, "--crash-after", "1", "--dump-dir", str(dump_dir)]
    if hang == "spin":
        args += ["--threads", "1"]
    h = HangProc(*args)
    report = h.finish()[-1]
    assert report["kind"] == "crash"
    assert report["signal_name"] == "SIGABRT"
    assert report["dump"] is not None
    threads = gdb_threads(report["dump"]["path"])
    seen = {name for t in threads for name in t["frames"] if name}
    assert functions <= seen, seen
    watchdog = [t for t in threads if "myfault_watchdog" in t["frames"]]
    assert len(watchdog) == 1
    assert "abort" in " ".join(n or "" for n in watchdog[0]["frames"])
    if hang == "deadlock":
        for fn in ("myfault_deadlock_a", "myfault_deadlock_b"):
            frames = next(t["frames"] for t in threads if fn in t["frames"])
            above = frames[: frames.index(fn)]
            assert any("pthread_mutex_lock" in (n or "") for n in above), frames
    if hang == "unkillable":
        frames = next(t["frames"] for t in threads if "myfault_hang_unkillable" in t["frames"])
        assert "vfork" in (frames[0] or "")
    assert gone(h.pid)


def test_kill_quit_dumps_a_hang(dump_dir: Path) -> None:
    """The printed hint works: kill -QUIT PID leaves a dump, even of the unkillable hang."""
    h = HangProc("unkillable", "--dump-dir", str(dump_dir))
    _wait_for(lambda: _tasks(h.pid)[h.pid][0] == "D")
    assert f"kill -QUIT {h.pid}" in h.started["dump_hint"]
    os.kill(h.pid, signal.SIGQUIT)
    report = h.finish()[-1]
    assert report["signal_name"] == "SIGQUIT"
    assert Path(report["dump"]["path"]).is_file()


def test_realtime_spin_is_sched_fifo(dump_dir: Path) -> None:
    h = HangProc("spin", "--threads", "1", "--realtime", "--crash-after", "1", "--dump-dir", str(dump_dir))
    fifo = []
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline and not fifo:
        try:
            for t in Path(f"/proc/{h.pid}/task").iterdir():
                stat = (t / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[38]) == 1:  # policy: SCHED_FIFO
                    fifo.append(int(t.name))
        except FileNotFoundError:
            break
        time.sleep(0.05)
    events = h.finish()
    if events[-1].get("kind") != "crash":
        pytest.skip("this machine does not allow SCHED_FIFO")
    assert fifo, "no SCHED_FIFO thread seen"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown hang type 'nope'; valid types: deadlock, spin, unkillable, d-state"),
        ([], "give a hang type"),
        (["deadlock", "--threads", "3"], "--threads applies to the spin hang only"),
        (["spin", "--threads", "0"], "0 is not in the range 1<=x<=1024"),
        (["spin", "--crash-after", "0"], "give at least 0.1 s"),
        (["unkillable", "--realtime"], "--realtime applies to the spin hang only"),
    ],
)
def test_hang_bad_input(args: list[str], message: str) -> None:
    r = run_nmf("hang", *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_hang_list() -> None:
    r = run_nmf("hang", "--list")
    assert r.returncode == 0
    for name in ("deadlock", "spin", "unkillable"):
        assert name in r.stdout
    assert run_nmf("hang", "d-state", "--crash-after", "0").returncode == 2
