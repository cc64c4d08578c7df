"""The signature rules of version 4 on real crashes built several ways: one bug, one bucket, across
optimisation levels (inlined frames named in full from DWARF), C++ and Rust names, two Python
interpreters with and without faulthandler; and ``triage explain``, which says why.

Each program is compiled here and crashed in a child process; the kernel writes the core.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from notmyfault.analysis.signature import DEFAULT_RULES, SignFrame, collapse_name, failure_kind, signature
from tests.conftest import run_json, run_nmf

CORE_PATTERN_IS_CORE = Path("/proc/sys/kernel/core_pattern").read_text().strip() == "core"
needs_cores = pytest.mark.skipif(not CORE_PATTERN_IS_CORE, reason="needs the plain 'core' pattern")

CXX = r"""
#include <map>
#include <string>
#include <cstdio>
struct Report {
  std::map<std::string, int> totals;
  int total(const std::string &k) const { return totals.at(k); }
};
struct Order { int qty; };
__attribute__((noinline)) void bump(Order *x, int d) { x->qty += d; }
int main(int argc, char **argv) {
  Report r; r.totals["a"] = 1;
  if (argc > 1) { bump(argc > 5 ? &(Order &)r : nullptr, argc); return 0; }
  return r.total(argv[0]);
}
"""
RUST = r"""
fn find(v: &[i32], k: i32) -> usize { v.iter().position(|&x| x == k).unwrap() }
fn main() {
    let v = vec![1, 2, 3];
    let args: Vec<String> = std::env::args().collect();
    println!("{}", find(&v, 9 + args.len() as i32));
}
"""
PY = """
import ctypes, sys
def parse(n):
    return ctypes.string_at(n)
