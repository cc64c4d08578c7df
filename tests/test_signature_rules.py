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
    builds = [("g++", "-O0"), ("g++", "-O2")] + [("clang++", "-O2")] * bool(shutil.which("clang++"))
    for cxx, opt in builds:
        exe = tmp_path / "report"
        subprocess.run([cxx, opt, "-g", "-o", str(exe), str(src)], check=True)
        buckets["throw"].add(_bucket(_crash([str(exe)], tmp_path / f"throw{cxx}{opt}")))
        buckets["bump"].add(_bucket(_crash([str(exe), "x"], tmp_path / f"bump{cxx}{opt}")))
    # -O2 inlines map::at and Report::total: DWARF's bare name (total) is qualified; the standard
    # library's frames (map::at, a frame at -O0 only) are skipped; the throw is C++'s terminate
    assert buckets["throw"] == {"ABORT:report:std::terminate | Report::total"}
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
    _r, s = run_json("stack", "--native", str(core))
    frames = s["threads"][0]["frames"]
    fault = next(i for i, f in enumerate(frames) if i > 0 and f["trust"] == "context")
    # libc's __restore_rt has no symbol in Debian's libc: the trampoline is named as gdb names it
    assert frames[fault - 1]["function"] in ("<signal handler called>", "__restore_rt")
    # a fatal signal sent with kill() and caught by faulthandler first is a signal sent, not a fault
    kill = tmp_path / "kill.py"
    kill.write_text("import os, signal\ndef crash():\n    os.kill(os.getpid(), signal.SIGSEGV)\ncrash()\n")
    for fh in ("0", "1"):
        core = _crash(
            [sys.executable, str(kill)], tmp_path / f"kill{fh}", {**os.environ, "PYTHONFAULTHANDLER": fh}
        )
        assert _bucket(core) == "KILLED_BY_SIGNAL(SIGSEGV):python3:crash"


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
    # a lambda or closure is signed as the function that defines it (its inline record comes and goes)
    assert name("main::'lambda'(int)::operator()(int) const") == "main"
    assert name("main::{lambda(int)#1}::operator()(int) const") == "main"
    assert (
        name("shapes::Pool::work(std::vector<long*>&)::{lambda()#1}::operator()() const")
        == "shapes::Pool::work"
    )
    assert collapse_name("main::{lambda(int)#1}::operator()(int) const") == "main::{lambda}::operator()"
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
    assert name("p::main::{{closure}}") == name("p::main::{closure#0}") == "p::main"
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
    # no library Python frame (a builtin called by the program): the program's frame names the call,
    # whether the interpreter is symbolised (pyenv's: os_kill_impl) or stripped (Debian's)
    for builtin in ("time_sleep", "os_kill_impl", None):
        stack = frames(
            ("clock_nanosleep", "libc.so.6", 1), (builtin, "python3.11", 2), (None, "python3.11", 3),
            ("<module>", "app.py", None),
        )  # fmt: skip
        assert signature(stack) == "<module>"
    # an embedding program (no Python frame): the runtime's innermost frame says what it was asked
    embedded = frames(
        ("abort", "libc.so.6", 1), ("os_abort_impl", "libpython3.11.so.1.0", 2), ("host_run", "host", 3)
    )
    assert signature(embedded) == "os_abort_impl | host_run"
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


