"""Analyzer speed and memory on the seed's core, next to gdb and eu-stack run side by side.

Makes the seed-scenario core (a nonpaged leak tagged Leak, then high-irql;
200 MB by default), then times, median of N runs, with the peak RSS of each
process (wait4's ru_maxrss):

- ``notmyfault analyze``, ``notmyfault stack``, ``notmyfault search CORE absent-pattern``,
  ``notmyfault poolused`` (tags and the glibc heap walk);
- ``gdb -batch -ex bt EXE CORE`` and ``eu-stack --core CORE``.

Targets from the analyzer issue: stack faster than gdb's bt; analyze (the whole
page) no slower than gdb's bt alone; search over 1 GB/s; peak memory under
150 MB even for a 2 GB core (--core-mb 2048 makes one).

Run: ./dev bench (or python bench/analyze_speed.py [--core-mb N] [--runs N]).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (seconds, peak RSS in MiB)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed with {proc.returncode}: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss / 1024


def make_core(mb: int, where: str) -> tuple[str, int]:
    pool = "nonpaged" if mb <= 1024 else "paged"
    out = subprocess.run(
        [sys.executable, "-m", "notmyfault", "leak", "--pool", pool, "--rate", "10GB", "--stop-at", f"{mb}MB",
         "--then-crash", "high-irql", "--json", "--dump-dir", where, "--force"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    report = json.loads(out.strip().splitlines()[-1])
    return report["dump"]["path"], report["dump"]["size"]


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--core-mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    nmf = [sys.executable, "-m", "notmyfault"]
    exe = os.path.realpath(sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        core, size = make_core(args.core_mb, tmp)
        rows: dict[str, list[tuple[float, float]]] = {}
        cmds = {
            "notmyfault analyze": [*nmf, "analyze", core],
            "notmyfault stack": [*nmf, "stack", core],
            "notmyfault search": [*nmf, "search", core, "absent-pattern-0123456789"],
            "notmyfault poolused": [*nmf, "poolused", core],
            "gdb -batch -ex bt": ["gdb", "-batch", "-nx", "-ex", "bt", exe, core],
        }
        if shutil.which("eu-stack"):
            cmds["eu-stack --core"] = ["eu-stack", "--core", core, "-e", exe]
        for _ in range(args.runs):  # interleaved, so every tool sees the same machine
            for name, cmd in cmds.items():
                rows.setdefault(name, []).append(measure(cmd))
        med = {k: (statistics.median(t for t, _ in v), max(m for _, m in v)) for k, v in rows.items()}
        gdb_t = med["gdb -batch -ex bt"][0]
        eu_t = med.get("eu-stack --core", (None, None))[0]
        print(
            f"core: {size / 2**20:.0f} MiB (the seed scenario, {args.core_mb} MB leak), median of {args.runs} runs"
        )
        print(f"{'command':<22} {'time':>8} {'peak RSS':>10} {'vs gdb bt':>10} {'vs eu-stack':>12}")
        for name, (t, m) in med.items():
            vs_eu = f"{t / eu_t:>12.2f}" if eu_t else f"{'-':>12}"
            print(f"{name:<22} {t:>7.2f}s {m:>8.0f}MiB {t / gdb_t:>10.2f} {vs_eu}")
        search_t = med["notmyfault search"][0]
        print(
            f"search throughput: {size / search_t / 1e9:.2f} GB/s over the whole core (interpreter start-up included)"
        )


if __name__ == "__main__":
    main()
