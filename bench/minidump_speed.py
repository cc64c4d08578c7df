"""Minidump speed: ``notmyfault analyze`` next to Breakpad's ``minidump_stackwalk`` and rust-minidump's
``minidump-stackwalk``, run side by side on the same dumps.

The dumps are Breakpad's own test dumps (``../shared/corpus/breakpad-testdata``, with their symbols).
Breakpad's stackwalker comes from the npm package ``minidump@0.26.0`` (its prebuilt
``bin/linux-x64/minidump_stackwalk``; fetched with ``npm pack`` into ``--tools`` when it is not there),
rust-minidump's from ``.venv/bin/minidump-stackwalk`` (``./dev setup`` puts it there). For each dump,
interleaved, median of ``--runs``:

- ``notmyfault analyze DUMP`` (a process each, as a user runs it) and ``analyze --symbols DIR``;
- ``minidump_stackwalk DUMP DIR`` (Breakpad) and ``minidump-stackwalk DUMP DIR`` (rust-minidump);
- the same analysis in one warm process (``notmyfault.open(DUMP).analysis()``, the second of two):
  what a triage worker pays per minidump, without the interpreter's start-up.

Prints each with its peak RSS, and the ratios to Breakpad's.

Run: python bench/minidump_speed.py [--runs N] [--dumps N] [--tools DIR].
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import notmyfault

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "corpus" / "breakpad-testdata"
NPM_PACKAGE = "minidump@0.26.0"


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; (seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)}: exit {os.waitstatus_to_exitcode(status)}")
    return took, usage.ru_maxrss / 1024


def breakpad_stackwalk(tools: Path) -> Path:
    """Breakpad's minidump_stackwalk, from the npm package (fetched once into ``tools``)."""
    binary = tools / "package" / "bin" / "linux-x64" / "minidump_stackwalk"
    if binary.exists():
        return binary
    if not shutil.which("npm"):
        raise SystemExit(f"Breakpad's minidump_stackwalk is not in {tools} and npm is not here to fetch it")
    tools.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", NPM_PACKAGE], cwd=tools, check=True, capture_output=True)
    (archive,) = tools.glob("minidump-*.tgz")
    with tarfile.open(archive) as tar:
        tar.extractall(tools, filter="data")
    binary.chmod(0o755)
    return binary


def warm_seconds(dumps: list[Path], symbols: Path, runs: int) -> dict[str, float]:
    """Each dump's analysis in this process, warmed once: the median of ``runs``."""
    import notmyfault

    out: dict[str, float] = {}
    for dump in dumps:
        times = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            with notmyfault.open(dump, symbols=str(symbols)) as d:
                d.analysis()
            if i:
                times.append(time.perf_counter() - t0)
        out[dump.name] = statistics.median(times)
    return out


def main() -> None:
    """Time every tool on the dumps and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dumps", type=int, default=9, help="how many dumps, largest first (default 9)")
    ap.add_argument("--tools", default=str(Path(tempfile.gettempdir()) / "notmyfault-bench-tools"))
    args = ap.parse_args()
    # as a wheel's install leaves it: every module byte-compiled (a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile each one again in every process timed)
    compileall.compile_dir(os.path.dirname(notmyfault.__file__), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not here: the dumps come from ../shared")
    symbols = DATA / "symbols"
    dumps = sorted(DATA.glob("*.dmp"), key=lambda p: -p.stat().st_size)[: args.dumps]
    breakpad = breakpad_stackwalk(Path(args.tools))
    rust = Path(sys.executable).parent / "minidump-stackwalk"
    nmf = [sys.executable, "-m", "notmyfault"]
    tools = {
        "notmyfault analyze": lambda d: [*nmf, "analyze", str(d)],
        "analyze --symbols": lambda d: [*nmf, "analyze", "--symbols", str(symbols), str(d)],
        "breakpad": lambda d: [str(breakpad), str(d), str(symbols)],
    }
    if rust.exists():
        tools["rust-minidump"] = lambda d: [str(rust), str(d), str(symbols)]
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for _ in range(args.runs):  # interleaved: every tool sees the same machine
        for dump in dumps:
            for name, cmd in tools.items():
                rows.setdefault(dump.name, {}).setdefault(name, []).append(measure(cmd(dump)))
    warm = warm_seconds(dumps, symbols, args.runs)
    names = list(tools)
    print(f"{len(dumps)} Breakpad test dumps, median of {args.runs} interleaved runs (seconds, peak RSS MiB)")
    print(f"{'dump':<40}" + "".join(f"{n:>22}" for n in names) + f"{'warm, in-process':>18}")
    ratios: dict[str, list[float]] = {n: [] for n in [*names, "warm"]}
    for dump in dumps:
        med = {
            n: (statistics.median(t for t, _ in v), max(m for _, m in v)) for n, v in rows[dump.name].items()
        }
        base = med["breakpad"][0]
        cells = "".join(f"{med[n][0]:>12.3f}s {med[n][1]:>5.0f}MiB" for n in names)
        print(f"{dump.name:<40}{cells}{warm[dump.name]:>17.3f}s")
        for n in names:
            ratios[n].append(med[n][0] / base)
        ratios["warm"].append(warm[dump.name] / base)
    print("ratio to Breakpad's minidump_stackwalk (median over the dumps):")
    for n, values in ratios.items():
        print(
            f"  {n:<22} {statistics.median(values):>8.1f}x  (from {min(values):.1f}x to {max(values):.1f}x)"
        )


if __name__ == "__main__":
    main()
