"""Fleet triage on a fleet of real dumps: the crash catalog three times over and seven C bugs 28 times
each (tests/build_crashers.py), plus a truncated core. Every dump of a bug must land in its bug's
bucket, with exact counts, on SQLite, on a real PostgreSQL server and on a Dask cluster alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from notmyfault.analysis.signature import DEFAULT_RULES, failure_kind
from notmyfault.triage.db import COLUMNS, MIGRATIONS, Database
from notmyfault.triage.record import ANALYSIS_VERSION
from tests.build_crashers import BUGS, build, crash_all
from tests.build_crashers import CATALOG_BUCKETS as CATALOG
from tests.conftest import children, fresh_database, proc_state, run_json, run_nmf, session

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
RUNS = 28
CATALOG_RUNS = 3


class Fleet:
    """The dumps, and the bucket each one must land in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.expected: dict[str, str] = {}
        """Path to bucket."""
        self.bad: Path = root / "bad"

    @property
    def buckets(self) -> Counter[str]:
        return Counter(self.expected.values())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("fleet")
    f = Fleet(root)
    for bug, cores in crash_all(build(root / "build"), root / "crashers", RUNS).items():
        cls, sig = BUGS[bug]
        f.expected.update({str(c): f"{failure_kind(cls)}:crashers:{sig}" for c in cores})
    catalog = root / "catalog"
    for _ in range(CATALOG_RUNS):
        for kind, bucket in CATALOG.items():
            r, report = run_json("crash", kind, "--dump-dir", str(catalog))
            assert report["dump"] is not None, (kind, r.stderr)
            f.expected[report["dump"]["path"]] = bucket
    f.bad.mkdir()
    good = next(p for p, b in f.expected.items() if b.startswith("FAULT:python3:myfault_null_deref"))
    (f.bad / "core.truncated").write_bytes(Path(good).read_bytes()[:3000])
    return f


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on our PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "triage.db")
    name = "t_" + re.sub(r"\W", "_", request.node.name.split("[")[0])[-40:]
    return fresh_database(request.getfixturevalue("postgres"), name)


def _table(db_url: str) -> list[tuple[str, str, str]]:
    """(path, status, bucket or error) of every row, by path."""
    with Database(db_url) as db:
        rows = db.execute("SELECT path, status, COALESCE(bucket, error) FROM dumps ORDER BY path")
    return [(str(p), str(s), str(b)) for p, s, b in rows]


def _check(fleet: Fleet, db_url: str) -> None:
    """Every dump in its bug's bucket, exact counts; the truncated core failed, with its reason."""
    table = _table(db_url)
    ok = {p: b for p, s, b in table if s == "ok"}
    assert ok == fleet.expected
    failed = [(p, b) for p, s, b in table if s == "failed"]
    assert [p for p, _ in failed] == [str(fleet.bad / "core.truncated")]
    assert "truncated" in failed[0][1]
    with Database(db_url) as db:  # analyze's BUCKET_ID, on the page stored with each dump, is its bucket
        pages = db.execute("SELECT bucket, analysis_text FROM dumps WHERE status = 'ok'")
    printed = [re.search(r"^BUCKET_ID: (.*)$", text, re.M) for _, text in pages]
    assert [m.group(1) if m else None for m in printed] == [bucket for bucket, _ in pages]
    _, out = run_json("triage", "buckets", "--db", db_url)
    assert {b["bucket"]: b["count"] for b in out["buckets"]} == dict(fleet.buckets)
    assert len(out["buckets"]) == len(BUGS) - 1 + len(CATALOG)  # parse_header's read and write: one bucket
    assert out["failed"] == 1


def _ingest(db_url: str, *paths: str, workers: int = 2, extra: tuple[str, ...] = ()) -> dict[str, object]:
    r, out = run_json(
        "triage", "ingest", "-r", "--workers", str(workers), "--db", db_url, *extra, *paths, timeout=600
    )
    assert r.returncode == 0, r.stderr
    return out


