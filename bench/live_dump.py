"""``notmyfault dump PID`` against gdb's ``gcore`` on the same live process, side by side.

Starts one Python process holding 200 MB of written memory (and three threads), then, alternating,
median of N runs each: ``notmyfault dump PID -o FILE`` and ``gdb -batch -p PID -ex "gcore FILE"``
(what the gcore script runs), timing each and taking its peak RSS (wait4's ru_maxrss). Prints both,
the ratios, and each core's size; checks that the process survives every dump.

Run: python bench/live_dump.py [--mb 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = """
import sys, threading, time
blocks = [bytearray(b"x" * (1 << 20)) for _ in range(int(sys.argv[1]))]
for _ in range(3):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (seconds, peak RSS in MiB)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status:#x}): {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    target = subprocess.Popen([sys.executable, "-c", TARGET, str(args.mb)], stdout=subprocess.PIPE, text=True)
    assert target.stdout is not None
    target.stdout.readline()
    results: dict[str, list[tuple[float, float]]] = {"notmyfault dump": [], "gdb gcore": []}
    sizes: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dump-") as tmp:
            for i in range(args.runs):
                for name in results:
                    out = os.path.join(tmp, f"{name.split()[0]}.{i}")
                    cmd = (
                        [sys.executable, "-m", "notmyfault", "dump", str(target.pid), "-o", out]
                        if name == "notmyfault dump"
                        else ["gdb", "-nx", "-batch", "-p", str(target.pid), "-ex", f"gcore {out}"]
                    )
                    results[name].append(measure(cmd))
                    sizes[name] = os.path.getsize(out)
                    os.unlink(out)
                    if target.poll() is not None:
                        raise SystemExit(f"the process died after {name}")
    finally:
        target.kill()
        target.wait()
    print(f"a live process with {args.mb} MB written and 4 threads; median of {args.runs} runs each")
    med = {
        n: (statistics.median(t for t, _ in r), statistics.median(m for _, m in r))
        for n, r in results.items()
    }
    for name, (secs, rss) in med.items():
        print(f"  {name:<16} {secs:7.3f} s  peak RSS {rss:7.1f} MiB  core {sizes[name] / 2**20:7.1f} MiB")
    (ours_t, ours_m), (gdb_t, gdb_m) = med["notmyfault dump"], med["gdb gcore"]
    print(f"  ratio (gcore / notmyfault dump): time {gdb_t / ours_t:.2f}x, peak RSS {gdb_m / ours_m:.2f}x")


if __name__ == "__main__":
    main()
