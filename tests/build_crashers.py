"""Build tests/fixtures/crashers.c and crash it many times: a fleet of small real cores for triage.

    python tests/build_crashers.py OUTDIR [RUNS]   # OUTDIR/bin/crashers, OUTDIR/dumps/BUG-N/core

Each bug runs RUNS times with N = 1..RUNS (the frames above the bug vary with N). Cores are
written by the kernel under the plain 'core' pattern, one working directory per run.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "fixtures" / "crashers.c"
BUGS = {
    "null-read": ("NULL_POINTER_READ", "parse_header"),
    "null-write": ("NULL_POINTER_WRITE", "parse_header"),
    "divide": ("DIVIDE_BY_ZERO", "average"),
    "assert": ("ASSERTION_FAILURE", "check_invariant"),
    "recurse": ("STACK_OVERFLOW", "walk_tree"),
    "double-free": ("DOUBLE_FREE", "free | release_buffer"),
    "use-after-free": ("INVALID_MEMORY_READ", "use_session"),
}
"""Each bug with the crash class and signature its dumps must get (the program: crashers)."""

CATALOG_BUCKETS = {
    "high-irql": "FAULT:python3:myfault_high_irql",
    "buffer-overflow": "ABORT:python3:free | myfault_buffer_overflow",
    "code-overwrite": "FAULT:python3:myfault_code_overwrite",
    "stack-trash": "FAULT:python3:?? | myfault_py_do_bug",
    "null-deref": "FAULT:python3:myfault_null_deref",
    "stack-overflow": "FAULT:python3:myfault_stack_overflow",
    "breakpoint": "FAULT:python3:myfault_breakpoint",
    "double-free": "ABORT:python3:free | myfault_double_free",
    "use-after-free": "FAULT:python3:myfault_use_after_free",
    "abort": "ABORT:python3:myfault_abort",
    "jump-to-null": "FAULT:python3:?? | myfault_jump_to_null",
}
"""The crash catalog's types and the bucket each one's dumps must land in (the program: python3)."""


def _unlimited() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def build(outdir: Path) -> Path:
    """Compile the crashers (with frame pointers and debug info) into ``outdir``/bin."""
    exe = outdir / "bin" / "crashers"
    exe.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "gcc",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fno-optimize-sibling-calls",
            "-o",
            str(exe),
            str(SOURCE),
        ],
        check=True,
    )
    return exe


def crash_all(exe: Path, outdir: Path, runs: int) -> dict[str, list[Path]]:
    """Run every bug ``runs`` times; return {bug: [core, ...]}."""
    out: dict[str, list[Path]] = {}
    for bug in BUGS:
        for n in range(1, runs + 1):
            run = outdir / f"{bug}-{n}"
            run.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(
                [str(exe), bug, str(n)], cwd=run, preexec_fn=_unlimited, capture_output=True, check=False
            )
            core = run / "core"
            if r.returncode >= 0 or not core.exists():
                raise RuntimeError(
                    f"{bug} {n}: exit {r.returncode}, no core in {run} (core_pattern must be 'core')"
                )
            out.setdefault(bug, []).append(core)
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python tests/build_crashers.py OUTDIR [RUNS]")
    root = Path(sys.argv[1])
    cores = crash_all(build(root), root / "dumps", int(sys.argv[2]) if len(sys.argv) == 3 else 10)
    print(f"{sum(len(c) for c in cores.values())} cores under {root / 'dumps'}")