def test_every_bug_lands_in_its_own_bucket_and_a_rerun_skips_everything(fleet: Fleet, database: str) -> None:
    db = database
    first = _ingest(db, str(fleet.root))
    assert (first["found"], first["analysed"], first["failed"]) == (
        len(fleet.expected) + 1,
        len(fleet.expected) + 1,
        1,
    )
    _check(fleet, db)
    again = _ingest(db, str(fleet.root))
    assert (again["already_stored"], again["analysed"], again["stored"]) == (len(fleet.expected) + 1, 0, 0)
    _check(fleet, db)
    bucket = run_json("triage", "buckets", "--db", db, "--top", "1")[1]["buckets"][0]
    _, members = run_json("triage", "show", bucket["id"], "--db", db)
    assert len(members["dumps"]) == bucket["count"] == 2 * RUNS  # parse_header: its read and its write
    assert all(fleet.expected[m["path"]] == bucket["bucket"] for m in members["dumps"])
    none = run_nmf("triage", "show", "truncated", "--db", db)  # an empty list still says so
    assert (none.returncode, none.stdout) == (0, "no truncated dumps: every stored dump is whole\n")
    assert run_json("triage", "show", "truncated", "--db", db)[1]["dumps"] == []
    one = run_nmf("triage", "show", "failed", "--db", db).stdout.splitlines()
    assert [line.split(":")[0] for line in one] == [str(fleet.bad / "core.truncated")]


def test_copies_of_a_dump_are_analysed_once_whatever_the_workers(fleet: Fleet, tmp_path: Path) -> None:
    """Files are told apart by their content's hash (taken on as many threads as workers): two
    copies of one dump beside another dump are two dumps to analyse, one duplicate."""
    one, other = sorted(fleet.expected)[:2]
    d = tmp_path / "copies"
    d.mkdir()
    for name, source in (("a.core", one), ("b.core", one), ("c.core", other)):
        shutil.copyfile(source, d / name)
    for workers in (1, 2):
        out = _ingest(str(tmp_path / f"t{workers}.db"), str(d), workers=workers)
        assert (out["found"], out["duplicates"], out["analysed"]) == (3, 1, 2)
        table = _table(str(tmp_path / f"t{workers}.db"))
        assert [p for p, _, _ in table] == [str(d / "a.core"), str(d / "c.core")]  # the first name of each


