"""Adversarial bucket benchmark: do distinct bugs stay apart and does one bug stay whole?

Makes its fixtures itself, as real processes that the kernel dumps (core_pattern 'core'), each
labelled with the bug it is:

- **programs nobody here wrote** (Debian's bash, dash, perl, python3, sort, cat, sleep, gzip,
  bzip2, xz, zstd, mawk), each killed or crashed in two or more ways: a fatal signal sent to
  itself, SIGSEGV, SIGABRT or SIGQUIT sent from outside while it reads a pipe, sleeps or waits for a
  child or a lock (two signals at the same spot are two bugs), abort(), a NULL pointer handed to the
  C library;
- **C fixtures**: one bug (a NULL write in ``store``) reached through two different call paths; two
  separate programs that both write through NULL in their own ``main``; a NULL handed to strlen and
  to memset, each run under ``GLIBC_TUNABLES=glibc.cpu.hwcaps=...`` so that glibc picks its EVEX,
  AVX2 and SSE2 variants on a CPU that has all three;
- **C++**: an uncaught exception and an abort() in the same method, and a NULL write in another.

Every case runs ``--runs`` times (each hwcaps variant counts as runs of the same bug). The dumps
go through ``notmyfault triage ingest`` into a fresh database, then:

- **purity**: the share of buckets that hold one bug only (a bucket with two bugs merges them);
- **completeness**: the share of bugs whose dumps all fall in one bucket (a bug in two buckets is
  split);
- **clean names**: buckets whose signature holds a libc internal, a CPU variant or a mangled name;
- **analyze agrees**: dumps whose stored bucket differs from the BUCKET_ID its analysis page printed.

Prints a table (bug, dumps, bucket) and the figures; with ``--json``, one JSON object. Exits 1
unless purity and completeness are 100%, no name is unclean and analyze agrees everywhere.

Run: python bench/buckets.py [--runs N] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3"
HWCAPS = {
    "evex": "",
    "avx2": "glibc.cpu.hwcaps=-AVX512VL,-AVX512BW",
    "sse2": "glibc.cpu.hwcaps=-AVX2",
}
"""glibc's string-function variants and the tunables that force each (on a CPU with AVX-512)."""

C_SOURCES = {
    "paths": r"""
#include <stdlib.h>
#include <string.h>
#define NOINLINE __attribute__((noinline))
volatile int sink;
NOINLINE void store(int *slot, int value) { *slot = value; }
NOINLINE void path_a(int *p) { store(p, 1); sink++; }
NOINLINE void path_b_inner(int *p) { store(p, 2); sink++; }
NOINLINE void path_b(int *p) { path_b_inner(p); sink++; }
int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "b")) path_b(NULL); else path_a(NULL);
    return 0;
}
""",
    "ledger": r"""
int main(void) { volatile int *total = 0; *total = 1; return 0; }
""",
    "inventory": r"""
#include <stdio.h>
int main(int argc, char **argv) { volatile long *count = 0; if (argc > 5) puts(argv[0]); *count = argc; return 0; }
""",
    "strings": r"""
#include <stdlib.h>
#include <string.h>
#define NOINLINE __attribute__((noinline))
volatile size_t sink;
NOINLINE size_t count_chars(const char *text) { return strlen(text); }
NOINLINE void clear_block(char *block, size_t n) { memset(block, 0, n); }
int main(int argc, char **argv) {
    char *none = getenv("NO_SUCH_VARIABLE_EVER");
    if (argc > 1 && !strcmp(argv[1], "memset")) clear_block(none, 4096); else sink = count_chars(none);
    return 0;
}
""",
}
CXX_SOURCE = r"""
#include <cstdlib>
#include <cstring>
#include <stdexcept>
namespace parser {
template <typename T> struct Reader {
    T *slot = nullptr;
    __attribute__((noinline)) T read(int how) {
        if (how == 1) throw std::runtime_error("truncated record");
        if (how == 2) std::abort();
        return how;
    }
    __attribute__((noinline)) void store(T value) { *slot = value; }
};
}
int main(int argc, char **argv) {
    parser::Reader<int> r;
    int how = argc > 1 ? std::atoi(argv[1]) : 0;
    if (how == 3) r.store(7);
    return r.read(how);
}
"""


