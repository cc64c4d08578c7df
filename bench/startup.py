"""Start-up and small-dump speed, next to the peers run side by side (issue 26).

Interleaved runs, medians, each with its ratio:

- ``notmyfault --version`` against ``python -c pass`` (the same interpreter): what the command costs
  before it does anything;
- ``notmyfault analyze`` of a small C core against ``gdb -batch -ex bt -ex 'info registers'``;
- ``notmyfault stack`` of the same core against ``eu-stack --core``;
- the import time of ``notmyfault analyze`` (``python -X importtime``, the top-level modules
  summed), and its largest parts.

The package's modules are byte-compiled first and the runs may write bytecode (as a wheel's install
does): a checkout run with PYTHONDONTWRITEBYTECODE compiles every module on every start.

Run: python bench/startup.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import notmyfault

CRASH_C = "int main(void) { *(volatile int *)0 = 1; return 0; }\n"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; (seconds, peak RSS in MiB of it and its children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)}: exit {code}")
    return took, usage.ru_maxrss / 1024


def import_ms(cmd: list[str], env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """The milliseconds ``cmd`` spends importing (top-level imports summed) and the largest five."""
    r = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env, check=False
    )
    tops: list[tuple[str, float]] = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(2) == " ":  # one space: imported by no other module
            tops.append((m.group(3), int(m.group(1)) / 1000))
    return sum(ms for _, ms in tops), sorted(tops, key=lambda t: -t[1])[:5]


def make_core(where: Path) -> tuple[Path, Path]:
    """A small C program that writes through NULL, and its core."""
    (where / "crash.c").write_text(CRASH_C)
    exe = where / "crash"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(where / "crash.c")], check=True)

    def unlimited() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    subprocess.run([str(exe)], cwd=where, preexec_fn=unlimited, check=False)
    core = next(where.glob("core*"), None)
    if core is None:
        raise SystemExit("no core was written: needs core_pattern 'core' and cores allowed")
    return exe, core


def main() -> None:
    """Run the benchmark and print the table (or one JSON object)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    compileall.compile_dir(os.path.dirname(notmyfault.__file__), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # as on a machine where triage never ran: no decompressed debug files (unwind.debugcache)
    env.setdefault("NOTMYFAULT_DEBUG_CACHE", "0")
    bindir = os.path.dirname(sys.executable)
    nmf = [os.path.join(bindir, "notmyfault")] if os.path.exists(os.path.join(bindir, "notmyfault")) else None
    nmf = nmf or [sys.executable, "-m", "notmyfault"]
    with tempfile.TemporaryDirectory() as tmp:
        exe, core = make_core(Path(tmp))
        pairs = {
            "version": ([*nmf, "--version"], [sys.executable, "-c", "pass"]),
            "analyze": (
                [*nmf, "analyze", str(core)],
                ["gdb", "-batch", "-nx", "-ex", "bt", "-ex", "info registers", str(exe), str(core)],
            ),
        }
        if shutil.which("eu-stack"):
            pairs["stack"] = ([*nmf, "stack", str(core)], ["eu-stack", "--core", str(core), "-e", str(exe)])
        rows: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]] = {
            k: ([], []) for k in pairs
        }
        for _ in range(args.runs):  # interleaved: every tool sees the same machine
            for name, (ours, peer) in pairs.items():
                rows[name][0].append(timed(ours, env))
                rows[name][1].append(timed(peer, env))
        imports, largest = import_ms([sys.executable, "-m", "notmyfault", "analyze", str(core)], env)
    out: dict[str, object] = {"runs": args.runs, "import_ms_analyze": round(imports, 1)}
    out["largest_imports_ms"] = {name: round(ms, 1) for name, ms in largest}
    for name, (ours, peer) in rows.items():
        t, p = statistics.median(x for x, _ in ours), statistics.median(x for x, _ in peer)
        out[name] = {
            "ours_s": round(t, 4),
            "peer_s": round(p, 4),
            "ratio": round(t / p, 2),
            "ours_peak_mib": round(max(m for _, m in ours), 1),
            "peer_peak_mib": round(max(m for _, m in peer), 1),
        }
    if args.json:
        print(json.dumps(out))
        return
    peers = {"version": "python -c pass", "analyze": "gdb bt + registers", "stack": "eu-stack --core"}
    print(f"median of {args.runs} interleaved runs")
    print(f"{'workload':<10} {'ours':>8} {'peer':>8} {'ratio':>6} {'RSS ours':>9} {'RSS peer':>9}  peer")
    for name in rows:
        r = out[name]
        assert isinstance(r, dict)
        print(
            f"{name:<10} {r['ours_s']:>7.3f}s {r['peer_s']:>7.3f}s {r['ratio']:>5.2f}x "
            f"{r['ours_peak_mib']:>7.0f}MiB {r['peer_peak_mib']:>7.0f}MiB  {peers[name]}"
        )
    print(f"imports of 'notmyfault analyze': {imports:.0f} ms; largest: ", end="")
    print(", ".join(f"{n} {ms:.0f} ms" for n, ms in largest))


if __name__ == "__main__":
    main()
