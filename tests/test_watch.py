"""The child watcher: timeouts and interruptions never leave a child behind."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from notmyfault.capture.watch import CrashInterrupted, run_child
from tests.conftest import gone


def test_timeout_kills_and_reaps(tmp_path) -> None:
    t0 = time.monotonic()
    c = run_child([sys.executable, "-c", "import time; time.sleep(60)"], str(tmp_path), timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert c.timed_out
    assert c.signal == signal.SIGKILL
    assert not c.core_dumped
    assert gone(c.pid)


def test_exit_code_and_stderr(tmp_path) -> None:
    c = run_child(
        [sys.executable, "-c", "import sys; sys.stderr.write('myfault: hello\\n'); sys.exit(3)"],
        str(tmp_path),
        timeout=30,
    )
    assert (c.exit_code, c.signal, c.core_dumped, c.timed_out) == (3, None, False, False)
    assert c.stderr == "myfault: hello\n"


def test_interrupt_kills_child(tmp_path) -> None:
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(CrashInterrupted) as info:
        run_child([sys.executable, "-c", "import time; time.sleep(60)"], str(tmp_path), timeout=30)
    pid = int(str(info.value).split("pid ")[1].split(")")[0])
    assert gone(pid)


def test_cli_timeout_reports_no_dump(tmp_path) -> None:
    """A child that does not die within --timeout: killed, reported, exit 1."""
    from notmyfault.capture.config import probe
    from notmyfault.capture.watch import crash_in_child

    run = crash_in_child(
        [sys.executable, "-c", "import time; time.sleep(60)"], probe(str(tmp_path)), "sleeper", timeout=0.5
    )
    assert run.dump is None
    assert run.child.timed_out
    assert "survived" in (run.reason or "")
    assert list(tmp_path.iterdir()) == []  # the staging directory is gone


def test_sigterm_to_parent_kills_child_and_cleans_up(tmp_path) -> None:
    """SIGTERM while the child is still getting ready: exit 130, no child, no staging directory."""
    import subprocess

    dump_dir = tmp_path / "dumps"
    parent = subprocess.Popen(
        [sys.executable, "-m", "notmyfault", "crash", "5", "--ballast", "3GiB", "--dump-dir", str(dump_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children_file = f"/proc/{parent.pid}/task/{parent.pid}/children"
    deadline = time.monotonic() + 30
    child = None
    while time.monotonic() < deadline and child is None:
        kids = Path(children_file).read_text().split()
        child = int(kids[0]) if kids else None
        time.sleep(0.01)
    assert child is not None, "the crashing child never started"
    time.sleep(0.2)  # it is filling 3 GiB of ballast: well before the fault
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=30)
    assert parent.returncode == 130
    assert "interrupted; the child (pid" in err
    assert "Traceback" not in err
    assert gone(child)
    assert list(dump_dir.iterdir()) == []


def test_a_stop_before_the_core_is_filed_keeps_it(tmp_path, monkeypatch) -> None:
    """A stop that comes after the child died and before its core was filed (a window a loaded
    machine hits: the stop matrix's crash-analysing case lost its dump) leaves the core in the dump
    directory, not removed with the staging directory. The stop is made to come there."""
    import resource

    import notmyfault.capture.watch as watch
    from notmyfault.base import Stopped
    from notmyfault.capture.config import probe

    if Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core":
        pytest.skip("needs the plain 'core' pattern")

    def stopped(*_args: object) -> None:
        raise Stopped(15)

    monkeypatch.setattr(watch, "locate", stopped)
    old = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    try:
        with pytest.raises(Stopped):
            watch.crash_in_child(
                [sys.executable, "-c", "import os; os.abort()"], probe(str(tmp_path)), "abort", timeout=60
            )
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, old)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["core.adopted"]
    assert (tmp_path / "core.adopted").read_bytes()[:4] == b"\x7fELF"
