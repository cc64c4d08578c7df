"""Opening dumps as systems keep them, next to the peers' own unpackers run side by side.

Makes a real core (``notmyfault crash null-deref --ballast N``; 200 MB by default), packs it as
systemd-coredump does (``zstd``), and times, median of N runs, with each process's peak RSS:

- ``notmyfault analyze core`` (the bare core: the floor);
- ``notmyfault analyze core.zst`` (streamed into a sparse temporary file, then read);
- ``zstd -dc core.zst > file`` then ``notmyfault analyze file``: what a user would do by hand,
  the peer to beat (the ratio printed is ours over it).

Run: python bench/packed_speed.py [--core-mb N] [--runs N].
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def measure(cmd: list[str], stdout: int | None = subprocess.DEVNULL, **kw: object) -> tuple[float, float]:
    """Run ``cmd``; return (seconds, peak RSS in MiB)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {' '.join(cmd)}")
    return time.monotonic() - t0, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--core-mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("zstd") is None:
        print("packed_speed: needs the zstd program (apt-get install zstd)", file=sys.stderr)
        return 2
    nmf = [sys.executable, "-m", "notmyfault"]
    with tempfile.TemporaryDirectory() as tmp:
        dumps = os.path.join(tmp, "dumps")
        subprocess.run(
            [*nmf, "crash", "null-deref", "--ballast", f"{args.core_mb}MB", "--dump-dir", dumps],
            check=False,
            capture_output=True,
        )
        (core,) = glob.glob(os.path.join(dumps, "core*"))
        packed = os.path.join(tmp, "core.nw.0.b00t.1.1.zst")
        subprocess.run(["zstd", "-q", core, "-o", packed], check=True)
        unpacked = os.path.join(tmp, "by-hand")

        def by_hand() -> tuple[float, float]:
            with open(unpacked, "wb") as out:
                t1, m1 = measure(["zstd", "-dc", packed], stdout=out.fileno())
            t2, m2 = measure([*nmf, "analyze", unpacked])
            os.unlink(unpacked)
            return t1 + t2, max(m1, m2)

        rows = {
            "analyze core (bare)": [measure([*nmf, "analyze", core]) for _ in range(args.runs)],
            "analyze core.zst": [measure([*nmf, "analyze", packed]) for _ in range(args.runs)],
            "zstd -dc + analyze (by hand)": [by_hand() for _ in range(args.runs)],
        }
        size, packed_size = os.path.getsize(core), os.path.getsize(packed)
        print(f"core {size >> 20} MiB, zstd {packed_size >> 20} MiB; median of {args.runs} runs")
        med = {k: (statistics.median(t for t, _ in v), max(m for _, m in v)) for k, v in rows.items()}
        for name, (t, m) in med.items():
            print(f"  {name:32} {t:6.2f} s   peak RSS {m:6.0f} MiB")
        ours, hand = med["analyze core.zst"][0], med["zstd -dc + analyze (by hand)"][0]
        print(f"  analyze core.zst / by hand: {ours / hand:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