@dataclass(frozen=True)
class Case:
    """One way to crash: the bug's label, the command, and how it dies."""

    bug: str
    argv: tuple[str, ...]
    kill: int | None = None
    """A signal sent from outside once it has settled (None: it crashes by itself)."""
    env: tuple[tuple[str, str], ...] = ()


def _signal_cases() -> list[Case]:
    """Debian's own programs, killed or crashed in several ways each."""
    s = signal
    cases = [
        Case("bash: kill -SEGV $$ (itself)", ("bash", "-c", "kill -SEGV $$")),
        Case("bash: SIGSEGV while reading", ("bash", "-c", "read line"), s.SIGSEGV),
        Case("bash: SIGABRT while waiting for a child", ("bash", "-c", "sleep 60; true"), s.SIGABRT),
        Case("dash: kill -SEGV $$ (itself)", ("dash", "-c", "kill -SEGV $$")),
        Case("dash: SIGSEGV while reading", ("dash", "-c", "read line"), s.SIGSEGV),
        Case("perl: kill SEGV, $$ (itself)", ("perl", "-e", "kill 'SEGV', $$")),
        Case("perl: SIGQUIT while sleeping", ("perl", "-e", "sleep 60"), s.SIGQUIT),
        Case("perl: SIGABRT while reading", ("perl", "-e", "my $l = <STDIN>"), s.SIGABRT),
        Case("python3: os.abort()", (PYTHON, "-c", "import os; os.abort()")),
        # a Python program's functions name its bugs: the stripped interpreter's native frames do not
        Case(
            "python3: os.kill(SIGSEGV) (itself)",
            (PYTHON, "-c", "import os\ndef crash():\n    os.kill(os.getpid(), 11)\ncrash()"),
        ),
        Case("python3: ctypes.string_at(0)", (PYTHON, "-c", "import ctypes; ctypes.string_at(0)")),
        Case(
            "python3: SIGSEGV while sleeping",
            (PYTHON, "-c", "import time\ndef wait():\n    time.sleep(60)\nwait()"),
            s.SIGSEGV,
        ),
        Case(
            "python3: SIGABRT while waiting on a lock",
            (PYTHON, "-c", "import threading; threading.Lock().acquire(); threading.Event().wait()"),
            s.SIGABRT,
        ),
        Case("sort: SIGABRT while reading", ("sort",), s.SIGABRT),
        Case("sort: SIGSEGV while reading", ("sort",), s.SIGSEGV),
        Case("cat: SIGSEGV while reading", ("cat",), s.SIGSEGV),
        Case("cat: SIGQUIT while reading", ("cat",), s.SIGQUIT),
        Case("sleep: SIGQUIT while sleeping", ("sleep", "60"), s.SIGQUIT),
        Case("sleep: SIGSEGV while sleeping", ("sleep", "60"), s.SIGSEGV),
        Case("gzip: SIGSEGV while reading", ("gzip", "-c"), s.SIGSEGV),
        Case("gzip: SIGQUIT while reading", ("gzip", "-c"), s.SIGQUIT),
        Case("bzip2: SIGABRT while reading", ("bzip2", "-c"), s.SIGABRT),
        Case("bzip2: SIGQUIT while reading", ("bzip2", "-c"), s.SIGQUIT),
        Case("xz: SIGABRT while reading", ("xz", "-T1", "-c"), s.SIGABRT),
        Case("xz: SIGQUIT while reading", ("xz", "-T1", "-c"), s.SIGQUIT),
        Case("zstd: SIGQUIT while reading", ("zstd", "-c"), s.SIGQUIT),
        Case("zstd: SIGABRT while reading", ("zstd", "-c"), s.SIGABRT),
        Case("mawk: SIGSEGV while reading", ("mawk", "{ print }"), s.SIGSEGV),
        Case("mawk: SIGQUIT while reading", ("mawk", "{ print }"), s.SIGQUIT),
    ]
    return [c for c in cases if shutil.which(c.argv[0])]


