"""Frame matrix: every frame of every thread of generated crashing programs, against gdb and eu-stack.

The programs are ordinary code in ``bench/bugs/``, one crash per first argument:

- ``frames.c``: crashes shaped for stack walkers: recursion to a set depth and a runaway one (a stack
  overflow of tens of thousands of frames), alloca and variable-length arrays, a longjmp, a fault
  inside a SIGSEGV handler on the thread's stack and on a sigaltstack, a call through NULL and to an
  unmapped address, a qsort callback, three blocked threads, abort;
- ``orders.c`` (sixteen C bugs), ``shapes.cpp`` (C++ exceptions, std::thread, virtual calls) and
  ``ledger.rs`` (Rust panics, a thread, a stack overflow), as ``bench/bucket_matrix.py`` uses them.

Each is built under a matrix: compiler (gcc, clang; rustc for Rust), -O0/-O2/-O3, PIE, non-PIE and
static, with and without frame pointers; ``--cross`` adds frames.c built for aarch64 (dynamic and
static), 32-bit ARM (armhf: Thumb-2), ppc64le and s390x (static) with Debian's cross compilers, run
under qemu-user (riscv64 too is built, but qemu-riscv64 writes no core: it is left out). The default is the base build (gcc -O2 PIE, no frame pointers)
and each single change of it; ``--full`` is every combination.

For every core, ``notmyfault stack --all --json`` is compared with gdb (``tests/gdb_stacks.py``,
``backtrace past-main`` and ``past-entry`` on, so that gdb walks as far as the unwind information
goes, as eu-stack and we do) and with ``eu-stack``, thread by thread, frame by frame:

- the **physical** frames (gdb's inline and tail-call frames and ours left out: they share a pc);
- a frame agrees when it has the oracle's pc at the same position (a caller's pc is its return
  address for all three); frames one side has and the other lacks count against us;
- **names**: where the pcs agree and the oracle names the function, the names agree (glibc's
  aliases such as ``__GI___libc_write``/``write`` compared bare).

A frame is **wrong** where both list one at that position with different pcs (a walk that stops
early misses frames but gets none wrong). Prints the agreement per oracle, per axis value and per case, with every disagreeing stack
(``--show``); exits 1 when agreement with gdb is under ``--min`` (0.99).

Run: python bench/frame_matrix.py [--full] [--cross] [--only c,c++,rust] [--show] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.coretools import gdb_stacks, unlimited_cores  # noqa: E402

BUGS = HERE / "bugs"
SOURCES = {"frames": "frames.c", "orders": "orders.c", "shapes": "shapes.cpp", "ledger": "ledger.rs"}
LANGUAGE = {"frames": "c", "orders": "c", "shapes": "c++", "ledger": "rust"}
CASES = {
    "frames": (
        "nest", "runaway", "alloca", "vla", "longjmp", "handler", "altstack", "call-null", "call-wild",
        "qsort", "threads", "abort",
    ),
    "orders": (
        "store-restock", "apply-null", "apply-limit", "thread", "qsort", "signal", "strlen", "recursion",
        "divide", "abort", "double-free", "trap", "rodata", "call-null", "wild", "heap-overflow", "atexit",
    ),
    "shapes": (
        "throw", "vector-at", "map-at", "null-this", "double-delete", "optional", "noexcept", "lambda-sort",
        "thread", "template-assert", "virtual-null", "string-null",
    ),
    "ledger": (
        "unwrap-none", "expect-err", "index", "panic", "divide", "refcell", "thread", "null", "hashmap",
        "recursion", "utf8", "closure",
    ),
}  # fmt: skip
AXES: dict[str, tuple[str, ...]] = {
    "compiler": ("gcc", "clang"),
    "opt": ("O2", "O0", "O3"),
    "link": ("pie", "nopie", "static"),
    "fp": ("nofp", "fp"),
    "arch": ("x86_64", "aarch64", "arm", "ppc64le", "s390x"),
}
"""The build axes, each with its base value first."""
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
CROSS = {
    "aarch64": ("aarch64-linux-gnu-gcc", "qemu-aarch64"),
    "arm": ("arm-linux-gnueabihf-gcc", "qemu-arm"),
    "ppc64le": ("powerpc64le-linux-gnu-gcc", "qemu-ppc64le"),
    "s390x": ("s390x-linux-gnu-gcc", "qemu-s390x"),
}
"""Each other architecture's cross compiler and qemu-user."""
ALIASES = re.compile(r"^_*(GI_+)?(libc_)?_*")
CLONES = re.compile(r"(\.(part|constprop|isra|cold|lto_priv)(\.\d+)?|_impl)+$")
TRAMPOLINE = "<signal handler called>"


