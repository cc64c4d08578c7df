"""Fleet triage speed: dumps per second for 1 and 2 local workers and a 2-worker Dask cluster.

Makes a fleet (tests/build_crashers.py: seven C bugs, RUNS cores each; plus the crash catalog once,
whose cores are the Python interpreter's, 14 MB each), then on the same dumps and a fresh SQLite
database each time:

- ``notmyfault triage ingest --workers 1`` and ``--workers 2``;
- the same with ``--scheduler`` on a Dask LocalCluster of two single-threaded worker processes;
- ``notmyfault analyze --json`` once per dump on a sample (the start-up a batch saves).

Prints dumps/s, the mean analysis time per dump inside the warm workers next to a cold
``notmyfault analyze``, and the peak RSS of an analysis process; where one worker's time went, by
kind of dump; and dumps/s for 1 and 2 workers on the small C cores alone (no deep recursion). On 2 cores, two workers cannot
double the rate: the parent hashes and stores while they analyse.

Run: python bench/triage_speed.py [--runs N] [--keep DIR].
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.build_crashers import build, crash_all  # noqa: E402

CATALOG = ("high-irql", "buffer-overflow", "code-overwrite", "stack-trash", "null-deref", "stack-overflow",
           "breakpoint", "double-free", "use-after-free", "abort")  # fmt: skip


def nmf(*args: str) -> subprocess.CompletedProcess[str]:
    """Run notmyfault."""
    return subprocess.run(
        [sys.executable, "-m", "notmyfault", *args], capture_output=True, text=True, check=False
    )


def ingest(fleet: Path, db: Path, *extra: str) -> dict[str, Any]:
    """One ingest of the whole fleet into a fresh database; its JSON summary plus wall time."""
    t0 = time.monotonic()
    r = nmf("triage", "ingest", "-r", "--db", str(db), "--json", *extra, str(fleet))
    if r.returncode != 0:
        raise SystemExit(f"ingest failed: {r.stderr}")
    out: dict[str, Any] = json.loads(r.stdout)
    out["wall"] = time.monotonic() - t0
    return out


def kinds(db: Path) -> None:
    """Where one worker's time went: the analysis seconds the database stores, by kind of dump."""
    import sqlite3

    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT crash_class, executable, seconds FROM dumps").fetchall()
    groups: dict[str, list[float]] = {}
    for crash_class, executable, seconds in rows:
        if "python" in os.path.basename(executable or ""):
            kind = "CPython cores"
        elif crash_class == "STACK_OVERFLOW":
            kind = "deep recursions (C)"
        else:
            kind = "other small C cores"
        groups.setdefault(kind, []).append(float(seconds or 0))
    total = sum(sum(v) for v in groups.values())
    for kind, values in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"  {kind:<22} {len(values):>4} dumps, {statistics.mean(values) * 1000:7.1f} ms each in the worker, "
            f"{sum(values) / total:4.0%} of its analysis time"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20, help="cores per C bug (default 20: 140 cores)")
    ap.add_argument("--keep", help="make the fleet in this directory and keep it")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="nmf-fleet-"))
    crash_all(build(root / "build"), root / "fleet" / "crashers", args.runs)
    for kind in CATALOG:
        nmf("crash", kind, "--dump-dir", str(root / "fleet" / "catalog"))
    fleet = root / "fleet"
    n = sum(1 for _ in fleet.rglob("core*"))
    print(f"fleet: {n} dumps ({7 * args.runs} small C cores, {len(CATALOG)} Python-interpreter cores)")

    sample = sorted(fleet.rglob("core*"))[:: max(1, n // 10)][:10]
    cold = []
    for p in sample:
        t0 = time.monotonic()
        nmf("analyze", "--json", str(p))
        cold.append(time.monotonic() - t0)
    print(f"cold 'notmyfault analyze' per dump: {statistics.mean(cold):.3f} s (mean of {len(cold)})")

    from distributed import LocalCluster

    results: dict[str, dict[str, Any]] = {}
    results["1 local worker"] = ingest(fleet, root / "w1.db", "--workers", "1")
    results["2 local workers"] = ingest(fleet, root / "w2.db", "--workers", "2")
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        results["Dask, 2 workers"] = ingest(fleet, root / "dask.db", "--scheduler", cluster.scheduler_address)
    base = results["1 local worker"]["wall"]
    for name, r in results.items():
        print(
            f"{name:<16} {r['analysed']} dumps in {r['wall']:6.1f} s: {r['analysed'] / r['wall']:5.1f} dumps/s "
            f"({base / r['wall']:.2f}x one worker), peak RSS of an analysis process {r['max_rss_kb'] / 1024:.0f} MiB"
        )
    one = base / results["1 local worker"]["analysed"]
    print(
        f"per dump in a batch (1 worker, wall / dumps): {one:.3f} s against {statistics.mean(cold):.3f} s for a cold "
        f"'notmyfault analyze': {statistics.mean(cold) / one:.1f}x"
    )
    kinds(root / "w1.db")
    small = root / "small"  # the small C cores without the deep recursions: issue 26's "small cores"
    small.mkdir(exist_ok=True)
    for p in sorted((fleet / "crashers").rglob("core*")):
        if not p.parent.name.startswith("recurse"):
            target = small / f"{p.parent.name}.core"
            if not target.exists():
                os.link(p, target)
    count = sum(1 for _ in small.iterdir())
    one_small = ingest(small, root / "s1.db", "--workers", "1")
    two_small = ingest(small, root / "s2.db", "--workers", "2")
    print(
        f"small C cores alone ({count}, no deep recursion): 1 worker {count / one_small['wall']:.1f} dumps/s, "
        f"2 workers {count / two_small['wall']:.1f} dumps/s ({one_small['wall'] / two_small['wall']:.2f}x)"
    )
    if not args.keep:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    os.sync()


if __name__ == "__main__":
    main()
