"""Variation bench for buckets: every bug built and run under a matrix of variations that no rule was
tuned for, scored per variation axis.

The bugs are ordinary programs in ``bench/bugs/`` (each first argument one bug, the second argument
0 or 1 the data it runs on):

- ``orders.c``: sixteen C bugs (one reached through two callers, two in one function, in a thread,
  in a qsort callback, in a signal handler, in an atexit handler, in libc's strlen and free, a stack
  overflow, a call through NULL, a trap, a write to read-only data), built as two programs
  (``orders`` and ``stock``: the same source, two products, so two bugs each);
- ``shapes.cpp``: twelve C++ bugs (uncaught exceptions thrown from the standard library and from
  the program, a noexcept violation, a lambda comparator, a std::thread, a template's assert, a
  virtual call through NULL, a double delete);
- ``ledger.rs``: twelve Rust bugs built with panic=abort (unwrap, expect, indexing, RefCell, a
  thread, a closure, integer division, a stack overflow, an unsafe NULL write);
- ``jobs.py``: ten Python bugs (ctypes faults, os.abort, a fatal signal sent to itself, a thread, a
  signal handler, one bug reached through two callers, two bugs in one function).

The native programs are built under a matrix of **builds**: compiler (gcc, clang; rustc for Rust),
optimisation (-O0, -O2, -O3), linking (PIE, static), frame pointers (omitted, kept) and symbols
(debug info in the executable, or stripped with the debug file served by elfutils' ``debuginfod`` on
the loopback, which ``triage ingest --debuginfod`` asks). The matrix is the base build (gcc -O2 PIE,
no frame pointers, debug info), each single change of it, and ``--random`` more builds drawn with a
fixed seed. The Python bugs run on two interpreters (Debian's stripped python3 and a pyenv one)
with faulthandler on and off. Every case runs twice: with input 0 in one working directory and
input 1 in another (the "run" axis: other data, other fault addresses, other paths).

The dumps go through ``notmyfault triage ingest --debuginfod`` into a fresh database, then:

- **purity** and **completeness** over all dumps (as ``bench/buckets.py``), and per axis: for each
  value, over the dumps built that way; and **joined**, the share of (bug, other axes) groups whose
  dumps across the axis's values all fall in one bucket (where one axis splits a bug);
- **unclean signatures**: a libc internal, a CPU variant, a mangled name, a path, a large hex value
  (an address) or an interpreter's offset where a symbol exists;
- **analyze agrees**: dumps whose stored bucket differs from the BUCKET_ID on their analysis page.

Every split and merge is listed with its buckets, and every split with its cause where it is known
(``KNOWN_SPLITS``: the compiler kept no record of the frame). Exits 1 unless purity is 1.0,
completeness is at least ``--min-completeness`` (0.95), every split has a known cause, no
signature is unclean, every case left a core and every dump was analysed.

Run: python bench/bucket_matrix.py [--random N] [--only c,c++,rust,python] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from tests.coretools import build_id, debuginfod_server, unlimited_cores  # noqa: E402

from buckets import UNCLEAN, nmf, score, stored  # noqa: E402

BUGS = HERE / "bugs"
C_BUGS = {
    "store-restock": "store",
    "store-refund": "store",
    "apply-null": "apply_delta: NULL item",
    "apply-limit": "apply_delta: assert",
    "thread": "tally_worker",
    "qsort": "by_price (qsort callback)",
    "signal": "on_signal (handler)",
    "strlen": "count_chars: strlen(NULL)",
    "recursion": "descend: stack overflow",
    "divide": "ratio: divide by zero",
    "abort": "validate: abort",
    "double-free": "release: double free",
    "trap": "unreachable_state: trap",
    "rodata": "label_write: read-only",
    "call-null": "dispatch: NULL handler",
    "wild": "poke: wild write",
    "heap-overflow": "drop_pair: corrupt chunk",
    "atexit": "flush_log (atexit)",
}
"""orders.c's cases and the bug each is (two cases of one bug: one bug reached through two callers)."""
CXX_BUGS = (
    "throw", "vector-at", "map-at", "null-this", "double-delete", "optional", "noexcept", "lambda-sort",
    "thread", "template-assert", "virtual-null", "string-null",
)  # fmt: skip
RUST_BUGS = (
    "unwrap-none", "expect-err", "index", "panic", "divide", "refcell", "thread", "null", "hashmap",
    "recursion", "utf8", "closure",
)  # fmt: skip
PY_BUGS = {
    "string-at": "read_header", "memset": "clear", "abort": "shutdown", "self-kill": "crash",
    "load-cache": "load", "load-disk": "load", "thread": "worker (thread)", "signal": "on_usr1 (handler)",
    "process-fault": "process: fault", "process-abort": "process: abort", "call-null": "call_plugin",
}  # fmt: skip
KNOWN_SPLITS = {
    "release: double free": (
        "clang -O2/-O3 inlines the one-line release() into main and keeps no DW_TAG_inlined_subroutine "
        "for it, and no call site names it: the frame is gone from the debug info (gdb shows free <- main too)"
    ),
    "ledger: utf8": (
        "rustc -O2/-O3 inlines decode_name into main and emits the call to the panic with line 0, outside "
        "every inlined scope and with no call-site record: decode_name is gone from the debug info"
    ),
}
"""Splits whose cause is known and no rule can remove (a bug label, without its program, and why);
any other split is unexplained and fails the bench."""
PROGRAMS = {"orders": "c", "stock": "c", "shapes": "c++", "ledger": "rust"}
"""The native programs and their language (orders and stock are one source built twice)."""
SOURCES = {"c": "orders.c", "c++": "shapes.cpp", "rust": "ledger.rs"}
AXES: dict[str, tuple[str, ...]] = {
    "compiler": ("gcc", "clang"),
    "opt": ("O2", "O0", "O3"),
    "link": ("pie", "static"),
    "fp": ("nofp", "fp"),
    "symbols": ("debug", "stripped"),
}
"""The build axes, each with its base value first."""
MORE_UNCLEAN = re.compile(
    r"/|0x[0-9a-f]{7,}|(^|\| )(python3|libpython3[^+ ]*|_ctypes[^+ ]*|libffi[^+ ]*)\+0x"
)
"""A path, an address-sized hex value, or an interpreter's offset in a signature."""