@dataclass(frozen=True)
class Build:
    """One way to build a program."""

    compiler: str
    opt: str
    link: str
    fp: str
    arch: str = "x86_64"

    @property
    def name(self) -> str:
        """The build's directory name."""
        return "-".join(asdict(self).values())


BASE = Build("gcc", "O2", "pie", "nofp")


QUICK = (BASE, Build("clang", "O0", "static", "fp"))
"""The builds of the short form (--quick: frames.c only), the base and one that changes every axis."""


def builds(full: bool, cross: bool, quick: bool = False) -> list[Build]:
    """The base build and each single change of it, or every combination; aarch64 builds with --cross."""
    native = {k: v for k, v in AXES.items() if k != "arch"}
    if quick:
        out = list(QUICK)
    elif full:
        out = [Build(*combo) for combo in itertools.product(*native.values())]
    else:
        out = [BASE] + [replace(BASE, **{axis: v}) for axis, values in native.items() for v in values[1:]]
    if cross:
        out += [replace(BASE, arch="aarch64"), replace(BASE, arch="aarch64", link="static")]
        out += [replace(BASE, arch=a, link="static") for a in ("arm", "ppc64le", "s390x")]
    return out


def compile_program(b: Build, program: str, bindir: Path) -> Path | None:
    """Build ``program`` under ``b`` (None: its compiler is not here, or the build does not apply)."""
    lang = LANGUAGE[program]
    src = BUGS / SOURCES[program]
    exe = bindir / program
    bindir.mkdir(parents=True, exist_ok=True)
    if lang == "rust":
        rustc = shutil.which("rustc") or str(Path.home() / ".cargo/bin/rustc")
        if b.compiler != "gcc" or b.arch != "x86_64" or not Path(rustc).exists():
            return None
        cmd = [rustc, "-C", "panic=abort", "-C", f"opt-level={b.opt[1:]}", "-g"]
        cmd += ["-C", f"force-frame-pointers={'yes' if b.fp == 'fp' else 'no'}"]
        if b.link == "static":
            cmd += ["-C", "target-feature=+crt-static"]
        elif b.link == "nopie":
            cmd += ["-C", "relocation-model=static"]
        cmd += ["-o", str(exe), str(src)]
    else:
        if b.arch != "x86_64":
            if lang != "c" or b.compiler != "gcc":
                return None
            tool = shutil.which(CROSS[b.arch][0])
        else:
            tool = shutil.which(
                {"gcc": "gcc", "clang": "clang"}[b.compiler] + ("++" if lang == "c++" else "")
            )
            if b.compiler == "gcc" and lang == "c++":
                tool = shutil.which("g++")
        if tool is None:
            return None
        flags = [f"-{b.opt}", "-g", "-pthread", "-Wl,--build-id", "-w"]
        flags += ["-fno-omit-frame-pointer"] if b.fp == "fp" else ["-fomit-frame-pointer"]
        flags += {"pie": ["-fPIE", "-pie"], "nopie": ["-fno-pie", "-no-pie"], "static": ["-static"]}[b.link]
        if lang == "c++":
            flags.append("-std=c++17")
        cmd = [tool, *flags, "-o", str(exe), str(src)]
    subprocess.run(cmd, check=True, capture_output=True)
    return exe


STACK_LIMIT = 1 << 20
"""RLIMIT_STACK of the crashing programs: a runaway recursion overflows 1 MiB in some 10,000
frames, which gdb walks in a second (87,323 frames of an 8 MiB stack at -O0 took its bt 9.8 s)."""


def _child_limits() -> None:
    """In the child: cores of any size, a STACK_LIMIT stack, a session of its own."""
    import resource

    unlimited_cores()
    resource.setrlimit(resource.RLIMIT_STACK, (STACK_LIMIT, STACK_LIMIT))
    os.setsid()


