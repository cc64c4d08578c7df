"""notmyfault dump PID: a core of a live process written by our own code, read by gdb, eu-stack and
our analyzer as they read the kernel's core of the same process; its triggers under real load."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import gone, run_json, run_nmf
from tests.coretools import by_thread, gdb_physical_pcs, physical_pcs, unlimited_cores
from tests.test_hang import HangProc, _reap_hangs, _tasks, _wait_for  # noqa: F401 (_reap_hangs: autouse, kills leftovers)

pytestmark = pytest.mark.crash
CORE_PATTERN_IS_CORE = Path("/proc/sys/kernel/core_pattern").read_text().strip() == "core"


def gdb_stacks(core: Path, exe: str) -> dict[int, list[str]]:
    """gdb's ``thread apply all bt``: LWP -> function names, innermost first."""
    r = subprocess.run(
        ["gdb", "-nx", "-batch", "-ex", "thread apply all bt", exe, str(core)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    threads = by_thread(r.stdout, r"Thread \d+ \(.*LWP (\d+)\)\)?:", r"#\d+\s+(?:0x[0-9a-f]+ in )?(\S+)")
    return {tid: [name for (name,) in frames] for tid, frames in threads.items()}


def eu_stacks(core: Path) -> dict[int, list[str]]:
    """eu-stack --core: TID -> function names, innermost first."""
    r = subprocess.run(["eu-stack", f"--core={core}"], capture_output=True, text=True, timeout=120)
    threads = by_thread(r.stdout, r"TID (\d+):", r"#\d+\s+0x[0-9a-f]+\s*(\S*)")
    return {tid: [name or "??" for (name,) in frames] for tid, frames in threads.items()}


def test_a_hung_deadlock_dumped_live_reads_as_the_kernels_core(dump_dir: Path) -> None:
    h = HangProc("deadlock", "--dump-dir", str(dump_dir))
    _wait_for(lambda: sum(s == "S" for s, _, _ in _tasks(h.pid).values()) >= 3)
    before = _tasks(h.pid)
    assert f"notmyfault dump {h.pid}" in h.started["dump_hint"]
    ours = dump_dir / "live.core"
    r, out = run_json("dump", str(h.pid), "-o", str(ours))
    assert r.returncode == 0, r.stderr
    assert (out["schema_version"], out["kind"]) == (4, "live-dumps")
    (d,) = out["dumps"]
    assert abs(d["time"] - time.time()) < 600
    assert dt.datetime.fromisoformat(d["time_iso"]).timestamp() == pytest.approx(d["time"], abs=1e-3)
    assert d["path"] == str(ours)
    assert d["threads"] == len(before) == 4
    assert d["killed"] is False
    assert ours.stat().st_mode & 0o777 == 0o600
    # left running, as it was: the same threads, in the same states, not traced
    assert {t: s for t, (s, _, _) in _tasks(h.pid).items()} == {t: s for t, (s, _, _) in before.items()}
    assert "TracerPid:\t0" in Path(f"/proc/{h.pid}/status").read_text()

    os.kill(h.pid, signal.SIGQUIT)  # the kernel's core of the same process, same moment of the hang
    kernel = Path(h.finish()[-1]["dump"]["path"])
    exe = os.path.realpath(sys.executable)
    ours_gdb, kernel_gdb = gdb_stacks(ours, exe), gdb_stacks(kernel, exe)
    assert set(ours_gdb) == set(before)
    # the watchdog thread took SIGQUIT in pause(): the kernel's core shows it there too, so every
    # thread has the same frames, function for function
    assert ours_gdb == kernel_gdb
    assert "myfault_deadlock_a" in str(ours_gdb)
    assert "myfault_deadlock_b" in str(ours_gdb)

    eu = eu_stacks(ours)
    assert set(eu) == set(before)
    assert eu == eu_stacks(kernel)

    r, a = run_json("analyze", str(ours))
    assert r.returncode == 0, r.stderr
    assert a["crash_class"] == "DEADLOCK"
    assert {w["function"] for w in a["deadlock"]} == {"myfault_deadlock_a", "myfault_deadlock_b"}
    assert {w["tid"] for w in a["deadlock"]} == {w["owner"] for w in a["deadlock"]}
    assert a["signal"]["number"] is None
    assert a["python_caller"]["function"] == "commit_hang"


def test_kill_and_the_live_class(dump_dir: Path) -> None:
    h = HangProc("spin", "--threads", "1")
    _wait_for(lambda: any(s == "R" and ticks > 5 for s, _, ticks in _tasks(h.pid).values()))
    r = run_nmf("dump", str(h.pid), "--kill", "--dump-dir", str(dump_dir))
    assert r.returncode == 0, r.stderr
    assert "the process was killed" in r.stdout
    h.finish()
    assert gone(h.pid)
    (core,) = dump_dir.glob(f"core.dump-live.{h.pid}.*")
    r, a = run_json("analyze", str(core))
    assert a["crash_class"] == "LIVE_DUMP"
    assert a["signal"]["number"] is None
    assert "myfault!myfault_spin" in run_nmf("stack", str(core), "--all").stdout


def test_the_missing_capability_is_named(dump_dir: Path) -> None:
    """Without CAP_SYS_PTRACE, another user's process cannot be dumped: one line naming the capability,
    no file left. (Root with the capability dropped from its bounding set, as in a container.)"""
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop CAP_SYS_PTRACE and run the target as another user")
    target = subprocess.Popen(["sleep", "30"], user=65534, group=65534)
    try:
        r = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", sys.executable, "-m",
             "notmyfault", "dump", str(target.pid), "--dump-dir", str(dump_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert target.poll() is None  # untouched
    finally:
        target.kill()
        target.wait()
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "CAP_SYS_PTRACE" in r.stderr
    assert "it belongs to uid 65534 and this is uid 0" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(dump_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--for", "2s"], "--for says how long --cpu or --mem must hold"),
        (["--cpu", "50", "--on-exit"], "choose one trigger"),
        (["--signal", "KILL"], "cannot catch SIGKILL"),
        (["--signal", "NOPE"], "unknown signal"),
        (["--on-exit", "-n", "2"], "--on-exit takes one dump"),
        (["--every", "1s"], "--every spaces the dumps of -n"),
        (["--mem", "lots"], "cannot read size"),
    ],
)
def test_bad_input(args: list[str], message: str) -> None:
    r = run_nmf("dump", str(os.getpid()), *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_no_such_process() -> None:
    r = run_nmf("dump", "999999999")
    assert r.returncode == 2
    assert r.stderr.strip() == "notmyfault: error: no process 999999999"


def _program(tmp: Path, body: str) -> subprocess.Popen[str]:
    script = tmp / "load.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp, stdout=subprocess.PIPE, text=True, preexec_fn=unlimited_cores
    )


def test_cpu_trigger_waits_for_real_load(tmp_path: Path, dump_dir: Path) -> None:
    """Idle for 1.5 s, then busy: --cpu 60 --for 1s dumps after the load has held a second, not before."""
    p = _program(
        tmp_path,
        """
        import time
        time.sleep(1.5)
        print("busy", time.time(), flush=True)
        while True:
            pass
        """,
    )
    try:
        started = time.time()
        r = run_nmf("dump", str(p.pid), "--cpu", "60", "--for", "1s", "--dump-dir", str(dump_dir), "--json")
        assert r.returncode == 0, r.stderr
        busy = float(p.stdout.readline().split()[1])  # type: ignore[union-attr]
        (d,) = json.loads(r.stdout)["dumps"]
        dumped = time.time() - float(d["seconds"])
        assert d["trigger"] == "cpu"
        assert dumped >= busy + 1.0
        assert dumped - started < 10
        assert "cpu" in d["why"]
        assert re.search(r"cpu (\d+)% \(trigger 60%\); held 1\.\d of 1 s", d["why"])
        assert Path(d["path"]).name.startswith(f"core.dump-cpu.{p.pid}.")
        assert p.poll() is None  # left running
    finally:
        p.kill()
        p.wait()


def test_mem_trigger_and_progress(tmp_path: Path, dump_dir: Path) -> None:
    """A process that grows by 20 MB every 0.2 s is dumped once its RSS reaches 120MB."""
    p = _program(
        tmp_path,
        """
        import time
        blocks = []
        for _ in range(30):
            blocks.append(bytearray(20_000_000))
            time.sleep(0.2)
        time.sleep(60)
        """,
    )
    try:
        r = run_nmf("dump", str(p.pid), "--mem", "120MB", "--dump-dir", str(dump_dir))
        assert r.returncode == 0, r.stderr
        assert re.search(r"notmyfault dump: process \d+: rss [\d.]+ MiB \(trigger 114\.4 MiB\)", r.stderr)
        (core,) = dump_dir.glob(f"core.dump-mem.{p.pid}.*")
        assert core.stat().st_size >= 120_000_000
        rss = int(Path(f"/proc/{p.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        assert rss >= 120_000_000
    finally:
        p.kill()
        p.wait()


def test_signal_trigger_catches_the_fault_before_it_kills(tmp_path: Path, dump_dir: Path) -> None:
    p = _program(
        tmp_path,
        """
        import ctypes, time
        def parse():
            return ctypes.string_at(1, 8)  # CRASH
        time.sleep(1)
        parse()
        """,
    )
    r = run_nmf("dump", str(p.pid), "--signal", "SEGV", "--dump-dir", str(dump_dir), "--json")
    assert r.returncode == 0, r.stderr
    (d,) = json.loads(r.stdout)["dumps"]
    assert d["signal"] == 11
    assert d["trigger"] == "SIGSEGV"
    assert p.wait(timeout=30) == -11  # the signal was given back: it died of it, as it would have
    r, a = run_json("analyze", d["path"])
    assert a["crash_class"] == "NULL_POINTER_READ"
    assert a["signal"]["code_name"] == "SEGV_MAPERR"
    assert a["signal"]["address"] == "0x1"
    assert a["blamed_python"]["function"] == "parse"
    assert a["blamed_python"]["line"] == 4


def test_on_exit_and_n_every(tmp_path: Path, dump_dir: Path) -> None:
    p = _program(
        tmp_path,
        """
        import sys, time
        data = bytearray(b"kept until the end" * 1000)
        time.sleep(2.5)
        sys.exit(3)
        """,
    )
    r = run_nmf("dump", str(p.pid), "-n", "3", "--every", "0.5s", "--dump-dir", str(dump_dir), "--json")
    assert r.returncode == 0, r.stderr
    dumps = json.loads(r.stdout)["dumps"]
    assert [Path(d["path"]).name.rsplit(".", 1)[1] for d in dumps] == ["1", "2", "3"]
    times = [d["time"] for d in dumps]
    assert times == sorted(times)
    r = run_nmf("dump", str(p.pid), "--on-exit", "--dump-dir", str(dump_dir), "--json")
    assert r.returncode == 0, r.stderr
    (d,) = json.loads(r.stdout)["dumps"]
    assert d["trigger"] == "exit"
    assert "exit status 3" in d["why"]
    assert p.wait(timeout=30) == 3
    assert b"kept until the end" * 10 in Path(d["path"]).read_bytes()


def test_a_process_that_exits_while_waited_for(tmp_path: Path, dump_dir: Path) -> None:
    p = _program(tmp_path, "import time; time.sleep(0.5)")
    r = run_nmf("dump", str(p.pid), "--signal", "SEGV", "--dump-dir", str(dump_dir))
    p.wait()
    assert r.returncode == 1
    *waiting, last = r.stderr.strip().splitlines()
    assert last == f"notmyfault: error: process {p.pid} exited without taking SIGSEGV"
    assert all(
        line.startswith(f"notmyfault dump: waiting for SIGSEGV in process {p.pid}") for line in waiting
    )
    assert list(dump_dir.iterdir()) == []


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.parametrize(
    "trigger", [("--cpu", "90"), ("--signal", "SEGV"), ("--on-exit",), ("--mem", "1TB", "-n", "2")]
)
def test_stopped_while_waiting_leaves_the_process_as_it_was(
    trigger: tuple[str, ...], signo: signal.Signals, tmp_path: Path, dump_dir: Path
) -> None:
    """Ctrl-C, SIGTERM or SIGHUP while dump waits for its trigger (under ptrace for --signal and
    --on-exit): exit 130 within a second, no traceback, no file, and the process runs on untraced."""
    target = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"])
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "notmyfault", "dump", str(target.pid), *trigger, "--dump-dir", str(dump_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        status = Path(f"/proc/{target.pid}/status")
        if trigger[0] in ("--signal", "--on-exit"):
            _wait_for(lambda: f"TracerPid:\t{p.pid}\n" in status.read_text())
        else:
            time.sleep(0.8)
        assert p.poll() is None
        t0 = time.monotonic()
        p.send_signal(signo)
        _, err = p.communicate(timeout=15)
        took = time.monotonic() - t0
        assert p.returncode == 130, err
        assert "Traceback" not in err
        assert took < 1.0
        assert "TracerPid:\t0\n" in status.read_text()
        time.sleep(0.1)
        assert _tasks(target.pid)[target.pid][0] in "SR"  # running on, not stopped
        assert list(dump_dir.iterdir()) == []
    finally:
        target.kill()
        target.wait()


def test_a_thread_in_d_state_is_named(dump_dir: Path) -> None:
    """A thread in an uninterruptible wait cannot be stopped by any debugger: dump says so and how
    to get a core instead, within its 3 s limit, and leaves the process as it was."""
    h = HangProc("unkillable")
    _wait_for(lambda: _tasks(h.pid)[h.pid][0] == "D")
    t0 = time.monotonic()
    r = run_nmf("dump", str(h.pid), "--dump-dir", str(dump_dir))
    assert time.monotonic() - t0 < 10
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"thread {h.pid} of process {h.pid} did not stop within 3 s" in r.stderr
    assert "uninterruptible sleep" in r.stderr
    assert "kill -QUIT" in r.stderr
    assert list(dump_dir.iterdir()) == []
    assert "TracerPid:\t0" in Path(f"/proc/{h.pid}/status").read_text()
    assert _tasks(h.pid)[h.pid][0] == "D"
    h.proc.send_signal(signal.SIGTERM)
    assert h.finish()[-1]["event"] == "released"


def test_gdbs_gcore_is_a_live_dump_too(tmp_path: Path) -> None:
    """gdb's gcore records the SIGSTOP it attached with: no process died of it. Its core leaves out
    the read-only mappings of files: the walk still goes through their code, every pc gdb's."""
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        core = tmp_path / "g.core"
        subprocess.run(
            ["gdb", "-nx", "-batch", "-p", str(target.pid), "-ex", f"gcore {core}"],
            capture_output=True,
            timeout=120,
            check=True,
        )
    finally:
        target.kill()
        target.wait()
    r, a = run_json("analyze", str(core))
    assert r.returncode == 0, r.stderr
    assert a["crash_class"] == "LIVE_DUMP"
    assert a["python_caller"]["function"] == "<module>"
    # gcore leaves out the read-only mappings of files, code included: a return address there is
    # still code, and the walk goes on to the end, as gdb's does
    r, s = run_json("stack", str(core))
    assert physical_pcs(s["threads"][0]) == gdb_physical_pcs(core, os.path.realpath(sys.executable))
    assert s["threads"][0]["frames"][-1]["function"] == "_start"