def build(outdir: Path) -> dict[str, Path]:
    """Compile the C (and, with g++, C++) fixtures into ``outdir``; name -> executable."""
    outdir.mkdir(parents=True, exist_ok=True)
    flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls"]
    out: dict[str, Path] = {}
    for name, source in C_SOURCES.items():
        src = outdir / f"{name}.c"
        src.write_text(source)
        subprocess.run(["gcc", *flags, "-o", str(outdir / name), str(src)], check=True)
        out[name] = outdir / name
    if shutil.which("g++"):
        src = outdir / "records.cpp"
        src.write_text(CXX_SOURCE)
        subprocess.run(["g++", *flags, "-o", str(outdir / "records"), str(src)], check=True)
        out["records"] = outdir / "records"
    return out


def cases(exes: dict[str, Path]) -> list[Case]:
    """Every case: Debian's programs, then the fixtures."""
    out = _signal_cases()
    out += [
        Case("paths: NULL write in store (path a)", (str(exes["paths"]), "a")),
        Case("ledger: NULL write in main", (str(exes["ledger"]),)),
        Case("inventory: NULL write in main", (str(exes["inventory"]),)),
        Case("paths: NULL write in store (path b)", (str(exes["paths"]), "b")),
    ]
    for variant, tunables in HWCAPS.items():
        env = (("GLIBC_TUNABLES", tunables),) if tunables else ()
        out.append(
            Case(f"strings: strlen(NULL) in count_chars [{variant}]", (str(exes["strings"]),), None, env)
        )
        out.append(
            Case(
                f"strings: memset(NULL) in clear_block [{variant}]",
                (str(exes["strings"]), "memset"),
                None,
                env,
            )
        )
    if "records" in exes:
        out += [
            Case("records: uncaught exception in Reader::read", (str(exes["records"]), "1")),
            Case("records: abort() in Reader::read", (str(exes["records"]), "2")),
            Case("records: NULL write in Reader::store", (str(exes["records"]), "3")),
        ]
    return out


def bug_of(case: Case) -> str:
    """The bug a case is: its label without the path taken or the CPU variant used (those are one bug
    reached another way)."""
    return re.sub(r" \(path [ab]\)| \[\w+\]", "", case.bug)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    os.setsid()


def run_case(case: Case, where: Path) -> Path:
    """Run ``case`` in the directory ``where`` and return the core the kernel wrote there."""
    where.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update({"LC_ALL": "C", **dict(case.env)})
    proc = subprocess.Popen(
        case.argv,
        cwd=where,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_limits,
    )
    try:
        if case.kill is not None:
            time.sleep(0.5)  # settled in its read, sleep or wait
            proc.send_signal(case.kill)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # a shell's child (sleep) goes with it
        if proc.stdin:
            proc.stdin.close()
    core = where / "core"
    if not core.exists():
        raise RuntimeError(
            f"{case.bug}: exit {proc.returncode}, no core in {where} (core_pattern must be 'core')"
        )
    return core


def make(root: Path, runs: int) -> dict[str, str]:
    """Build the fixtures and crash every case ``runs`` times: core path -> bug."""
    exes = build(root / "bin")
    out: dict[str, str] = {}
    for i, case in enumerate(cases(exes)):
        for n in range(runs):
            core = run_case(case, root / "dumps" / f"{i:02d}-{n}")
            out[str(core)] = bug_of(case)
    return out


UNCLEAN = re.compile(
    r"(^|\| )(__GI_|__libc_|_int_|__pthread|__futex|__lll_|_Z[A-Z_]|_R[A-Z_]|\$s)"
    r"|_(avx|evex|sse2|ssse3|erms|unaligned)\b|_(avx2|avx512|evex)"
)
"""A libc internal, a CPU variant or a mangled (Itanium C++, Rust v0, Swift) name in a signature."""


