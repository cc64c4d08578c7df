"""The fuzzing's long form: 10,000 mutated inputs (or --count) through every reader and every
unpacking path (tests/fuzz_reader.py's kinds), one process per kind.  Prints, per kind, the inputs,
how many were read and how many refused with one line, the failures (a traceback, or an error of
several lines: each must be 0) and the time.  CI runs the short form (tests/test_fuzz.py).

Run: python bench/fuzz.py [--count N] [--kind KIND ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

FUZZER = Path(__file__).resolve().parent.parent / "tests" / "fuzz_reader.py"
KINDS = ("elf", "minidump", "windows", "sym", "packed", "apport", "kdump")
LINE = re.compile(
    r"fuzz: (\d+) inputs from (\d+) seeds in [\d.]+ s: (\d+) read, (\d+) rejected with one line, (\d+) failures"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--kind", action="append", choices=KINDS, help="Only these kinds (default: all).")
    args = ap.parse_args()
    total_fail = 0
    print(f"{'kind':10} {'inputs':>7} {'seeds':>5} {'read':>6} {'refused':>7} {'failures':>8} {'seconds':>8}")
    for kind in args.kind or KINDS:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, str(FUZZER), "--kind", kind, "--count", str(args.count)],
                           capture_output=True, text=True, check=False)  # fmt: skip
        took = time.monotonic() - t0
        m = LINE.search(r.stdout)
        if m is None:
            print(f"{kind:10} did not finish (exit {r.returncode}): {(r.stdout + r.stderr)[-300:]}")
            total_fail += 1
            continue
        inputs, seeds, read, refused, failures = (int(g) for g in m.groups())
        total_fail += failures
        print(f"{kind:10} {inputs:7} {seeds:5} {read:6} {refused:7} {failures:8} {took:8.1f}")
        if failures:
            print(r.stdout[-3000:])
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
