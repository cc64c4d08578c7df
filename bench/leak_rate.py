"""Leak rate accuracy, leaker CPU use, and the fastest sustained leak, next to a plain C loop.

- achieved-rate error at 1000 KB/s and at 100 MB/s (5 s each, paged), from the
  leak's own report;
- CPU use of the leaking process at 1000 KB/s (utime + stime over wall time, from /proc);
- the fastest sustained paged and nonpaged leak (rate far above what is possible,
  1 GiB in 64 KiB blocks), next to bench/plain_leak.c doing the same mmap / touch /
  mlock per block in a tight C loop, run side by side.

Run: ./dev bench (or python bench/leak_rate.py [--total-mib N] [--runs N]).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")


def leak(pool: str, rate: str, stop_at: str, block: str = "64KiB") -> tuple[dict, float]:
    """Run one leak; return its limit event and the leaker's CPU seconds."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notmyfault",
            "leak",
            "--pool",
            pool,
            "--rate",
            rate,
            "--stop-at",
            stop_at,
            "--block",
            block,
            "--hold",
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pid = None
    limit = None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "start":
            pid = event["pid"]
        if event["event"] in ("limit", "error"):
            limit = event
        if event["event"] == "holding":
            break
    assert pid is not None
    assert limit is not None
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    proc.terminate()
    proc.wait()
    return limit, cpu


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--total-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print("rate accuracy (paged, 5 s)")
    for rate, stop in (("1000KB", "5MB"), ("100MB", "500MB")):
        ev, cpu = leak("paged", rate, stop)
        asked = 1e6 if rate == "1000KB" else 100e6
        err = 100 * (ev["rate"] - asked) / asked
        extra = f", leaker CPU {100 * cpu / ev['elapsed_s']:.1f}% of one core" if rate == "1000KB" else ""
        print(
            f"  {rate}/s: achieved {ev['rate'] / 1e6:.4f} MB/s in {ev['elapsed_s']:.3f} s, error {err:+.3f}%{extra}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "plain_leak")
        subprocess.run(["gcc", "-O2", "-o", exe, str(HERE / "plain_leak.c")], check=True)
        print(f"fastest sustained leak ({args.total_mib} MiB in 64 KiB blocks)")
        print(f"  {'pool':<9} {'notmyfault':>12} {'plain C':>12} {'ratio':>6}")
        for pool in ("paged", "nonpaged"):
            ours, theirs = [], []
            for _ in range(args.runs):  # interleaved, so both see the same machine
                ours.append(leak(pool, "100GB", f"{args.total_mib}MiB")[0]["rate"])
                out = subprocess.run(
                    [exe, pool, str(args.total_mib), "64"], capture_output=True, text=True, check=True
                )
                theirs.append(float(out.stdout))
            o, c = statistics.median(ours), statistics.median(theirs)
            print(
                f"  {pool:<9} {o / 1e6:>9.0f} MB/s {c / 1e6:>9.0f} MB/s {o / c:>6.2f}   (median of {args.runs})"
            )


if __name__ == "__main__":
    main()