def score(bucket_of: dict[str, str], bug_of_dump: dict[str, str]) -> dict[str, Any]:
    """Purity and completeness of the buckets against the bugs."""
    bugs_in: dict[str, set[str]] = defaultdict(set)
    buckets_of: dict[str, set[str]] = defaultdict(set)
    for path, bug in bug_of_dump.items():
        bucket = bucket_of.get(path, "(not stored)")
        bugs_in[bucket].add(bug)
        buckets_of[bug].add(bucket)
    pure = [b for b, bugs in bugs_in.items() if len(bugs) == 1]
    whole = [g for g, bs in buckets_of.items() if len(bs) == 1]
    return {
        "dumps": len(bug_of_dump),
        "bugs": len(buckets_of),
        "buckets": len(bugs_in),
        "purity": len(pure) / len(bugs_in),
        "completeness": len(whole) / len(buckets_of),
        "merged": {b: sorted(bugs) for b, bugs in bugs_in.items() if len(bugs) > 1},
        "split": {g: sorted(bs) for g, bs in buckets_of.items() if len(bs) > 1},
        "unclean": sorted(b for b in bugs_in if UNCLEAN.search(b.split(":", 2)[-1])),
        "table": {g: sorted(bs) for g, bs in sorted(buckets_of.items())},
    }


def stored(db: str) -> tuple[list[tuple[str, str, str | None, str | None]], list[str]]:
    """The triage database's rows (path, status, bucket, error), and the dumps whose stored bucket
    differs from the BUCKET_ID their analysis page printed."""
    from notmyfault.triage.db import Database

    with Database(db) as d:
        rows = d.execute("SELECT path, status, bucket, analysis_text, error FROM dumps")
    disagree = []
    for path, status, bucket, text, _ in rows:
        printed = re.search(r"^BUCKET_ID: (.*)$", text or "", re.M)
        if status == "ok" and (printed is None or printed.group(1) != bucket):
            disagree.append(str(path))
    return [(str(p), s, b, e) for p, s, b, _, e in rows], disagree


def nmf(*args: str) -> dict[str, Any]:
    """Run a notmyfault command with --json and return its object."""
    r = subprocess.run(
        [sys.executable, "-m", "notmyfault", *args, "--json"], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"notmyfault {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return dict(json.loads(r.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Dumps per case (default 3).")
    parser.add_argument("--keep", metavar="DIR", help="Make the fixtures in DIR and keep them.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    if Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core":
        print(
            "bench/buckets.py: needs core_pattern 'core' (sysctl kernel.core_pattern=core)", file=sys.stderr
        )
        return 2
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nmf-buckets-"))
    try:
        t0 = time.monotonic()
        truth = make(root, args.runs)
        made = time.monotonic() - t0
        db = str(root / "buckets.db")
        ingest = nmf("triage", "ingest", "-r", "--workers", "2", "--db", db, str(root / "dumps"))
        rows, disagree = stored(db)
        bucket_of = {p: str(b) if s == "ok" else f"(failed: {p})" for p, s, b, _ in rows}
        result = score(bucket_of, truth)
        result.update(
            analyze_disagrees=disagree,
            seconds_to_make=round(made, 1),
            seconds_to_ingest=ingest["seconds"],
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    ok = (
        result["purity"] == 1.0
        and result["completeness"] == 1.0
        and not result["unclean"]
        and not result["analyze_disagrees"]
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for bug, buckets in result["table"].items():
            print(f"{bug:<52} {' ; '.join(buckets)}")
        print(
            f"\n{result['dumps']} dumps of {result['bugs']} bugs in {result['buckets']} buckets: "
            f"purity {100 * result['purity']:.1f}%, completeness {100 * result['completeness']:.1f}%, "
            f"unclean names {len(result['unclean'])}, analyze disagrees {len(result['analyze_disagrees'])} "
            f"(made in {result['seconds_to_make']} s, ingested in {result['seconds_to_ingest']} s)"
        )
        for bucket, bugs in result["merged"].items():
            print(f"MERGED {bucket}: {bugs}")
        for bug, buckets in result["split"].items():
            print(f"SPLIT {bug}: {buckets}")
        for bucket in result["unclean"]:
            print(f"UNCLEAN {bucket}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