@dataclass(frozen=True)
class Build:
    """One way to build a native program."""

    compiler: str
    opt: str
    link: str
    fp: str
    symbols: str

    @property
    def name(self) -> str:
        """The build's directory name."""
        return "-".join(asdict(self).values())


BASE = Build(*(values[0] for values in AXES.values()))


def builds(extra: int, seed: int = 24) -> list[Build]:
    """The base build, every single change of it, and ``extra`` builds drawn at random."""
    out = [BASE]
    for axis, values in AXES.items():
        out += [replace(BASE, **{axis: v}) for v in values[1:]]
    rng = random.Random(seed)
    everything = [Build(*(rng.choice(v) for v in AXES.values())) for _ in range(200)]
    for b in everything:
        if len(out) >= 1 + sum(len(v) - 1 for v in AXES.values()) + extra:
            break
        if b not in out:
            out.append(b)
    return out


def _flags(b: Build, lang: str) -> list[str]:
    """Compiler and linker flags for build ``b`` of a C or C++ program."""
    flags = [f"-{b.opt}", "-g", "-pthread", "-Wl,--build-id"]
    flags += ["-fno-omit-frame-pointer"] if b.fp == "fp" else ["-fomit-frame-pointer"]
    flags += ["-static"] if b.link == "static" else ["-fPIE", "-pie"]
    if lang == "c++":
        flags.append("-std=c++17")
    return flags