def _build_id(path: Path) -> str:
    """The GNU build-id of an ELF file, read with pyelftools (not with notmyfault)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        for note in ELFFile(f).get_section_by_name(".note.gnu.build-id").iter_notes():
            return str(note["n_desc"])
    raise AssertionError(f"{path} has no build-id")


def test_filters_breakdowns_and_analyze_agree(fleet: Fleet, database: str) -> None:
    """Buckets split by executable, build id and host; --exe, --build-id, --since and --search narrow
    them (on SQLite and PostgreSQL alike); analyze's BUCKET_ID is the bucket triage stored."""
    db = database
    runs = 4  # of each C bug: enough to count, and a quarter of the fleet's time
    some = sorted(
        str(d) for d in (fleet.root / "crashers").iterdir() if int(d.name.rsplit("-", 1)[1]) <= runs
    )
    _ingest(db, *some, extra=("--host", "alpha"))
    _ingest(db, str(fleet.root / "catalog"), extra=("--host", "beta"))
    exe = fleet.root / "build" / "bin" / "crashers"
    build_id = _build_id(exe)
    _, out = run_json("triage", "buckets", "--db", db)
    total = sum(b["count"] for b in out["buckets"])
    assert out["total"] == total == len(BUGS) * runs + len(CATALOG) * CATALOG_RUNS
    for i, b in enumerate(out["buckets"]):
        assert b["share"] == round(b["count"] / total, 4)
        assert b["trend"] == {"last_7_days": b["count"], "previous_7_days": 0}  # all made just now
        if b["program"] == "crashers":
            n = 2 * runs if b["signature"] == "parse_header" else runs  # its read and its write bugs
            assert b["breakdown"]["host"] == {"alpha": n}
            assert b["breakdown"]["executable"] == {str(exe): n}
            assert b["breakdown"]["build_id"] == {build_id: n}
        else:
            assert b["program"] == "python3"
            assert b["breakdown"]["host"] == {"beta": CATALOG_RUNS}
        if "://" not in db and i % 4 == 0:  # analyze, run on its own, prints the bucket triage stored
            _, a = run_json("analyze", b["examples"][0])
            assert a["bucket"] == b["bucket"]
    crashers = {k for k in fleet.buckets if ":crashers:" in k}

    def names(*args: str) -> set[str]:
        r, listed = run_json("triage", "buckets", "--db", db, *args)
        assert r.returncode == 0, r.stderr
        return {b["bucket"] for b in listed["buckets"]}

    assert names("--exe", "crashers") == names("--exe", str(exe)) == crashers
    assert names("--exe", "python3") == set(fleet.buckets) - crashers
    assert names("--build-id", build_id[:8].upper()) == crashers
    assert names("--since", "2999-01-01") == set()
    assert names("--since", "2000-01-01T00:00") == set(fleet.buckets)
    assert (
        names("--since", "1 day ago") == names("--since", "-1d") == set(fleet.buckets)
    )  # journalctl's forms
    assert names("--since", "tomorrow") == names("--since", "+1h") == set()
    assert names("--search", "PARSE_header") == {k for k in crashers if "parse_header" in k}
    assert names("--search", "%") == names("--search", "_x_") == set()  # literal, not LIKE wildcards
    text = run_nmf("triage", "buckets", "--db", db, "--exe", "crashers", "--examples", "2").stdout
    assert text.count(f"... and {runs - 2} more: 'notmyfault triage show ") == len(crashers) - 1
    assert text.count(f"... and {2 * runs - 2} more: 'notmyfault triage show ") == 1  # parse_header
    for args, words in (
        (("--since", "garbage"), "is not a time"),
        (("--since", "2026-13-45"), "is not a time"),
        (("--build-id", "xyz"), "hexadecimal"),
    ):
        r = run_nmf("triage", "buckets", "--db", db, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1, (args, r.stderr)
        assert words in r.stderr, (args, r.stderr)
    assert run_nmf("triage", "buckets", "--db", db, "--exe", "nosuch").stdout.startswith("no buckets match")


def test_a_dump_analysed_again_after_an_upgrade_counts_once(fleet: Fleet, tmp_path: Path) -> None:
    """Rows of an older analysis version are replaced, not kept beside the new one (which counted
    every dump twice in its bucket after an upgrade)."""
    db = str(tmp_path / "upgrade.db")
    some = sorted(p for p in fleet.expected if "/crashers/" in p)[:2]
    _ingest(db, *some)
    with Database(db) as d:
        d.execute("UPDATE dumps SET analysis_version = 'notmyfault 0.0+triage1', bucket = 'OLD'")
    again = _ingest(db, *some)
    assert (again["already_stored"], again["analysed"], again["stored"]) == (0, 2, 2)
    with Database(db) as d:
        rows = d.execute("SELECT path, analysis_version, bucket FROM dumps ORDER BY path")
    assert [(p, v, b) for p, v, b in rows] == [(p, ANALYSIS_VERSION, fleet.expected[p]) for p in some]


def _mapped_dump(pid: int, root: Path) -> str | None:
    """The dump under ``root`` that process ``pid`` has mapped (is analysing), if any."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    paths = {line.split(None, 5)[5] for line in maps.splitlines() if len(line.split(None, 5)) == 6}
    return next((p for p in paths if p.startswith(str(root))), None)


KILLS = 20
"""SIGKILLs of one ingest at random moments, before the run that completes it."""


def test_killed_at_random_then_resumed_gives_the_clean_table(fleet: Fleet, database: str) -> None:
    """SIGKILL an ingest at a random moment, 20 times over the fleet (200+ dumps; some kills land
    mid-transaction, some before the first row, some after the last), then run it once more: every
    dump has exactly one row, none is half-written, and the buckets are those of a clean run.  No
    worker outlives its killed ingest.  A SIGTERM then stops one cleanly (exit 130)."""
    import random

    db = database
    rng = random.Random(18)
    cmd = [sys.executable, "-m", "notmyfault", "triage", "ingest", "-r", "--workers", "2", "--db", db,
           str(fleet.root)]  # fmt: skip
    counts: list[int] = []
    first_row = None  # seconds from the start to the first row stored: the kills span that and more
    total = len(fleet.expected) + 1
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        t0 = time.monotonic()
        if first_row is None:  # how long the start takes here (imports, hashing, workers), measured
            while _count(db) == 0:
                assert time.monotonic() - t0 < 120, "the ingest stored nothing"
                time.sleep(0.02)
            first_row = time.monotonic() - t0
        time.sleep(max(0.0, rng.uniform(0.3, first_row + 1.0) - (time.monotonic() - t0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while session(proc.pid):
            assert time.monotonic() < deadline, f"workers outlived the killed ingest: {session(proc.pid)}"
            time.sleep(0.05)
        counts.append(_count(db))
        _whole_rows(db)
    assert counts == sorted(counts)
    assert counts[-1] > 0, counts
    if counts[-1] < total:  # work is left: a SIGTERM stops an ingest at work cleanly
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _count(db) == counts[-1] and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130)  # 0: it finished the last dumps before the signal came
        if proc.returncode == 130:
            assert "interrupted: run it again to do the rest" in out
    stored = _count(db)
    done = _ingest(db, str(fleet.root))
    assert done["already_stored"] == stored
    _whole_rows(db)
    _check(fleet, db)


def _whole_rows(db_url: str) -> None:
    """One row per dump file, and every row whole: an ok row has its bucket, frames and page; a
    failed one its error."""
    if "://" not in db_url and not os.path.exists(db_url):
        return
    with Database(db_url) as db:
        rows = db.execute("SELECT path, status, bucket, frames, analysis_text, error FROM dumps")
    paths = Counter(str(r[0]) for r in rows)
    assert [p for p, n in paths.items() if n > 1] == []
    for path, status, bucket, frames, text, error in rows:
        if status == "ok":
            assert bucket, path
            assert frames, path
            assert text, path
        else:
            assert status == "failed", (path, status)
            assert error, path


def test_a_dask_worker_killed_mid_task_loses_nothing(fleet: Fleet, tmp_path: Path) -> None:
    """The fleet on a two-worker Dask cluster, one worker SIGKILLed while it analyses: Dask runs its
    task again elsewhere (or the next ingest retries it as transient); then every dump has one row
    and the buckets are those of a local run (this is also the Dask backend's correctness test)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        db = str(tmp_path / "dask.db")
        cmd = [sys.executable, "-m", "notmyfault", "triage", "ingest", "-r", "--json", "--db", db,
               "--scheduler", cluster.scheduler_address, str(fleet.root)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while _count(db) < 20:
            assert time.monotonic() < deadline
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        with Client(cluster.scheduler_address) as client:
            pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        first = json.loads(out)
        assert first["analysed"] + first.get("transient", 0) >= 1
        _whole_rows(db)
        _ingest(db, str(fleet.root), extra=("--scheduler", cluster.scheduler_address))
    _whole_rows(db)
    _check(fleet, db)


def test_a_hung_or_dying_analysis_is_recorded_and_the_batch_goes_on(fleet: Fleet, database: str) -> None:
    """Caught with a dump in hand, one analysis process is stopped (SIGSTOP: it hangs) and another is
    killed (SIGKILL: it dies). Those two dumps are stored as failed with exactly that reason, fresh
    processes take over, and every other dump is analysed."""
    db = database
    catalog = fleet.root / "catalog"
    cmd = [sys.executable, "-m", "notmyfault", "triage", "ingest", "--workers", "2", "--timeout", "10",
           "--db", db, "--json", str(catalog)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    caught: dict[int, str] = {}
    deadline = time.monotonic() + 60
    while len(caught) < 2 and time.monotonic() < deadline and proc.poll() is None:
        for pid in children(proc.pid):
            if pid in caught:
                continue
            os.kill(pid, signal.SIGSTOP)
            dump = _mapped_dump(pid, catalog)
            if dump is None:
                os.kill(pid, signal.SIGCONT)
                continue
            caught[pid] = dump
            if len(caught) == 2:
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(caught) == 2, "could not catch two analyses in the act"
    hung, killed = caught.values()
    for pid in caught:  # the stopped one was killed by the ingest; reap-proof either way
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    failures = dict(_failures(db))
    assert failures == {hung: "the analysis took longer than 10 s and was stopped",
                        killed: "the analysis process died (signal SIGKILL)"}  # fmt: skip
    summary = json.loads(out)
    assert (summary["analysed"], summary["failed"]) == (len(CATALOG) * CATALOG_RUNS, 2)


def test_an_analysis_past_its_memory_limit_fails_alone(fleet: Fleet, database: str) -> None:
    db = database
    some = sorted(fleet.expected)[:3]
    exe = str(fleet.root / "build" / "bin" / "crashers")  # an ELF file, but not a core: named, skipped
    out = _ingest(db, *some, exe, extra=("--memory-limit", "1MB"))
    assert (out["analysed"], out["failed"], out["not_dumps"]) == (3, 3, [exe])
    # each failed by its limit: as an out-of-memory error, or (a native library that used the NULL
    # a failed allocation returned) a death under the limit, which the record says is most likely it
    for _, e in _failures(db):
        assert e == "the analysis ran out of its memory limit (1000000 bytes)" or re.fullmatch(
            r"the analysis process died \((exit status 1|signal SIG(SEGV|BUS|ABRT))\) under its memory limit "
            r"\(1000000 bytes\): most likely it ran out of it",
            e,
        ), e


def test_a_stopped_analysis_is_tried_again_and_an_unreadable_dump_is_not(fleet: Fleet, database: str) -> None:
    """A passing failure (here the memory limit; a timeout or a killed worker alike) made a valid dump
    'failed' forever: re-ingest said 'already stored'. Now it is marked transient and the next ingest
    analyses it again once; a dump that is truly unreadable is not, unless --retry-failed."""
    db = database
    good = sorted(p for p in fleet.expected if "/crashers/" in p)[:2]
    bad = str(fleet.bad / "core.truncated")
    assert _ingest(db, bad)["failed"] == 1
    stopped = _ingest(db, *good, extra=("--memory-limit", "1MB"))
    assert (stopped["analysed"], stopped["failed"]) == (2, 2)
    with Database(db) as d:
        assert {p: t for p, _, t in d.failures()} == {good[0]: True, good[1]: True, bad: False}
    shown = run_nmf("triage", "show", "failed", "--db", db).stdout
    assert shown.count("the next ingest tries it again once") == 2
    again = _ingest(db, *good, bad)
    assert (again["already_stored"], again["analysed"], again["failed"]) == (1, 2, 0)
    assert dict(_failures(db)) == {bad: dict(_failures(db))[bad]}
    assert {p: b for p, s, b in _table(db) if s == "ok"} == {p: fleet.expected[p] for p in good}
    retried = _ingest(db, *good, bad, extra=("--retry-failed",))
    assert (retried["already_stored"], retried["analysed"], retried["failed"]) == (2, 1, 1)
    with Database(db) as d:
        assert d.execute("SELECT attempts FROM dumps WHERE path = ?", [bad]) == [(2,)]
        assert d.count() == 3  # one row per dump, however often it was tried


def test_rebucketing_after_a_rule_change_reads_no_dump(fleet: Fleet, database: str, tmp_path: Path) -> None:
    """New rules (parse_header is generic; at most two frames) change the two parse_header buckets,
    from the stored frames alone: the dumps are moved away first."""
    db = database
    crashers = fleet.root / "crashers"
    _ingest(db, str(crashers))
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"prefix": ["parse_header", "free"], "max_frames": 2}))
    hidden = tmp_path / "hidden"
    shutil.move(str(crashers), hidden)
    try:
        r = run_nmf("triage", "rebucket", "--db", db, "--rules", str(rules))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"{2 * RUNS} dumps changed bucket; {len(BUGS) - 1} buckets now")
        _, out = run_json("triage", "buckets", "--db", db)
        counts = {b["bucket"]: b["count"] for b in out["buckets"]}
        assert counts.pop("FAULT:crashers:parse_header | run") == 2 * RUNS
        assert "FAULT:crashers:parse_header" not in counts
        assert all(n == RUNS for n in counts.values())
    finally:
        shutil.move(str(hidden), crashers)


