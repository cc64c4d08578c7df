"""Stop paths (issue 18, item 1): what notmyfault starts never outlives it.

A watcher killed with SIGKILL (an OOM kill, a 'kill -9', a lost session) used to orphan its child:
a spin hang kept a CPU at 99.7%, a nonpaged leak with --then-crash kept leaking (Mlocked rising).
The children now ask the kernel for a parent-death signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import children, proc_state


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


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_hang_watcher_stops_on_each_signal_and_takes_its_child(
    signo: signal.Signals, tmp_path: Path
) -> None:
    """One pattern for the whole CLI (cli/common.interruptible): Ctrl-C, SIGTERM and SIGHUP (a
    closed terminal: it was handled nowhere) stop the watcher the same way, and its child goes."""
    watcher = subprocess.Popen(
        [sys.executable, "-m", "notmyfault", "hang", "spin", "--dump-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    kids: list[int] = []
    while time.monotonic() < deadline and not kids:
        kids = children(watcher.pid)
        time.sleep(0.05)
    time.sleep(1.0)
    t = time.monotonic()
    watcher.send_signal(signo)
    _, err = watcher.communicate(timeout=10)
    assert time.monotonic() - t < 2.0
    assert watcher.returncode == 0, err  # a hang's normal end: released
    assert "Traceback" not in err
    assert not any(_alive(k) for k in kids)


def test_triage_ingest_stops_on_sighup_and_keeps_what_it_stored(tmp_path: Path) -> None:
    """A dropped ssh session ends an ingest like Ctrl-C: what was stored stays, exit 130, and the
    same command again does exactly the rest."""
    r = subprocess.run(
        [sys.executable, "-m", "notmyfault", "crash", "abort", "--dump-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    core = Path(json.loads(r.stdout)["dump"]["path"]).read_bytes()  # the interpreter's: ~15 MB
    dumps = []
    for i in range(24):  # distinct dumps (one more byte each): several seconds of work for one worker
        p = tmp_path / "fleet" / f"core.{i}"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(core + bytes(i + 1))
        dumps.append(str(p))
    db = tmp_path / "t.db"
    ingest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notmyfault",
            "triage",
            "ingest",
            "--json",
            "--workers",
            "1",
            "--db",
            str(db),
            *dumps,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not db.exists():
        time.sleep(0.05)
    time.sleep(2.0)  # some are stored
    ingest.send_signal(signal.SIGHUP)
    out, err = ingest.communicate(timeout=30)
    assert ingest.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert 0 < summary["stored"] < len(dumps)
    r = subprocess.run(
        [sys.executable, "-m", "notmyfault", "triage", "ingest", "--json", "--db", str(db), *dumps],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    again = json.loads(r.stdout)
    assert again["already_stored"] == summary["stored"]
    assert again["stored"] == len(dumps) - summary["stored"]