parse(int(sys.argv[1]))
"""


def _crash(argv: list[str], where: Path, env: dict[str, str] | None = None) -> Path:
    where.mkdir(parents=True)

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    proc = subprocess.Popen(
        argv, cwd=where, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limits
    )
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    core = where / "core"
    assert core.exists(), f"{argv}: exit {proc.returncode}, no core"
    return core


def _bucket(core: Path) -> str:
    r, out = run_json("analyze", str(core), timeout=300)
    assert r.returncode == 0, r.stderr
    return str(out["bucket"])


@needs_cores
@pytest.mark.skipif(not shutil.which("g++"), reason="no g++")
def test_cxx_one_bug_one_bucket_at_O0_and_O2(tmp_path: Path) -> None:
    src = tmp_path / "report.cpp"
    src.write_text(CXX)
    buckets: dict[str, set[str]] = {"throw": set(), "bump": set()}
    for opt in ("-O0", "-O2"):
        exe = tmp_path / "report"
        subprocess.run(["g++", opt, "-g", "-o", str(exe), str(src)], check=True)
        buckets["throw"].add(_bucket(_crash([str(exe)], tmp_path / f"throw{opt}")))
        buckets["bump"].add(_bucket(_crash([str(exe), "x"], tmp_path / f"bump{opt}")))
    # -O2 inlines map::at and Report::total: DWARF's bare names (at, total) are qualified
    assert buckets["throw"] == {"ABORT:report:__cxa_throw | std::map<T>::at | Report::total"}
    # a read-modify-write: one instruction kind at -O0, another at -O2; one kind of failure
    assert buckets["bump"] == {"FAULT:report:bump"}


@needs_cores
@pytest.mark.skipif(not shutil.which("rustc"), reason="no rustc")
def test_rust_panics_are_bucketed_by_the_programs_frame(tmp_path: Path) -> None:
    src = tmp_path / "finder.rs"
    src.write_text(RUST)
    seen = set()
    for opt in ("-Copt-level=0", "-Copt-level=2"):
        exe = tmp_path / "finder"
        subprocess.run(["rustc", "-C", "panic=abort", "-g", opt, "-o", str(exe), str(src)], check=True)
        seen.add(_bucket(_crash([str(exe)], tmp_path / opt)))
    # the panic machinery (std::panicking, core::panicking, unwrap_failed, abort_internal) is skipped,
    # and at -O2 the inlined find is found in DWARF (drgn shows no inlined frame in Rust's units)
    assert seen == {"ABORT:finder:finder::find"}


@needs_cores
def test_python_bug_one_bucket_on_two_interpreters_with_and_without_faulthandler(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(PY)
    interpreters = {os.path.realpath(p) for p in ("/usr/bin/python3", sys.executable) if os.path.exists(p)}
    seen: dict[str, str] = {}
    for n, python in enumerate(sorted(interpreters)):
        for fh in ("", "1"):
            for arg in ("0", "4096"):  # NULL_POINTER_READ and INVALID_MEMORY_READ: one bug
                env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
                if fh:
                    env["PYTHONFAULTHANDLER"] = fh
                core = _crash([python, str(script), arg], tmp_path / f"{n}-{fh or 'off'}-{arg}", env)
                seen[f"{python} fh={fh} {arg}"] = _bucket(core)
    assert set(seen.values()) == {"FAULT:python3:strlen | ctypes.string_at | parse"}, seen


@needs_cores
def test_a_reraised_fault_is_the_fault(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(PY)
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    core = _crash([sys.executable, str(script), "0"], tmp_path / "fh", env)
    _r, out = run_json("analyze", str(core), timeout=300)
    assert out["crash_class"] == "NULL_POINTER_READ"  # not KILLED_BY_SIGNAL(SIGSEGV)
    assert any("re-raises the fault" in n for n in out["notes"])
    page = run_nmf("analyze", str(core)).stdout
    assert "libc!__strlen" in page.split("FAULTING_IP:", 1)[1].splitlines()[1]


@needs_cores
def test_explain_says_why_for_every_frame(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(PY)
    core = _crash([sys.executable, str(script), "0"], tmp_path / "x")
    r, out = run_json("triage", "explain", str(core), timeout=300)
    assert r.returncode == 0, r.stderr
    assert out["kind"] == "triage-explain"
    assert out["bucket"] == "FAULT:python3:strlen | ctypes.string_at | parse" == _bucket(core)
    kept = [f["token"] for f in out["frames"] if f["verdict"] == "kept"]
    assert kept == ["strlen", "ctypes.string_at", "parse"]
    strlen = next(f for f in out["frames"] if f["token"] == "strlen")
    assert strlen["function"].startswith("__strlen_")
    assert "normalised" in strlen["rule"]
    assert any(f["verdict"] == "skipped" and "language runtime" in f["rule"] for f in out["frames"])
    end = next(i for i, f in enumerate(out["frames"]) if f["token"] == "parse")
    assert all(f["verdict"] == "unread" for f in out["frames"][end + 1 :])
    text = run_nmf("triage", "explain", str(core)).stdout
    assert "BUCKET_ID: FAULT:python3:strlen | ctypes.string_at | parse" in text
    bad = run_nmf("triage", "explain", str(tmp_path / "nothing"))
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr


def test_names_collapse_to_what_every_build_shares() -> None:
    name = DEFAULT_RULES.name
    full = (
        "std::map<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char>>, int>"
        "::at(std::__cxx11::basic_string<char> const&) const"
    )
    assert name(full) == "std::map<T>::at"
    assert name("parser::Reader<int>::read(int)") == "parser::Reader<T>::read"
    assert name("foo(int) (.cold)") == name("foo(int) [clone .cold]") == name("foo.cold") == "foo"
    assert name("Report::total(std::string const&) const [clone .isra.0]") == "Report::total"
    assert name("main::'lambda'(int)::operator()(int) const") == "main::{lambda}::operator()"
    assert name("main::{lambda(int)#1}::operator()(int) const") == "main::{lambda}::operator()"
    assert name("(anonymous namespace)::foo()") == "(anonymous namespace)::foo"
    assert name("int foo<int>(int)") == "foo<T>"
    assert name("std::operator<<(std::ostream&, char const*)") == "std::operator<<"
    assert name("Foo::operator->() const") == "Foo::operator->"
    assert (
        name("std::vector<int, std::allocator<int> >::operator[](unsigned long)")
        == "std::vector<T>::operator[]"
    )
    assert name("<alloc::vec::Vec<T,A> as core::ops::index::Index<I>>::index") == (
        "<alloc::vec::Vec<T> as core::ops::index::Index<T>>::index"
    )
    assert name("p::main::{{closure}}") == name("p::main::{closure#0}") == "p::main::{closure}"
    assert name("std::__1::vector<int>::at(unsigned long)") == "std::vector<T>::at"
    assert name("core::option::unwrap_failed::h0123456789abcdef") == "core::option::unwrap_failed"
    assert collapse_name("strlen") == "strlen"


def test_rust_and_python_runtime_frames_do_not_decide() -> None:
    def frames(*spec: tuple[str | None, str | None, int | None]) -> list[SignFrame]:
        return [SignFrame(*s) for s in spec]

    rust = frames(
        ("abort", "libc.so.6", 1), ("std::sys::pal::unix::abort_internal", "p", 2), ("std::process::abort", "p", 3),
        ("__rustc::__rust_start_panic", "p", 4), ("std::panicking::panic_with_hook", "p", 5),
        ("__rustc::rust_begin_unwind", "p", 6), ("core::panicking::panic_fmt", "p", 7),
        ("core::option::unwrap_failed", "p", 8), ("core::option::Option<T>::unwrap", "p", 9),
        ("p::find", "p", 10), ("p::main", "p", 11),
    )  # fmt: skip
    assert signature(rust) == "p::find"
    # a stripped interpreter's frames (offsets) and a symbolised one's give way to the Python frames
    for ctypes_frame in (
        (None, "_ctypes.cpython-311-x86_64-linux-gnu.so", 0xE197),
        ("string_at", "_ctypes.so", 9),
    ):
        stack = frames(
            ("__strlen_evex", "libc.so.6", 1), ctypes_frame, (None, "libffi.so.8", 3),
            ("_PyEval_EvalFrameDefault", "python3.11", 4), ("ctypes.string_at", "<python library>", None),
            ("parse", "app.py", None), ("<module>", "app.py", None),
        )  # fmt: skip
        assert signature(stack) == "strlen | ctypes.string_at | parse"
    # no library Python frame (a builtin called by the program): the runtime's innermost named frame
    for builtin in ("time_sleep", "os_kill_impl"):
        stack = frames(
            ("clock_nanosleep", "libc.so.6", 1), (builtin, "python3.11", 2), (None, "python3.11", 3),
            ("<module>", "app.py", None),
        )  # fmt: skip
        assert signature(stack) == f"{builtin} | <module>"
    # without Python frames an unsymbolised runtime frame is still skipped when a name exists
    assert (
        signature(frames(("__strlen_evex", "libc.so.6", 1), (None, "python3", 5), ("f", "x.so", 3)))
        == "strlen | f"
    )


def test_the_key_is_kind_program_signature() -> None:
    for cls in ("NULL_POINTER_READ", "NULL_POINTER_WRITE", "INVALID_MEMORY_READ", "ILLEGAL_INSTRUCTION"):
        assert failure_kind(cls) == "FAULT"
    for cls in ("HEAP_CORRUPTION", "DOUBLE_FREE", "ABORT", "ASSERTION_FAILURE", "STACK_BUFFER_OVERRUN"):
        assert failure_kind(cls) == "ABORT"
    assert failure_kind("KILLED_BY_SIGNAL", "SIGQUIT") == "KILLED_BY_SIGNAL(SIGQUIT)"
    assert failure_kind("DEADLOCK") == "DEADLOCK"
    assert failure_kind(None) == "UNKNOWN"