def _rust_flags(b: Build) -> list[str]:
    level = b.opt[1:]
    flags = ["-C", "panic=abort", "-C", f"opt-level={level}", "-g", "-C", "link-arg=-Wl,--build-id"]
    flags += ["-C", f"force-frame-pointers={'yes' if b.fp == 'fp' else 'no'}"]
    if b.link == "static":
        flags += ["-C", "target-feature=+crt-static"]
    return flags


def compile_program(b: Build, program: str, bindir: Path, debugdir: Path) -> Path | None:
    """Build ``program`` under ``b`` into ``bindir`` (None: that compiler is not here or does not apply);
    a stripped build's debug file goes to ``debugdir``."""
    lang = PROGRAMS[program]
    src = BUGS / SOURCES[lang]
    exe = bindir / program
    bindir.mkdir(parents=True, exist_ok=True)
    if lang == "rust":
        if b.compiler != BASE.compiler:
            return None  # one compiler
        rustc = shutil.which("rustc") or str(Path.home() / ".cargo/bin/rustc")
        if not Path(rustc).exists():
            return None
        cmd = [rustc, *_rust_flags(b), "-o", str(exe), str(src)]
    else:
        cc = {
            ("gcc", "c"): "gcc",
            ("gcc", "c++"): "g++",
            ("clang", "c"): "clang",
            ("clang", "c++"): "clang++",
        }
        tool = shutil.which(cc[b.compiler, lang])
        if tool is None:
            return None
        cmd = [tool, *_flags(b, lang), "-o", str(exe), str(src)]
    subprocess.run(cmd, check=True, capture_output=True)
    if b.symbols == "stripped":
        debugdir.mkdir(parents=True, exist_ok=True)
        debug = debugdir / f"{b.name}-{program}.debug"
        subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(debug)], check=True)
        subprocess.run(["strip", "--strip-all", str(exe)], check=True)
    return exe


@dataclass(frozen=True)
class Run:
    """One dump to make: the command, the bug it is, and the value of every axis."""

    argv: tuple[str, ...]
    bug: str
    axes: tuple[tuple[str, str], ...]
    env: tuple[tuple[str, str], ...] = ()


def native_runs(exes: dict[tuple[Build, str], Path]) -> list[Run]:
    """Every native case of every build, with inputs 0 and 1."""
    out = []
    for (b, program), exe in exes.items():
        lang = PROGRAMS[program]
        bugs = C_BUGS if lang == "c" else {k: k for k in (CXX_BUGS if lang == "c++" else RUST_BUGS)}
        for case, bug in bugs.items():
            for n in (0, 1):
                axes = (*asdict(b).items(), ("run", f"input {n}"))
                out.append(Run((str(exe), case, str(n)), f"{program}: {bug}", axes))
    return out


def interpreters() -> list[str]:
    """Two Python interpreters: Debian's (stripped) and one of pyenv's (another version if any)."""
    found = [p for p in ("/usr/bin/python3",) if Path(p).exists()]
    pyenv = Path.home() / ".pyenv" / "versions"
    others = sorted(pyenv.glob("3.1[2-9]*/bin/python3")) + sorted(pyenv.glob("3.1[01]*/bin/python3"))
    return found + [str(p) for p in others[:1]]


def python_runs() -> list[Run]:
    """Every Python case on each interpreter, faulthandler on and off, inputs 0 and 1."""
    out = []
    for python in interpreters():
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for fh in ("off", "on"):
            flags = ("-X", "faulthandler") if fh == "on" else ()
            for case, bug in PY_BUGS.items():
                for n in (0, 1):
                    axes = (("python", version), ("faulthandler", fh), ("run", f"input {n}"))
                    argv = (python, *flags, str(BUGS / "jobs.py"), case, str(n))
                    out.append(Run(argv, f"jobs: {bug}", axes, (("PYTHONFAULTHANDLER", ""),)))
    return out