def test_concurrent_ingests_neither_lose_nor_duplicate(fleet: Fleet, database: str) -> None:
    _concurrent(database, fleet)


def test_a_sigkilled_ingest_takes_its_workers_with_it(fleet: Fleet, tmp_path: Path) -> None:
    """SIGKILL of the ingest alone (not its group): its warm workers die too (a parent-death signal
    each asks for), instead of finishing their dump and lingering."""
    cmd = [sys.executable, "-m", "notmyfault", "triage", "ingest", "-r", "--workers", "2",
           "--db", str(tmp_path / "t.db"), str(fleet.root)]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        db = str(tmp_path / "t.db")
        while len(workers := children(p.pid)) < 2 or _count(db) < 8:  # both have answered: up and set
            assert time.monotonic() < deadline, "the workers never started"
            assert p.poll() is None
            time.sleep(0.02)
        for w in workers:  # held mid-dump: only the kernel's parent-death signal can end them now
            os.kill(w, signal.SIGSTOP)
        p.kill()
        p.wait()
        deadline = time.monotonic() + 10
        while alive := [w for w in workers if proc_state(w) not in (None, "Z")]:
            assert time.monotonic() < deadline, f"workers left running: {alive}"
            time.sleep(0.02)
    finally:
        p.kill()
        p.wait()
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)


