"""Leaks in real processes, checked from outside: /proc/PID/status, /proc/meminfo, /proc/sysvipc, the core."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notmyfault.faults.leak import DEFAULT_BLOCK, PAGE
from tests.conftest import run_nmf
from tests.coretools import pool_blocks
from tests.leakutil import LeakProc, meminfo, proc_status, seed_scenario, sysv_rows

MiB = 1024 * 1024
LIMIT = 64_000_000  # 64 MB, as the issue asks: not a multiple of the block, so the last block is cut


def _expected_total(limit: int, block: int = DEFAULT_BLOCK) -> tuple[int, int]:
    full, rest = divmod(limit, block)
    rest -= rest % PAGE
    return full * block + rest, full + (1 if rest else 0)


def test_paged_leak_reaches_limit_and_shows_in_rss() -> None:
    leak = LeakProc("--pool", "paged", "--rate", "1GB", "--stop-at", "64MB", "--hold")
    start = leak.until("start")
    pid = start["pid"]
    limit = leak.until("limit", "error")
    total, blocks = _expected_total(LIMIT)
    assert limit["event"] == "limit"
    assert (limit["leaked"], limit["blocks"]) == (total, blocks)
    assert LIMIT - total < DEFAULT_BLOCK  # stopped at the limit, within one block
    leak.until("holding")
    st = proc_status(pid)
    # the whole leak is resident anonymous memory (a baseline read after "start" would race the leak)
    assert st["RssAnon"] >= total
    assert st["VmLck"] == 0  # paged: nothing locked
    leak.proc.send_signal(signal.SIGTERM)
    assert leak.finish() == 130  # ended by a signal
    assert leak.event("freed")["freed"] == total


def test_nonpaged_leak_locks_and_sigterm_frees() -> None:
    base = meminfo()["Mlocked"]
    leak = LeakProc("--pool", "nonpaged", "--rate", "1GB", "--stop-at", "64MB", "--hold")
    pid = leak.until("start")["pid"]
    limit = leak.until("limit", "error")
    total, _ = _expected_total(LIMIT)
    assert limit["leaked"] == total
    leak.until("holding")
    assert proc_status(pid)["VmLck"] == total  # exactly the leak is locked
    assert meminfo()["Mlocked"] - base >= total * 0.95
    leak.proc.send_signal(signal.SIGTERM)
    assert leak.finish() == 130  # ended by a signal
    assert abs(meminfo()["Mlocked"] - base) < 8 * MiB  # freed, as seen from outside


def test_kernel_leak_grows_sunreclaim_and_queues() -> None:
    base = meminfo()["SUnreclaim"]
    leak = LeakProc("--pool", "kernel", "--rate", "1GB", "--stop-at", "64MB", "--hold", "--tag", "Kt01")
    pid = leak.until("start")["pid"]
    limit = leak.until("limit", "error")
    assert limit["event"] == "limit"
    assert limit["leaked"] == LIMIT  # messages are bytes, not pages: exact
    leak.until("holding")
    ours = [r for r in sysv_rows("msg") if r["lspid"] == pid]
    assert sum(r["cbytes"] for r in ours) == LIMIT
    assert sum(r["qnum"] for r in ours) == limit["blocks"]
    assert proc_status(pid)["VmRSS"] < 64 * MiB  # not the process's own pages
    grown = meminfo()["SUnreclaim"] - base
    assert grown >= LIMIT * 0.9, f"SUnreclaim grew {grown}"
    leak.proc.send_signal(signal.SIGTERM)
    assert leak.finish() == 130  # ended by a signal
    assert [r for r in sysv_rows("msg") if r["lspid"] == pid] == []
    assert meminfo()["SUnreclaim"] - base < LIMIT * 0.2


def test_rate_holds_within_two_percent() -> None:
    """8 MB/s to 40 MB: 5 s by the leak's own clock and by RSS sampled from outside."""
    leak = LeakProc("--pool", "paged", "--rate", "8MB", "--stop-at", "40MB")
    pid = leak.until("start")["pid"]
    t0 = time.monotonic()
    samples: list[tuple[float, int]] = []
    while leak.proc.poll() is None:
        try:
            samples.append((time.monotonic() - t0, proc_status(pid)["VmRSS"]))
        except (FileNotFoundError, ProcessLookupError, KeyError):
            break
        time.sleep(0.1)
    assert leak.finish() == 0
    limit = leak.event("limit")
    assert limit["elapsed_s"] == pytest.approx(5.0, rel=0.02)
    assert limit["rate"] == pytest.approx(8e6, rel=0.02)
    # least-squares slope of RSS over time, between 0.5 s and 4.5 s
    pts = [(t, r) for t, r in samples if 0.5 <= t <= 4.5]
    assert len(pts) >= 20
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mr = sum(r for _, r in pts) / n
    slope = sum((t - mt) * (r - mr) for t, r in pts) / sum((t - mt) ** 2 for t, _ in pts)
    assert slope == pytest.approx(8e6, rel=0.02)


