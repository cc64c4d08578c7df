"""Crash-to-dump-reported latency of notmyfault, next to the kernel's own core-writing time.

For a small process and one holding 200 MB, this runs side by side, N times each:

- ``notmyfault crash null-deref [--ballast 200MB] --json``: from the moment myfault
  says it is about to fault (its stderr line reaches the parent) until the parent
  has found and filed the dump (fault_to_exit_s + locate_s in the JSON report),
  and the whole command's wall time;
- a plain C program (bench/plain_crash.c) with the same ballast that prints a line
  and dies by a NULL write: from that line to the parent reaping it, which is the
  time the kernel needs to write a core of that size.

It prints medians and the ratio notmyfault / kernel.  Run: ./dev bench [--runs N].
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def plain_once(exe: str, mib: int, workdir: str) -> tuple[float, int]:
    """Run the plain C crasher; return (fault-to-reaped seconds, core size)."""
    for f in Path(workdir).iterdir():
        f.unlink()

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    proc = subprocess.Popen([exe, str(mib)], cwd=workdir, stderr=subprocess.PIPE, preexec_fn=limits)
    assert proc.stderr is not None
    proc.stderr.readline()
    t_fault = time.monotonic()
    proc.wait()
    t_exit = time.monotonic()
    cores = [f for f in Path(workdir).iterdir() if f.is_file()]
    size = cores[0].stat().st_blocks * 512 if cores else 0
    return t_exit - t_fault, size


def notmyfault_once(ballast: str | None, dump_dir: str) -> tuple[float, float, int]:
    """Run notmyfault's crash; return (fault-to-reported, command wall time, dump size)."""
    for f in Path(dump_dir).iterdir():
        if f.is_file():
            f.unlink()
    cmd = [sys.executable, "-m", "notmyfault", "crash", "null-deref", "--json", "--dump-dir", dump_dir]
    if ballast:
        cmd += ["--ballast", ballast]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.monotonic() - t0
    rep = json.loads(out.stdout)
    t = rep["timings"]
    return t["fault_to_exit_s"] + t["locate_s"], wall, rep["dump"]["allocated"]


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith(("|", "/", "@")) or not pattern:
        sys.exit(f"this benchmark needs a relative file core_pattern (it is {pattern!r})")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "plain_crash")
        subprocess.run(["gcc", "-O1", "-o", exe, str(HERE / "plain_crash.c")], check=True)
        work = os.path.join(tmp, "plain")
        dumps = os.path.join(tmp, "dumps")
        os.makedirs(work)
        os.makedirs(dumps)
        print(f"crash-to-dump-reported latency, median of {args.runs} runs (core_pattern {pattern!r})")
        print(
            f"{'process':<10} {'on disk':>10} {'notmyfault':>11} {'kernel only':>12} {'ratio':>6} {'cmd wall':>9}"
        )
        for label, mib, ballast in (("small", 0, None), ("200 MB", 200, "200MiB")):
            ours, walls, plains = [], [], []
            size = psize = 0
            for _ in range(args.runs):
                lat, wall, size = notmyfault_once(ballast, dumps)
                plain, psize = plain_once(exe, mib, work)
                ours.append(lat)
                walls.append(wall)
                plains.append(plain)
            o, p = statistics.median(ours), statistics.median(plains)
            print(
                f"{label:<10} {size / 2**20:>8.1f}Mi {o * 1000:>9.1f}ms {p * 1000:>10.1f}ms {o / p:>6.2f} "
                f"{statistics.median(walls) * 1000:>7.0f}ms   (plain C core {psize / 2**20:.1f} MiB on disk)"
            )
    shutil.rmtree(dumps, ignore_errors=True)


if __name__ == "__main__":
    main()