def test_concurrent_failed_analyses_are_counted_once(fleet: Fleet, tmp_path: Path) -> None:
    """Four ingests at once, every analysis failing (a 1 MB memory limit: transient): one row a dump,
    and stored counts that add up to the rows (they summed to 3,547 for 1,342 rows: an ingest
    replaced the failed row another had just stored, and counted it)."""
    db = str(tmp_path / "t.db")
    some = sorted(fleet.expected)[:6]
    cmd = [
        sys.executable,
        "-m",
        "notmyfault",
        "triage",
        "ingest",
        "--db",
        db,
        "--json",
        "--memory-limit",
        "1MB",
    ]
    procs = [
        subprocess.Popen([*cmd, *some], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert sum(r["stored"] for r in results) == len(some)
    with Database(db) as d:
        assert d.count() == len(some)
        assert d.count("failed") == len(some)


def test_a_failed_row_a_concurrent_ingest_stored_is_not_retried(tmp_path: Path) -> None:
    """The retry of a transient failure is for a later ingest: a row stored after this ingest started
    is a concurrent one's, neither analysed again nor replaced (which spent its one retry)."""
    from notmyfault.triage.db import now

    with Database(str(tmp_path / "t.db")) as d:
        earlier = dict.fromkeys(COLUMNS) | {
            "hash": "a" * 64, "analysis_version": "v", "path": "/x", "size": 1, "ingested_at": now(),
            "status": "failed", "error": "stopped", "transient": 1,
        }  # fmt: skip
        assert d.insert(earlier)
        started = now()
        assert d.known(["a" * 64], "v", started=started) == set()  # failed before we started: retried
        later = earlier | {"hash": "b" * 64, "ingested_at": now()}
        assert d.insert(later)  # a concurrent ingest stores its failure
        assert d.known(["b" * 64], "v", started=started) == {"b" * 64}  # not ours to retry
        assert d.failed_attempts(["a" * 64, "b" * 64], "v") == {"a" * 64: 1, "b" * 64: 1}
        assert not d.insert(later | {"error": "again"})  # ours, not a retry: kept as it was, not counted
        assert d.insert(earlier | {"error": "retried"}, replaces=1)  # the retry replaces it, counting
        assert d.failed_attempts(["a" * 64, "b" * 64], "v") == {"a" * 64: 2, "b" * 64: 1}
        assert not d.insert(earlier | {"error": "late"}, replaces=1)  # another retried it first


CONCURRENT_BUGS = ("null-read", "divide", "double-free")


def _concurrent(db: str, fleet: Fleet) -> None:
    """Two ingests of the same dumps at once (three bugs' worth: 84 dumps) into one database."""
    dirs = sorted(
        str(p) for p in (fleet.root / "crashers").iterdir() if p.name.rsplit("-", 1)[0] in CONCURRENT_BUGS
    )
    cmd = [sys.executable, "-m", "notmyfault", "triage", "ingest", "-r", "--db", db, "--json", *dirs]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    n = RUNS * len(CONCURRENT_BUGS)
    assert [r["found"] for r in results] == [n, n]
    assert sum(r["stored"] for r in results) == n
    with Database(db) as d:
        assert d.count() == n
        assert d.execute("SELECT COUNT(DISTINCT hash) FROM dumps")[0][0] == n
    _, out = run_json("triage", "buckets", "--db", db)
    assert sorted(b["count"] for b in out["buckets"]) == [RUNS] * len(CONCURRENT_BUGS)


# ------------------------------------------------------------------ PostgreSQL


def _failures(db: str) -> list[tuple[str, str]]:
    with Database(db) as d:
        return [(p, e) for p, e, _ in d.failures()]


def _count(db: str) -> int:
    """Rows stored so far (0 before the ingest has made its database)."""
    if "://" not in db and not os.path.exists(db):
        return 0
    with Database(db) as d:
        return d.count()


def test_the_schema_is_migrated_once(database: str) -> None:
    """Two connections, one migration; the same tables on both backends."""
    for _ in range(2):
        with Database(database) as d:
            assert sorted(d.execute("SELECT version FROM schema_migrations")) == [(v,) for v, _ in MIGRATIONS]
            assert d.count() == 0


def test_a_version_one_database_is_migrated_and_rebucketed(tmp_path: Path) -> None:
    """A database written before programs scoped buckets: migration 2 adds the columns, and
    rebucket files its rows by the new rule from their stored frames."""
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    for statement in MIGRATIONS[0][1].format(id="INTEGER PRIMARY KEY AUTOINCREMENT").split(";"):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, '2026-11-01T00:00:00+00:00')")
    frames = [
        {"function": "raise", "module": "libc", "offset": 16, "token": "raise"},
        {"function": "__GI___libc_free", "module": "libc", "offset": 32, "token": "__libc_free"},
        {"function": "release_buffer", "module": "crashers", "offset": 48, "token": "release_buffer"},
    ]
    conn.execute(
        "INSERT INTO dumps (hash, analysis_version, path, size, ingested_at, status, dump_kind, executable, "
        "crash_class, frames, signature, bucket, bucket_id, file_time) VALUES "
        "('h', 'old', '/d/core', 1, 'now', 'ok', 'elf-core', '/opt/bin/crashers', 'DOUBLE_FREE', ?, "
        "'__libc_free | release_buffer', 'DOUBLE_FREE __libc_free | release_buffer', 'x', '2026-11-01')",
        (json.dumps(frames),),
    )
    conn.commit()
    conn.close()
    r = run_nmf("triage", "rebucket", "--db", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 dumps changed bucket; 1 buckets now")
    _, out = run_json("triage", "buckets", "--db", str(path))
    (b,) = out["buckets"]
    assert (b["bucket"], b["program"]) == ("ABORT:crashers:free | release_buffer", "crashers")
    with Database(str(path)) as d:
        assert d.execute("SELECT rules FROM dumps") == [(DEFAULT_RULES.stamp(),)]


# ------------------------------------------------------------------ report


def test_the_html_report_renders_in_chromium(fleet: Fleet, tmp_path: Path) -> None:
    """The page in headless Chromium: the table's rows (after its script ran) have the right counts,
    sorting by count works, and a screenshot is taken."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: ./dev test installs it (Debian: chromium)")
    db = str(tmp_path / "report.db")
    _ingest(db, str(fleet.root))
    page = tmp_path / "report.html"
    r = run_nmf("triage", "report", "--html", str(page), "--db", db)
    assert r.returncode == 0, r.stderr
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = dom.stdout[dom.stdout.index('<table class="sortable"') : dom.stdout.index("</table>")]
    rows = re.findall(
        r'<td class="n" data-key="(\d+)">\d+</td><td class="n".*?</td><td>.*?</td><td>(.*?)</td><td>(.*?)</td><td class="sig">(.*?)</td>',
        body,
    )
    counts = Counter(
        {f"{failure_kind(cls)}:{prog}:{sig}".replace("&amp;", "&"): int(n) for n, cls, prog, sig in rows}
    )
    assert counts == fleet.buckets
    assert "1 dumps could not be analysed" in dom.stdout
    swatches = re.findall(r'class="swatch" style="background:\s*([^;"]+)', body)
    assert len(swatches) == len(rows) == len(set(swatches))  # a colour of its own for every bucket
    trends = re.findall(r'<td data-key="(-?\d+)">(.*?)</td>', body)
    assert {t for _, t in trends} == {f"new ({RUNS})", f"new ({2 * RUNS})", f"new ({CATALOG_RUNS})"}  # a week
    assert dom.stdout.count(f"... and {RUNS - 20} more: <code>notmyfault triage show ") == len(BUGS) - 2
    assert dom.stdout.count(f"... and {2 * RUNS - 20} more: <code>notmyfault triage show ") == 1
    assert dom.stdout.count('<table class="split">') == len(rows)
    assert '<input id="search"' in dom.stdout
    shot = tmp_path / "report.png"
    r = subprocess.run([chromium, *flags, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.stat().st_size > 10_000


def test_bucket_colours_never_repeat() -> None:
    from notmyfault.triage.report import PALETTE, color

    shown = [color(i) for i in range(30_000 + len(PALETTE))]
    assert len(set(shown)) == len(shown)


# ------------------------------------------------------------------ bad input


def test_bad_input_gets_one_line(tmp_path: Path) -> None:
    cases = [
        (
            ("triage", "ingest", str(tmp_path / "nothing-here"), "--db", str(tmp_path / "a.db")),
            "no such file",
        ),
        (("triage", "ingest", str(tmp_path), "--db", str(tmp_path)), "is a directory"),
        (("triage", "buckets", "--db", "postgresql://nobody@127.0.0.1:1/x"), "cannot connect"),
        (("triage", "show", "nope", "--db", str(tmp_path / "a.db")), "no bucket 'nope'"),
        (
            ("triage", "ingest", str(tmp_path), "--memory-limit", "lots", "--db", str(tmp_path / "a.db")),
            "--memory-limit",
        ),
        (
            ("triage", "rebucket", "--rules", str(tmp_path / "missing.json"), "--db", str(tmp_path / "a.db")),
            "cannot read",
        ),
    ]
    for args, words in cases:
        r = run_nmf(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1, (args, r.stderr)
        assert words in r.stderr, (args, r.stderr)
    (tmp_path / "empty").mkdir()  # nothing failed: said, not an empty page
    assert (
        run_nmf("triage", "ingest", str(tmp_path / "empty"), "--db", str(tmp_path / "e.db")).returncode == 0
    )
    r = run_nmf("triage", "show", "failed", "--db", str(tmp_path / "e.db"))
    assert (r.returncode, r.stdout) == (0, "no failed dumps: every stored dump was analysed\n")