def test_sigterm_stops_at_once_and_frees() -> None:
    leak = LeakProc("--pool", "nonpaged", "--rate", "2MB", "--stop-at", "200MB")
    leak.until("start")
    time.sleep(1.0)
    t = time.monotonic()
    leak.proc.send_signal(signal.SIGTERM)
    assert leak.finish() == 130  # ended by a signal
    assert time.monotonic() - t < 2.0
    stopped = leak.event("stopped")
    assert stopped["stopped"] is True
    assert 1_000_000 <= stopped["leaked"] <= 4_000_000
    assert leak.event("freed")["freed"] == stopped["leaked"]


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_ends_a_hold_leak_while_it_leaks(signo: int) -> None:
    """With --hold, SIGTERM while still leaking stopped the leaking and then held for ever (a futex
    wait until SIGKILL: the handler set a threading.Event whose lock the interrupted wait held); a
    closed terminal (SIGHUP) was not handled at all. Both end it now, the locked memory freed, exit
    130. (Ctrl-C still only stops the leaking: see below.)"""
    leak = LeakProc("--pool", "nonpaged", "--rate", "8MB", "--stop-at", "40MB", "--hold")
    pid = leak.until("start")["pid"]
    time.sleep(1.0)
    assert proc_status(pid)["VmLck"] > 0
    t = time.monotonic()
    leak.proc.send_signal(signo)
    assert leak.finish(timeout=10) == 130
    assert time.monotonic() - t < 2.0  # as test_sigterm_stops_at_once: the exit of a loaded machine
    stopped = leak.event("stopped")
    assert leak.event("freed")["freed"] == stopped["leaked"] > 0
    assert not [e for e in leak.events if e.get("event") == "holding"]


def test_hold_needs_a_second_signal() -> None:
    leak = LeakProc("--pool", "paged", "--rate", "2MB", "--stop-at", "200MB", "--hold")
    leak.until("start")
    time.sleep(0.5)
    leak.proc.send_signal(signal.SIGINT)
    leak.until("holding")
    time.sleep(1.5)
    assert leak.proc.poll() is None  # still holding
    leak.proc.send_signal(signal.SIGINT)
    assert leak.finish() == 130  # ended by a signal
    assert leak.event("freed")["freed"] == leak.event("stopped")["leaked"]