def test_what_a_build_changes_does_not_enter_the_signature() -> None:
    """Frames that one build shows and another does not: the standard library's (inlined or not),
    glibc's internals (in the program's module when linked statically), the way to C++'s terminate
    (GCC's __cxa_throw or clang's __clang_call_terminate)."""

    def frames(*spec: tuple[str | None, str | None, int | None]) -> list[SignFrame]:
        return [SignFrame(*s) for s in spec]

    gcc_noexcept = frames(
        ("abort", "libc.so.6", 1), (None, "libstdc++.so.6", 2), ("__gxx_personality_v0", "libstdc++.so.6", 3),
        ("_Unwind_RaiseException", "libgcc_s.so.1", 4), ("__cxa_throw", "libstdc++.so.6", 5),
        ("shapes::Session::close()", "shapes", 6), ("main", "shapes", 7),
    )  # fmt: skip
    clang_noexcept = frames(
        ("abort", "libc.so.6", 1), (None, "libstdc++.so.6", 2), ("std::terminate()", "libstdc++.so.6", 3),
        ("__clang_call_terminate", "shapes", 4), ("shapes::Session::close()", "shapes", 6), ("main", "shapes", 7),
    )  # fmt: skip
    assert signature(gcc_noexcept) == signature(clang_noexcept) == "std::terminate | shapes::Session::close"
    static_heap = frames(
        ("__pthread_kill_implementation", "orders", 1), ("gsignal", "orders", 2), ("abort", "orders", 3),
        ("__libc_message_impl", "orders", 4), ("malloc_printerr", "orders", 5), ("munmap_chunk", "orders", 6),
        ("free", "orders", 7), ("drop_pair", "orders", 8),
    )  # fmt: skip
    dynamic_heap = frames(
        ("__pthread_kill_implementation", "libc.so.6", 1), ("raise", "libc.so.6", 2),
        ("abort", "libc.so.6", 3), ("malloc_printerr", "libc.so.6", 5), ("_int_free", "libc.so.6", 6),
        ("__GI___libc_free", "libc.so.6", 7), ("drop_pair", "orders", 8),
    )  # fmt: skip
    assert signature(static_heap) == signature(dynamic_heap) == "free | drop_pair"
    at_o0 = frames(
        ("__cxa_throw", "libstdc++.so.6", 0), ("std::__throw_out_of_range_fmt(char const*, ...)", "libstdc++.so.6", 1),
        ("std::vector<double, std::allocator<double> >::_M_range_check(unsigned long) const", "shapes", 2),
        ("std::vector<double, std::allocator<double> >::at(unsigned long) const", "shapes", 3),
        ("shapes::Table::cell(unsigned long, unsigned long) const", "shapes", 4), ("main", "shapes", 5),
    )  # fmt: skip
    at_o2 = frames(
        ("__cxa_throw", "libstdc++.so.6", 0),
        ("shapes::Table::cell(unsigned long, unsigned long) const", "shapes", 4),
    )
    assert signature(at_o0) == signature(at_o2) == "std::terminate | shapes::Table::cell"
    rust = frames(
        ("core::cell::panic_already_borrowed::do_panic::runtime", "ledger", 1),
        ("core::cell::RefCell<T>::borrow_mut", "ledger", 2), ("ledger::Ledger::update", "ledger", 3),
    )  # fmt: skip
    assert signature(rust) == "ledger::Ledger::update"


TAIL = r"""
#include <stdlib.h>
#include <string.h>
volatile long sink;
char *volatile held;
__attribute__((noinline)) void release(char *b) { free(b); }
__attribute__((noinline)) size_t measure(const char *s) { return strlen(s); }
int main(int argc, char **argv) {
    if (argc > 1) { sink = measure(getenv("NO_SUCH_VARIABLE_EVER")); sink++; return 0; }
    held = malloc(32);
    release(held);
    release(held);
    sink++;
    return 0;
}
"""


@needs_cores
def test_tail_calls_are_put_back_from_dwarf_call_sites(tmp_path: Path) -> None:
    """At -O2 gcc compiles release() and measure() to a jump to free and strlen: no return address
    is left for them, and without DWARF's call sites the signature would change with the level."""
    src = tmp_path / "tail.c"
    src.write_text(TAIL)
    seen: dict[str, set[str]] = {"free": set(), "strlen": set()}
    for opt in ("-O0", "-O2"):
        exe = tmp_path / "tail"
        subprocess.run(["gcc", opt, "-g", "-o", str(exe), str(src)], check=True)
        disasm = subprocess.run(
            ["objdump", "-d", str(exe)], capture_output=True, text=True, check=True
        ).stdout
        body = disasm.split("<release>:", 1)[1].split("\n\n", 1)[0]
        assert ("jmp" in body and "call" not in body) == (opt == "-O2"), body  # the build under test
        for arg, libc in ((), "free"), (("x",), "strlen"):
            core = _crash([str(exe), *arg], tmp_path / f"{libc}{opt}")
            seen[libc].add(_bucket(core))
            if opt == "-O2":
                _, s = run_json("stack", str(core))
                frames = s["threads"][0]["frames"]
                mine = next(i for i, f in enumerate(frames) if os.path.basename(f["module"] or "") == "tail")
                assert frames[mine]["trust"] == "tail call"
                assert frames[mine]["function"] == ("release" if libc == "free" else "measure")
                assert frames[mine + 1]["function"] == "main"
                assert frames[mine + 1]["pc"] == frames[mine]["pc"]
    assert seen == {"free": {"ABORT:tail:free | release"}, "strlen": {"FAULT:tail:strlen | measure"}}
