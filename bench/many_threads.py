"""A process of many threads: `dump PID` and `stack --all`, next to gcore-free peers run side by side.

Builds a C program whose N threads (10,000 by default) block on one mutex, then times, with the
peak RSS of each process (wait4's ru_maxrss):

- ``notmyfault dump PID -o CORE`` (stopping every thread, then writing the core);
- ``notmyfault stack --all --native CORE``, ``gdb -batch -ex 'thread apply all bt' EXE CORE`` and
  ``eu-stack --core CORE -e EXE`` on that core;
- ``notmyfault analyze CORE`` (the page: the first thread's stack, every thread's for the deadlock
  check) and ``gdb -batch -ex bt -ex 'info registers' EXE CORE``.

The commands on the core run interleaved, ``--runs`` times (median). Prints one JSON object with the
figures and the ratios to gdb and eu-stack (issue 25 measured 10,001 threads: dump 24.2 s -> 2.2 s;
stack --all on a CPython core 48.8 s -> 19.4 s; issue 26 asks analyze at gdb's speed on 200).

Run: python bench/many_threads.py [--threads N] [--runs N].
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
from pathlib import Path

import notmyfault

PROGRAM = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static void *worker(void *a) { (void)a; pthread_mutex_lock(&m); pthread_mutex_unlock(&m); return 0; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 65536);
    pthread_mutex_lock(&m);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &at, worker, 0)) { perror("pthread_create"); return 1; }
    }
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (seconds, peak RSS in MiB)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.monotonic() - t0, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    # as a wheel's install leaves it: every module byte-compiled (a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile each one again in every process timed)
    compileall.compile_dir(os.path.dirname(notmyfault.__file__), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # as on a machine where triage never ran: no decompressed debug files (unwind.debugcache)
    os.environ.setdefault("NOTMYFAULT_DEBUG_CACHE", "0")
    nmf = [sys.executable, "-m", "notmyfault"]
    with tempfile.TemporaryDirectory(prefix="nmf-threads-") as tmp:
        exe, core = Path(tmp) / "many", Path(tmp) / "core"
        (Path(tmp) / "many.c").write_text(PROGRAM)
        subprocess.run(
            ["gcc", "-O1", "-g", "-pthread", "-o", str(exe), str(Path(tmp) / "many.c")], check=True
        )
        target = subprocess.Popen([str(exe), str(args.threads)], stdout=subprocess.PIPE, text=True)
        try:
            if target.stdout is None or target.stdout.readline() != "ready\n":
                raise SystemExit(f"the {args.threads} threads could not be started")
            dump_s, dump_mb = measure([*nmf, "dump", str(target.pid), "-o", str(core)])
        finally:
            target.kill()
            target.wait()
        out: dict[str, object] = {"threads": args.threads + 1, "core_mb": core.stat().st_size >> 20}
        out["dump"] = {"seconds": round(dump_s, 2), "rss_mb": round(dump_mb)}
        runs = {"notmyfault": [*nmf, "stack", "--all", "--native", str(core)]}
        if shutil.which("gdb"):
            runs["gdb"] = ["gdb", "-nx", "-batch", "-ex", "thread apply all bt", str(exe), str(core)]
        if shutil.which("eu-stack"):
            runs["eu-stack"] = ["eu-stack", f"--core={core}", "-e", str(exe)]
        pages = {"notmyfault": [*nmf, "analyze", str(core)]}
        if shutil.which("gdb"):
            pages["gdb"] = ["gdb", "-nx", "-batch", "-ex", "bt", "-ex", "info registers", str(exe), str(core)]
        times: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.runs):  # interleaved: every tool sees the same machine
            for kind, table in (("stack_all", runs), ("analyze", pages)):
                for name, cmd in table.items():
                    times.setdefault(f"{kind}/{name}", []).append(measure(cmd))
        for kind, table in (("stack_all", runs), ("analyze", pages)):
            med = {
                n: (
                    statistics.median(t for t, _ in times[f"{kind}/{n}"]),
                    max(m for _, m in times[f"{kind}/{n}"]),
                )
                for n in table
            }
            out[kind] = {n: {"seconds": round(t, 3), "rss_mb": round(m)} for n, (t, m) in med.items()}
            ours = med["notmyfault"][0]
            out[f"{kind}_ratio"] = {
                f"notmyfault/{n}": round(ours / t, 2) for n, (t, _) in med.items() if n != "notmyfault"
            }
        out["runs"] = args.runs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