@pytest.mark.parametrize(("pool", "kind", "tag"), [("paged", "shm", "Pp01"), ("kernel", "msg", "Pk01")])
def test_persist_list_and_cleanup(pool: str, kind: str, tag: str) -> None:
    run_nmf("cleanup", "--tag", tag)
    leak = LeakProc(
        "--pool",
        pool,
        "--persist",
        "--rate",
        "1GB",
        "--stop-at",
        "8MiB",
        "--block",
        "1MiB" if pool == "paged" else "4048",
        "--tag",
        tag,
    )
    try:
        pid = leak.until("start")["pid"]
        assert leak.finish() == 0
        assert leak.event("kept")["leaked"] == 8 * MiB
        # the process is gone; the objects stay, as the System V listing shows
        rows = [r for r in sysv_rows(kind) if r["cpid" if kind == "shm" else "lspid"] == pid]
        held_bytes = sum(r["size" if kind == "shm" else "cbytes"] for r in rows)
        assert held_bytes == 8 * MiB
        if kind == "shm":
            assert len(rows) == 8
        if shutil.which("ipcs"):
            listing = subprocess.run(
                ["ipcs", "-m" if kind == "shm" else "-q"], capture_output=True, text=True, check=True
            ).stdout
            assert all(f"0x{r['key']:08x}" in listing for r in rows)
        r = run_nmf("leak", "--list", "--json")
        mine = [x for x in json.loads(r.stdout)["leaks"] if x["tag"] == tag]
        assert len(mine) == 1
        assert mine[0]["bytes"] == 8 * MiB
        assert (mine[0]["pool"], mine[0]["kind"]) == (pool, kind)  # the --pool it was leaked with
        text = run_nmf("leak", "--list").stdout
        assert tag in text
    finally:
        r = run_nmf("cleanup", "--tag", tag, "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["bytes"] == 8 * MiB
    assert [x for x in sysv_rows(kind) if x["cpid" if kind == "shm" else "lspid"] == pid] == []
    assert tag not in run_nmf("leak", "--list").stdout


def test_cleanup_leaves_foreign_objects_alone() -> None:
    """A queue with our key prefix but without our header is not ours: cleanup keeps it."""
    from notmyfault.native import myfault

    key = (0x6D79 << 16) | 0xFFF0
    qid = myfault.msg_queue(key)
    try:
        run_nmf("cleanup")
        assert any(r["msqid"] == qid for r in sysv_rows("msg"))
    finally:
        myfault.ipc_remove("msg", qid)


def test_safety_floor_refuses_oversized_leak() -> None:
    before = meminfo()["Mlocked"]
    r = run_nmf("leak", "--pool", "paged", "--stop-at", "100GB")
    assert r.returncode == 2
    assert "below the safety floor" in r.stderr
    assert "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert abs(meminfo()["Mlocked"] - before) < 8 * MiB


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "fast"], "--rate: cannot read size 'fast'"),
        (["--tag", "TooLong"], "1 to 4 printable ASCII"),
        (["--pool", "kernel", "--block", "64KiB"], "one message of 32 to 8192 bytes"),
        (["--pool", "nonpaged", "--persist"], "locked memory cannot outlive"),
        (["--then-crash", "nope"], "--then-crash: unknown crash type 'nope'"),
        (["--then-crash", "1", "--hold"], "exclude each other"),
        (["--block", "100"], "at least one page"),
    ],
)
def test_leak_bad_input(args: list[str], message: str) -> None:
    r = run_nmf("leak", *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_nonpaged_refused_when_memlock_too_small() -> None:
    def small_memlock() -> None:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 * MiB, 8 * MiB))

    cmd = [
        "setpriv",
        "--bounding-set",
        "-ipc_lock",
        "--inh-caps",
        "-ipc_lock",
        "--",
        sys.executable,
        "-m",
        "notmyfault",
        "leak",
        "--pool",
        "nonpaged",
        "--stop-at",
        "64MB",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=small_memlock, timeout=60, check=False)
    assert r.returncode == 2
    assert "RLIMIT_MEMLOCK is 8.0 MiB (hard)" in r.stderr
    assert "ulimit -l" in r.stderr


def test_then_crash_core_holds_every_tagged_block(dump_dir: Path) -> None:
    """The seed's scenario: nonpaged leak with tag Leak, then high-irql; the core holds the leak."""
    limit, report = seed_scenario(dump_dir)
    assert report["signal_name"] == "SIGSEGV"
    assert report["dump"] is not None
    blocks = [b for b in pool_blocks(report["dump"]["path"]) if b[4] == report["pid"]]
    assert len(blocks) == limit["blocks"]
    assert sum(b[2] for b in blocks) == limit["leaked"]
    assert {b[0] for b in blocks} == {"Leak"}
    assert {b[1] for b in blocks} == {2}  # nonpaged
    assert sorted(b[3] for b in blocks) == list(range(limit["blocks"]))