def make_core(argv: list[str], cwd: Path, arch: str) -> Path | None:
    """Run ``argv`` in ``cwd`` (under qemu-user for another architecture's build) and return its core
    (qemu's own, not the core of qemu that the kernel writes after it)."""
    cwd.mkdir(parents=True, exist_ok=True)
    if arch != "x86_64":
        sysroot = ["-L", AARCH64_SYSROOT] if arch == "aarch64" else []
        argv = [CROSS[arch][1], "-s", str(STACK_LIMIT), *sysroot, *argv]  # qemu's guest stack: its own
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update(LC_ALL="C", RUST_BACKTRACE="0")
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_child_limits,
    )
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    cores = sorted(
        p for p in cwd.iterdir() if (p.name == "core" and arch == "x86_64") or p.name.endswith(".core")
    )
    return cores[0] if cores else None


def ours(core: Path, exe: Path, sysroot: str | None) -> dict[int, list[dict[str, Any]]]:
    """Our physical frames per thread: pc and name."""
    cmd = [
        str(REPO / ".venv/bin/notmyfault"),
        "stack",
        "--all",
        "--json",
        "--max-frames",
        "0",
        "--exe",
        str(exe),
        str(core),
    ]
    if sysroot:
        cmd[-1:-1] = ["--sysroot", sysroot]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"notmyfault stack {core}: exit {out.returncode}: {out.stderr.strip()[-300:]}")
    data = json.loads(out.stdout)
    return {
        t["tid"]: [
            {"pc": int(f["pc"], 16), "name": f["function"], "how": f["trust"]}
            for f in t["frames"]
            if f["trust"] not in ("inline", "tail call")
        ]
        for t in data["threads"]
    }


def gdb(core: Path, exe: Path, arch: str) -> dict[int, list[dict[str, Any]]]:
    """gdb's physical frames per thread (gdb-multiarch's for another architecture); an outermost
    frame at pc 0 is gdb's end of the stack (powerpc's back chain ends so), not a frame; so is a
    frame at pc 0 right after a signal trampoline (gdb-multiarch reads no signal frame of
    qemu-arm's: what it lists past it is not the interrupted code)."""
    offset = pie_offset(core, exe) if arch != "x86_64" else None
    stacks = gdb_stacks(core, str(exe), None if arch == "x86_64" else shutil.which("gdb-multiarch"), offset)
    out: dict[int, list[dict[str, Any]]] = {}
    for t in stacks:
        frames: list[dict[str, Any]] = []
        listed = t["frames"]  # type: ignore[index]
        for k, f in enumerate(listed):  # type: ignore[arg-type]
            if f["kind"] in ("inline", "tailcall"):
                continue
            if f["pc"] == 0 and (k == len(listed) - 1 or (frames and frames[-1]["name"] == TRAMPOLINE)):  # type: ignore[arg-type]
                break
            if offset is not None and frames and frames[-1]["name"] is None:
                break  # gdb unwound past a frame in no file it loaded (it reads no link map here): no oracle
            frames.append({"pc": f["pc"], "name": TRAMPOLINE if f["kind"] == "sigtramp" else f["name"]})
        out[int(t["tid"])] = frames  # type: ignore[call-overload]
    return out


def pie_offset(core: Path, exe: Path) -> int | None:
    """Where qemu-user loaded a PIE executable (AT_ENTRY less the file's entry point), for gdb: it
    places a PIE by NT_FILE, which qemu's cores lack, and without it names and unwinds nothing of
    the program. None for a fixed-address executable."""
    header = subprocess.run(["readelf", "-hW", str(exe)], capture_output=True, text=True, check=False).stdout
    if "DYN (" not in header:
        return None
    notes = subprocess.run(
        ["eu-readelf", "-n", str(core)], capture_output=True, text=True, check=False
    ).stdout
    entry = re.search(r"Entry point address:\s+0x([0-9a-f]+)", header)
    at_entry = re.search(r"^\s+ENTRY: 0x([0-9a-f]+)", notes, re.M)
    if entry is None or at_entry is None:
        return None
    return int(at_entry.group(1), 16) - int(entry.group(1), 16)


