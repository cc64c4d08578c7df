"""Stop paths (issue 18, item 1): what notmyfault starts never outlives it.

A watcher killed with SIGKILL (an OOM kill, a 'kill -9', a lost session) used to orphan its child:
a spin hang kept a CPU at 99.7%, a nonpaged leak with --then-crash kept leaking (Mlocked rising).
The children now ask the kernel for a parent-death signal.  (SIGINT, SIGTERM and SIGHUP at every
phase are test_stop_matrix.py's; an ingest stopped and resumed, test_triage.py's kill-resume.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import children, proc_state

pytestmark = pytest.mark.usefixtures("cpu_hogs")  # they must hold on a machine at full load


def _alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z")


@pytest.mark.parametrize(
    "args",
    [
        ("hang", "spin"),
        ("leak", "--pool", "nonpaged", "--rate", "8MB", "--stop-at", "400MB", "--then-crash", "high-irql"),
    ],
    ids=["hang-spin", "leak-then-crash"],
)
def test_children_die_with_a_killed_watcher(args: tuple[str, ...], tmp_path: Path) -> None:
    watcher = subprocess.Popen(
        [sys.executable, "-m", "notmyfault", *args, "--dump-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    kids: list[int] = []
    while time.monotonic() < deadline and not kids:
        kids = children(watcher.pid)
        time.sleep(0.05)
    assert kids, "the watcher started no child"
    time.sleep(1.0)  # the child is at work: spinning, or leaking
    assert all(_alive(k) for k in kids)
    watcher.kill()
    watcher.wait()
    t = time.monotonic()
    while time.monotonic() - t < 5 and any(_alive(k) for k in kids):
        time.sleep(0.02)
    gone_after = time.monotonic() - t
    assert not any(_alive(k) for k in kids), f"{args[0]}'s child outlived its killed watcher"
    assert gone_after < 1.0  # the kernel sends the signal as the watcher dies
    assert not list(tmp_path.glob("core*")), "a child killed with its watcher dumps nothing"


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_during_a_finalizer_is_not_lost(signo: signal.Signals) -> None:
    """SIGTERM or Ctrl-C while a __del__ runs (Popen's, as the collector frees a finished child):
    raised there, Python would print "Exception ignored" with a traceback and drop the stop (a
    command stopped while starting then ran on); the CLI's handlers have it sent again and raised
    once the finalizer is done."""
    script = f"""
import os, signal, sys, time
from notmyfault.base import Stopped
from notmyfault.cli.stops import raise_interrupt, raise_keyboard_interrupt
signal.signal(signal.SIGTERM, raise_interrupt)
signal.signal(signal.SIGINT, raise_keyboard_interrupt)
class Child:
    def __del__(self):
        os.kill(os.getpid(), {int(signo)})
        for _ in range(1000):
            pass
try:
    c = Child()
    del c
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pass
    print("not stopped")
except Stopped as e:
    print("stopped", e.signo)
except KeyboardInterrupt:
    print("stopped", {int(signal.SIGINT)})
"""
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.stdout.strip() == f"stopped {int(signo)}", (r.stdout, r.stderr)
    assert "Exception ignored" not in r.stderr
    assert "Traceback" not in r.stderr
