"""How long ``notmyfault collect`` holds a crashing process: from its start to its reaping, with
collect as the core_pattern handler, next to the kernel writing the same core to a file itself
(core_pattern ``core``), run side by side; and for a crash over its program's rate, which collect
drops unread.

    sudo python bench/collect_latency.py [--runs 30] [--ballast-mb 0]

Needs root (it writes kernel.core_pattern, and puts it back). The crasher is a small C program
(bench/plain_crash.c) that touches ``--ballast-mb`` of memory and writes through NULL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATTERN = Path("/proc/sys/kernel/core_pattern")
PIPE_LIMIT = Path("/proc/sys/kernel/core_pipe_limit")


def crash_times(program: Path, ballast_mb: int, runs: int, cwd: Path) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(
            ["bash", "-c", f"ulimit -c unlimited; exec {program} {ballast_mb}"], cwd=cwd, check=False
        )
        out.append(time.perf_counter() - t0)
        assert r.returncode != 0
        for core in cwd.glob("core*"):
            core.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--ballast-mb", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    before = {PATTERN: PATTERN.read_text().strip(), PIPE_LIMIT: PIPE_LIMIT.read_text().strip()}
    work = Path(tempfile.mkdtemp(prefix="nmf-clat-", dir="/tmp"))
    program = work / "plain_crash"
    subprocess.run(["gcc", "-O1", "-o", str(program), str(HERE / "plain_crash.c")], check=True)
    nmf = Path(sys.executable).with_name("notmyfault")
    try:
        PATTERN.write_text("core\n")
        plain = crash_times(program, args.ballast_mb, args.runs, work)
        store = work / "s"
        subprocess.run([str(nmf), "collect", "--install", "--store", str(store), "--rate", f"{args.runs}/3600",
                        "--max-use", "100GB", "--keep-free", "0"], check=True, capture_output=True)  # fmt: skip
        kept = crash_times(program, args.ballast_mb, args.runs, work)
        dropped = crash_times(program, args.ballast_mb, args.runs, work)  # the rate is spent: each is dropped
        n_kept = len(list((store / "crashes").iterdir()))
        sizes = [json.loads((d / "meta.json").read_text()) for d in (store / "crashes").iterdir()]
    finally:
        for path, value in before.items():
            path.write_text(value + "\n")
        shutil.rmtree(work, ignore_errors=True)
    med = {
        k: statistics.median(v) * 1000 for k, v in (("plain", plain), ("kept", kept), ("dropped", dropped))
    }
    out = {
        "runs": args.runs,
        "ballast_mb": args.ballast_mb,
        "plain_file_ms": round(med["plain"], 1),
        "collect_kept_ms": round(med["kept"], 1),
        "collect_dropped_ms": round(med["dropped"], 1),
        "ratio_kept": round(med["kept"] / med["plain"], 2),
        "kept": n_kept,
        "raw_bytes": int(statistics.median(m["raw_size"] for m in sizes)) if sizes else None,
        "stored_bytes": int(statistics.median(m["size"] for m in sizes)) if sizes else None,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"crash to reaped, median of {args.runs}, {args.ballast_mb} MB ballast:")
    print(f"  kernel writes the core file itself (core_pattern 'core'): {out['plain_file_ms']} ms")
    print(f"  collect keeps it (zstd into the store):                  {out['collect_kept_ms']} ms "
          f"({out['ratio_kept']}x; core {out['raw_bytes']} B stored as {out['stored_bytes']} B)")  # fmt: skip
    print(f"  collect drops it unread (over the rate):                 {out['collect_dropped_ms']} ms")


if __name__ == "__main__":
    main()