def eu_stack(core: Path, exe: Path, sysroot: str | None) -> dict[int, list[dict[str, Any]]]:
    """eu-stack's frames per thread (it prints no inline frames unless asked)."""
    cmd = ["eu-stack", "-n", "0", "--core", str(core), "-e", str(exe)]
    if sysroot:
        cmd += ["--sysroot", sysroot]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    threads: dict[int, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for line in out.stdout.splitlines():
        if m := re.match(r"TID (\d+):", line):
            current = threads.setdefault(int(m.group(1)), [])
        elif m := re.match(r"#\d+\s+0x([0-9a-f]+)\s*(?:- 1)?\s*(\S+)?", line):
            current.append({"pc": int(m.group(1), 16), "name": m.group(2)})
    return threads


def bare(name: str | None) -> str:
    """A function's name without glibc's alias prefixes and suffixes, symbol versions and GCC's clone
    suffixes (``__GI___qsort_r``, ``qsort_r``; ``__libc_start_main_impl``,
    ``__libc_start_main@@GLIBC_2.34``; ``msort_with_tmp.part.0``, ``msort_with_tmp.part``): one
    address, several names, each tool picks one."""
    if name == "__restore_rt":  # the signal trampoline's symbol, where there is one
        return TRAMPOLINE
    return CLONES.sub("", ALIASES.sub("", _without_parameters((name or "").split("@", 1)[0])))


def _without_parameters(name: str) -> str:
    """A C++ name without its parameter list (``std::terminate()``: gdb gives it for a symbol
    without debug information, the bare name where DWARF names it)."""
    name = name.removesuffix(" const")
    if not name.endswith(")"):
        return name
    depth = 0
    for i in range(len(name) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(name[i], 0)
        if depth == 0:
            return name[:i] if i > 0 else name
    return name


def compare(mine: dict[int, list[dict[str, Any]]], theirs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Frame and name agreement of one core: counts, and the first difference of each thread."""
    frames = agree = names = names_agree = wrong = 0
    diffs = []
    for tid in sorted(set(mine) | set(theirs)):
        a, b = mine.get(tid, []), theirs.get(tid, [])
        n = max(len(a), len(b))
        frames += n
        first = None
        for i in range(n):
            ok = i < len(a) and i < len(b) and a[i]["pc"] == b[i]["pc"]
            agree += ok
            wrong += not ok and i < len(a) and i < len(b)  # a frame both list, at another pc
            if not ok and first is None:
                first = i
            if ok and b[i]["name"]:
                names += 1
                if bare(a[i]["name"]) == bare(b[i]["name"]):
                    names_agree += 1
                elif first is None:
                    first = i
        if first is not None:
            show = slice(max(0, first - 1), first + 3)
            diffs.append(
                {
                    "tid": tid,
                    "at": first,
                    "ours": [f"{f['pc']:#x} {f['name']} ({f.get('how')})" for f in a[show]]
                    + [f"({len(a)} frames)"],
                    "theirs": [f"{f['pc']:#x} {f['name']}" for f in b[show]] + [f"({len(b)} frames)"],
                }
            )
    return {
        "frames": frames,
        "agree": agree,
        "wrong": wrong,
        "names": names,
        "names_agree": names_agree,
        "diffs": diffs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="Every combination of the build axes.")
    parser.add_argument("--cross", action="store_true", help="Add aarch64 builds run under qemu-aarch64.")
    parser.add_argument("--arch", default="", help="Only builds for these architectures (comma-separated).")
    parser.add_argument("--quick", action="store_true", help="The short form: frames.c, two builds.")
    parser.add_argument("--only", default="c,c++,rust", help="Languages to build (default: all).")
    parser.add_argument("--cases", default="", help="Only these cases (comma-separated).")
    parser.add_argument("--min", type=float, default=0.99, help="Least frame agreement with gdb (0.99).")
    parser.add_argument("--show", action="store_true", help="Print every disagreeing stack.")
    parser.add_argument("--keep", metavar="DIR", help="Make everything in DIR and keep it.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    languages = set(args.only.split(","))
    wanted = set(filter(None, args.cases.split(",")))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="frame-matrix-"))
    started = time.monotonic()
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_axis: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_case: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    shown: list[dict[str, Any]] = []
    missing: list[str] = []
    oracle_failures: list[str] = []
    cores = 0
    try:
        arches = set(filter(None, args.arch.split(",")))
        for b in builds(args.full, args.cross, args.quick):
            if arches and b.arch not in arches:
                continue
            for program, lang in LANGUAGE.items():
                if lang not in languages or (args.quick and program != "frames"):
                    continue
                exe = compile_program(b, program, root / b.name)
                if exe is None:
                    continue
                sysroot = AARCH64_SYSROOT if b.arch == "aarch64" and b.link != "static" else None
                for case in CASES[program]:
                    if wanted and case not in wanted:
                        continue
                    core = make_core([str(exe), case, "0"], root / b.name / f"{program}-{case}", b.arch)
                    label = f"{program} {case} [{b.name}]"
                    if core is None:
                        missing.append(label)
                        continue
                    cores += 1
                    mine = ours(core, exe, sysroot)
                    oracles = {"eu-stack": eu_stack(core, exe, sysroot)}
                    wants_gdb = b.arch == "x86_64" or bool(shutil.which("gdb-multiarch"))
                    if wants_gdb:
                        try:
                            oracles["gdb"] = gdb(core, exe, b.arch)
                        except (AssertionError, subprocess.TimeoutExpired) as e:  # gdb gave no stacks
                            oracle_failures.append(f"gdb: {label}: {str(e).splitlines()[0][:200]}")
                    # a core gdb gave no stacks for is listed as such, not judged by eu-stack alone
                    judge = "gdb" if wants_gdb else "eu-stack"
                    for oracle, theirs in oracles.items():
                        result = compare(mine, theirs)
                        for key in ("frames", "agree", "wrong", "names", "names_agree"):
                            totals[oracle][key] += result[key]
                            if oracle == judge:
                                for axis, value in asdict(b).items():
                                    per_axis[f"{axis}={value}"][key] += result[key]
                                per_case[f"{program} {case}"][key] += result[key]
                        if result["diffs"]:
                            shown.append({"core": label, "oracle": oracle, "diffs": result["diffs"]})
                    if not args.keep:
                        core.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    def share(d: dict[str, int], a: str = "agree", n: str = "frames") -> float:
        return d[a] / d[n] if d[n] else 1.0

    gdb_share = share(totals["gdb"]) if "gdb" in totals else share(totals["eu-stack"])
    summary = {
        "cores": cores,
        "seconds": round(time.monotonic() - started, 1),
        "oracles": {
            o: {
                **t,
                "frame_agreement": round(share(t), 4),
                "name_agreement": round(share(t, "names_agree", "names"), 4),
            }
            for o, t in totals.items()
        },
        "per_axis": {k: round(share(v), 4) for k, v in sorted(per_axis.items())},
        "per_arch": {
            k.split("=", 1)[1]: dict(v) for k, v in sorted(per_axis.items()) if k.startswith("arch=")
        },
        "per_case": {k: round(share(v), 4) for k, v in sorted(per_case.items()) if share(v) < 1.0},
        "missing": missing,
        "oracle_failures": oracle_failures,
        "disagreements": shown,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"frame matrix: {cores} cores in {summary['seconds']} s")
        for o, t in summary["oracles"].items():
            print(
                f"  {o:9} frames {t['agree']}/{t['frames']} ({t['frame_agreement']:.2%}), "
                f"names {t['names_agree']}/{t['names']} ({t['name_agreement']:.2%})"
            )
        print("  per axis (gdb):", ", ".join(f"{k} {v:.2%}" for k, v in summary["per_axis"].items()))
        for k, v in summary["per_case"].items():
            print(f"  below 100%: {k} {v:.2%}")
        for m in missing:
            print(f"  no core: {m}")
        for m in oracle_failures:
            print(f"  oracle failed: {m}")
        if args.show:
            for s in shown:
                for d in s["diffs"]:
                    print(f"\n{s['core']} vs {s['oracle']}, thread {d['tid']}, frame {d['at']}:")
                    print("  ours:   " + " | ".join(d["ours"]))
                    print("  theirs: " + " | ".join(d["theirs"]))
    return 0 if gdb_share >= args.min and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