def make_dump(run: Run, where: Path) -> Path:
    """Run ``run`` in ``where`` (a second input runs one directory deeper) and return the core."""
    cwd = where / "deeper" if dict(run.axes)["run"] == "input 1" else where
    cwd.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "PYTHONFAULTHANDLER")}
    env.update({"LC_ALL": "C", **{k: v for k, v in run.env if v}})
    proc = subprocess.Popen(
        run.argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: (unlimited_cores(), os.setsid()),
    )
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    core = cwd / "core"
    if not core.exists():
        raise RuntimeError(f"{' '.join(run.argv)}: exit {proc.returncode}, no core in {cwd}")
    return core


@contextlib.contextmanager
def served(debugdir: Path, root: Path) -> Iterator[dict[str, str]]:
    """The environment that points debuginfod clients at a loopback server of ``debugdir``."""
    files = sorted(debugdir.glob("*.debug"))
    if not files:
        yield {}
        return
    if shutil.which("debuginfod") is None:
        raise SystemExit(
            "bench/bucket_matrix.py: stripped builds need elfutils' debuginfod (apt install debuginfod)"
        )
    with debuginfod_server(debugdir, root / "debuginfod.sqlite", build_id(files[-1]), 120) as url:
        yield {"DEBUGINFOD_URLS": url, "XDG_CACHE_HOME": str(root / "cache")}


def split_cause(bug: str) -> str | None:
    """The known cause of a bug's split (``KNOWN_SPLITS``), or None."""
    return KNOWN_SPLITS.get(bug.split(": ", 1)[1] if bug.split(": ", 1)[0] in ("orders", "stock") else bug)


