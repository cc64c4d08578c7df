"""Analyzer speed and memory on the seed's core at every size, next to gdb and eu-stack run side by side.

For each size (20 MB, 200 MB and 2 GB by default) makes the seed-scenario core: a leak tagged Leak in
64 KiB blocks, then high-irql. The leak is nonpaged (mlocked) where this user may lock that much
(root, or RLIMIT_MEMLOCK): each block is then a mapping of its own, so the core has one segment per
block, most of them adjacent, as a real leak's core has; else it is paged, and the kernel merges the
blocks into a few mappings (the table says which). Then it times, median of N interleaved runs, with
the peak RSS of each process and its children (wait4's ru_maxrss):

- ``notmyfault analyze`` (with the Python frames) and ``analyze --native``, ``notmyfault stack``,
  ``notmyfault search CORE absent-pattern``, ``notmyfault poolused`` (tags and the glibc heap walk);
- ``gdb -batch -ex bt EXE CORE`` and ``eu-stack --core CORE``; ``grep -c -a`` for search.

Issue 26's targets: analyze at most gdb's bt on every core, with a peak RSS of 300 MB at most on the
2 GB one; search at 2 GB/s or more end to end on the 2 GB core.

Run: ./dev bench (or python bench/analyze_speed.py [--core-mb N ...] [--runs N]).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import notmyfault


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


def make_core(mb: int, where: str) -> tuple[str, int, int, str]:
    """The seed-scenario core of a leak of ``mb`` MB: (path, size, segments, pool)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    can_lock = os.geteuid() == 0 or soft == resource.RLIM_INFINITY or soft > mb * 1_000_000 * 1.1
    pool = "nonpaged" if can_lock else "paged"
    out = subprocess.run(
        [sys.executable, "-m", "notmyfault", "leak", "--pool", pool, "--rate", "10GB", "--stop-at", f"{mb}MB",
         "--then-crash", "high-irql", "--json", "--dump-dir", where, "--force"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    report = json.loads(out.strip().splitlines()[-1])
    path = report["dump"]["path"]
    from notmyfault.dumps.elfcore import ElfCore

    with ElfCore(path) as core:
        segments = len(core.segments)
    return path, report["dump"]["size"], segments, pool


def bench_size(mb: int, runs: int) -> None:
    """Make the core of a ``mb`` MB leak, time every command on it, print the table."""
    nmf = [sys.executable, "-m", "notmyfault"]
    exe = os.path.realpath(sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        core, size, segments, pool = make_core(mb, tmp)
        rows: dict[str, list[tuple[float, float]]] = {}
        cmds = {
            "notmyfault analyze": [*nmf, "analyze", core],
            "analyze --native": [*nmf, "analyze", "--native", core],
            "notmyfault stack": [*nmf, "stack", core],
            "notmyfault search": [*nmf, "search", core, "absent-pattern-0123456789"],
            "notmyfault poolused": [*nmf, "poolused", core],
            "gdb -batch -ex bt": ["gdb", "-batch", "-nx", "-ex", "bt", exe, core],
            "grep -c -a": ["grep", "-c", "-a", "absent-pattern-0123456789", core],
        }
        if shutil.which("eu-stack"):
            cmds["eu-stack --core"] = ["eu-stack", "--core", core, "-e", exe]
        for _ in range(runs):  # interleaved, so every tool sees the same machine
            for name, cmd in cmds.items():
                rows.setdefault(name, []).append(measure(cmd))
        med = {k: (statistics.median(t for t, _ in v), max(m for _, m in v)) for k, v in rows.items()}
        gdb_t = med["gdb -batch -ex bt"][0]
        eu_t = med.get("eu-stack --core", (None, None))[0]
        print(
            f"core: {size / 2**20:.0f} MiB, {segments} segments (the seed scenario, a {mb} MB {pool} leak), "
            f"median of {runs} runs"
        )
        print(f"{'command':<22} {'time':>8} {'peak RSS':>10} {'vs gdb bt':>10} {'vs eu-stack':>12}")
        for name, (t, m) in med.items():
            vs_eu = f"{t / eu_t:>12.2f}" if eu_t else f"{'-':>12}"
            print(f"{name:<22} {t:>7.2f}s {m:>8.0f}MiB {t / gdb_t:>10.2f} {vs_eu}")
        search_t, grep_t = med["notmyfault search"][0], med["grep -c -a"][0]
        print(
            f"search throughput: {size / search_t / 1e9:.2f} GB/s over the whole core (interpreter start-up "
            f"included), grep's {size / grep_t / 1e9:.2f} GB/s: {search_t / grep_t:.2f}x"
        )
        print()


def main() -> None:
    """Run the benchmark at each size and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--core-mb", type=int, nargs="+", default=[20, 200, 2048])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    # as a wheel's install leaves it: every module byte-compiled (a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile each one again in every process timed)
    compileall.compile_dir(os.path.dirname(notmyfault.__file__), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # as on a machine where triage never ran: no decompressed debug files (unwind.debugcache)
    os.environ.setdefault("NOTMYFAULT_DEBUG_CACHE", "0")
    for mb in args.core_mb:
        bench_size(mb, args.runs)


if __name__ == "__main__":
    main()
