"""Deadlock cycles (analysis/deadlock.py) in cores of a real process, taken with ``notmyfault dump``.

Three threads each hold one mutex and wait for the next one's (a cycle of three, which the hang
catalog's two-thread deadlock does not have); a crowd of threads waits on a mutex that the main
thread holds while it sleeps (waiting, but no cycle). The cycle is found whole and in order, the
crowd is not in it, and only the cycle's threads are walked (the wait-for graph is read from
registers and memory first).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notmyfault.analysis import deadlock
from notmyfault.dumps.elfcore import ElfCore
from notmyfault.unwind.elf import Program, load_program, thread_frames
from notmyfault.unwind.frames import Frame
from tests.conftest import run_json, run_nmf

PROGRAM = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ring_locks[3] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
                                        PTHREAD_MUTEX_INITIALIZER};
static pthread_barrier_t all_hold;

static void *ring_member(void *arg)
{
    long i = (long)arg;
    pthread_mutex_lock(&ring_locks[i]);
    pthread_barrier_wait(&all_hold);
    pthread_mutex_lock(&ring_locks[(i + 1) % 3]);
    return NULL;
}

static void *crowd_member(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held);
    return NULL;
}

int main(int argc, char **argv)
{
    int ring = atoi(argv[1]), crowd = atoi(argv[2]);
    pthread_t t;
    pthread_mutex_lock(&held);
    pthread_barrier_init(&all_hold, NULL, 3);
    for (long i = 0; ring && i < 3; i++)
        pthread_create(&t, NULL, ring_member, (void *)i);
    for (int i = 0; i < crowd; i++)
        pthread_create(&t, NULL, crowd_member, NULL);
    printf("%d\n", getpid());
    fflush(stdout);
    for (;;)
        pause();
}
"""
CROWD = 24
FUTEX = 202


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("deadlock")
    (d / "ring.c").write_text(PROGRAM)
    exe = d / "ring"
    subprocess.run(["gcc", "-g", "-O1", "-pthread", "-o", str(exe), str(d / "ring.c")], check=True)
    return exe


def _in_futex(pid: int) -> int:
    """How many of ``pid``'s threads sit in the futex system call."""
    n = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError):  # a thread that ended, a kernel thread
            n += (task / "syscall").read_text().split()[0] == str(FUTEX)
    return n


@pytest.fixture(params=[True, False], ids=["ring", "crowd-only"])
def core(request: pytest.FixtureRequest, program: Path, tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """The core of the program with (or without) its ring, every waiter blocked when it was taken."""
    ring = bool(request.param)
    proc = subprocess.Popen([str(program), str(int(ring)), str(CROWD)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        want = CROWD + (3 if ring else 0)
        deadline = time.monotonic() + 60
        while _in_futex(pid) < want:  # every waiter blocked: no start-up window is assumed
            assert time.monotonic() < deadline, f"only {_in_futex(pid)} of {want} threads blocked"
            time.sleep(0.05)
        out = tmp_path / "core"
        r = run_nmf("dump", str(pid), "-o", str(out))
        assert r.returncode == 0, r.stderr
        yield out, ring
    finally:
        proc.kill()
        proc.wait()


def test_the_cycle_is_found_and_only_its_threads_are_walked(
    core: tuple[Path, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, ring = core
    walked: list[int] = []

    def counted(program: Program, elf: ElfCore, tid: int) -> list[Frame]:
        walked.append(tid)
        return thread_frames(program, elf, tid)

    monkeypatch.setattr(deadlock, "thread_frames", counted)
    with ElfCore(str(path)) as elf:
        cycle = deadlock.find_deadlock(elf, load_program(elf))
    if not ring:
        assert cycle == ()
        assert walked == []  # 24 threads wait, none on a cycle: none is walked
        return
    assert len(cycle) == 3
    assert sorted(walked) == sorted(w.tid for w in cycle)
    for i, w in enumerate(cycle):
        assert w.owner == cycle[(i + 1) % 3].tid  # each waits for the next one's mutex
        assert w.function == "ring_member"
        assert any("pthread_mutex_lock" in (f.function or "") for f in w.stack[:8])
    assert len({w.mutex for w in cycle}) == 3


def test_analyze_tells_the_cycle_and_not_the_crowd(core: tuple[Path, bool]) -> None:
    path, ring = core
    r, a = run_json("analyze", str(path))
    assert r.returncode == 0, r.stderr
    if not ring:
        assert a["deadlock"] == []
        assert a["crash_class"] != "DEADLOCK"
        return
    assert a["crash_class"] == "DEADLOCK"
    cycle = a["deadlock"]
    assert [w["function"] for w in cycle] == ["ring_member"] * 3
    assert [w["owner"] for w in cycle] == [cycle[1]["tid"], cycle[2]["tid"], cycle[0]["tid"]]
    _, stacks = run_json("stack", str(path), "--all", "--native")
    crowd = {t["tid"] for t in stacks["threads"] if any(f["function"] == "crowd_member" for f in t["frames"])}
    assert len(crowd) == CROWD
    assert not crowd & {w["tid"] for w in cycle}