def by_axis(bucket_of: dict[str, str], runs: dict[str, Run]) -> dict[str, dict[str, Any]]:
    """Per axis: purity and completeness over each value's dumps, and the share of (bug, other axes)
    groups that one bucket holds across the axis's values."""
    out: dict[str, dict[str, Any]] = {}
    names = sorted({a for r in runs.values() for a, _ in r.axes})
    for axis in names:
        values: dict[str, dict[str, str]] = defaultdict(dict)
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        for path, run in runs.items():
            axes = dict(run.axes)
            if axis not in axes:
                continue
            values[axes[axis]][path] = run.bug
            rest = tuple(sorted((a, v) for a, v in axes.items() if a != axis))
            groups[run.bug, rest][axes[axis]].add(bucket_of.get(path, "(not stored)"))
        joined = [g for g in groups.values() if len(g) > 1]
        whole = [g for g in joined if len(set().union(*g.values())) == 1]
        splits = sorted(
            {
                f"{bug} [{', '.join(f'{a}={v}' for a, v in rest)}]"
                for (bug, rest), g in groups.items()
                if g in joined and g not in whole
            }
        )
        out[axis] = {
            "values": {
                v: {k: s[k] for k in ("dumps", "bugs", "purity", "completeness")}
                for v, dumps in values.items()
                for s in [score(bucket_of, dumps)]
            },
            "joined": len(whole) / len(joined) if joined else None,
            "groups": len(joined),
            "splits": splits,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--random",
        type=int,
        default=4,
        help="Builds drawn at random besides the base and its single changes (default 4).",
    )
    parser.add_argument("--only", default="c,c++,rust,python", help="Languages to run (default: all).")
    parser.add_argument("--workers", type=int, default=2, help="triage ingest --workers (default 2).")
    parser.add_argument("--min-completeness", type=float, default=0.95)
    parser.add_argument("--keep", metavar="DIR", help="Make everything in DIR and keep it.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    if Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core":
        print(
            "bench/bucket_matrix.py: needs core_pattern 'core' (sysctl kernel.core_pattern=core)",
            file=sys.stderr,
        )
        return 2
    langs = set(args.only.split(","))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nmf-matrix-"))
    try:
        t0 = time.monotonic()
        exes: dict[tuple[Build, str], Path] = {}
        for b in builds(args.random):
            for program, lang in PROGRAMS.items():
                if lang in langs:
                    exe = compile_program(b, program, root / "bin" / b.name, root / "debug")
                    if exe is not None:
                        exes[b, program] = exe
        planned = native_runs(exes) + (python_runs() if "python" in langs else [])
        built = time.monotonic() - t0
        runs: dict[str, Run] = {}
        no_core = []
        for i, run in enumerate(planned):
            try:
                runs[str(make_dump(run, root / "dumps" / f"{i:05d}"))] = run
            except RuntimeError as e:
                no_core.append(str(e))
        made = time.monotonic() - t0 - built
        db = str(root / "matrix.db")
        with served(root / "debug", root) as env:
            os.environ.update(env)
            ingest = nmf(
                "triage",
                "ingest",
                "-r",
                "--debuginfod",
                "--workers",
                str(args.workers),
                "--db",
                db,
                str(root / "dumps"),
            )
        rows, disagree = stored(db)
        bucket_of = {p: str(b) if s == "ok" else f"(failed: {e})" for p, s, b, e in rows}
        truth = {p: r.bug for p, r in runs.items()}
        result = score(bucket_of, truth)
        result["unclean"] = sorted(
            b
            for b in set(bucket_of.values())
            if UNCLEAN.search(s := b.split(":", 2)[-1]) or MORE_UNCLEAN.search(s)
        )
        result.update(
            unexplained_splits=sorted(bug for bug in result["split"] if split_cause(bug) is None),
            builds=sorted({b.name for b, _ in exes}),
            axes=by_axis(bucket_of, runs),
            analyze_disagrees=disagree,
            failed=sorted({b for b in bucket_of.values() if b.startswith("(failed")}),
            no_core=no_core,
            seconds_to_build=round(built, 1),
            seconds_to_make=round(made, 1),
            seconds_to_ingest=ingest["seconds"],
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    ok = (
        not result["no_core"]
        and result["purity"] == 1.0
        and result["completeness"] >= args.min_completeness
        and not result["analyze_disagrees"]
        and not result["unexplained_splits"]
        and not result["unclean"]
        and not result["failed"]
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if ok else 1
    print(f"{len(result['builds'])} builds: {', '.join(result['builds'])}")
    for axis, a in result["axes"].items():
        joined = "n/a" if a["joined"] is None else f"{100 * a['joined']:.1f}% of {a['groups']}"
        per = "; ".join(
            f"{v}: purity {100 * s['purity']:.1f}% completeness {100 * s['completeness']:.1f}% ({s['dumps']} dumps)"
            for v, s in a["values"].items()
        )
        print(f"{axis:<13} joined {joined:<14} {per}")
    print(
        f"\n{result['dumps']} dumps of {result['bugs']} bugs in {result['buckets']} buckets: "
        f"purity {100 * result['purity']:.1f}%, completeness {100 * result['completeness']:.1f}%, "
        f"unclean {len(result['unclean'])}, analyze disagrees {len(result['analyze_disagrees'])}, "
        f"failed {len(result['failed'])} (built in {result['seconds_to_build']} s, dumped in "
        f"{result['seconds_to_make']} s, ingested in {result['seconds_to_ingest']} s)"
    )
    for bucket, bugs in result["merged"].items():
        print(f"MERGED {bucket}: {bugs}")
    for bug, buckets in result["split"].items():
        print(f"SPLIT {bug} ({split_cause(bug) or 'UNEXPLAINED'}):")
        for b in buckets:
            print(f"    {b}")
    for axis, a in result["axes"].items():
        for s in a["splits"]:
            print(f"SPLIT BY {axis}: {s}")
    for bucket in result["unclean"]:
        print(f"UNCLEAN {bucket}")
    for f in result["failed"]:
        print(f"FAILED {f}")
    for f in result["no_core"]:
        print(f"NO CORE {f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
