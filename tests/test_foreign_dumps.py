"""Dumps nobody here made, read to their formats' documents and held to the peers' own outputs.

- tools/peer_agreement.py against minidump-stackwalk's snapshots (rust-minidump), Breakpad's
  minidump_stackwalk output, eu-stack and gdb: every compared field agrees;
- Breakpad's Linux streams by their true numbers (pid, command line; the environment never
  shown unless asked), its ELF CodeView record as it lies on disk;
- macOS (Crashpad) Mach exceptions and Windows NTSTATUS codes with only the arguments that apply,
  the assertion stream;
- every frame of every corpus minidump carries its trust; CFI from Breakpad symbol files;
- C++ names demangled in the stack, the blame and the bucket (a real g++ program's core).
"""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from notmyfault.dumps import Minidump, open_dump
from notmyfault.unwind.minidump import PostfixError, evaluate
from notmyfault.unwind.names import demangle
from notmyfault.unwind.symfile import parse_sym
from tests.conftest import CORPUS, run_json, run_nmf
from tests.coretools import crash_program, gdb_frames

RUST = CORPUS / "rust-minidump"
NULL_READ = CORPUS / "breakpad-linux_null_read_av"
pytestmark = pytest.mark.shared
TOOL = Path(__file__).resolve().parent.parent / "tools" / "peer_agreement.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_agreement", TOOL)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["peer_agreement"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_peer_agreement_every_source() -> None:
    tallies = {t.source: t for t in _tool().run()}
    assert len(tallies) == 8
    for t in tallies.values():
        assert t.compared >= 45, t.source
        assert t.mismatches == [], (t.source, t.mismatches[:10])
    # what was left out is only what the macOS dump's own symbol files (not in the corpus) decided
    left = [s for t in tallies.values() for s in t.skipped]
    assert left
    assert all(s.startswith("macos_inlines_json_pretty:") for s in left)
    r = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].split()[3] == "100.00%"
    # the figures the README and docs/peer-agreement.md quote are this run's
    total = sum(t.compared for t in tallies.values())
    repo = TOOL.parent.parent
    for doc in (repo / "README.md", repo / "docs" / "peer-agreement.md"):
        assert f"{total} of {total}" in " ".join(doc.read_text().split()), doc.name
    per_source = " ".join((repo / "docs" / "peer-agreement.md").read_text().split())
    for t in tallies.values():
        assert f"{t.compared}/{t.compared}" in per_source, t.source


def test_x86_stack_win_walk_equals_minidump_stackwalk() -> None:
    _, s = run_json("stack", "--all", str(RUST / "test.dmp"), "--symbols", str(RUST / "symbols"))
    frames = s["threads"][0]["frames"]
    assert [(f["function"], f["line"], f["trust"]) for f in frames] == [
        ("`anonymous namespace'::CrashFunction", 58, "context"),
        ("main", 65, "cfi"),
        ("__tmainCRTStartup", 327, "cfi"),
        (None, None, "cfi"),  # kernel32, no symbols: found by __tmainCRTStartup's STACK WIN
    ]
    # the dump writer's thread is listed, with no frames, as minidump-stackwalk lists it
    assert [(t["tid"], len(t["frames"])) for t in s["threads"]] == [(3060, 4), (4544, 0)]


def test_x86_64_stack_cfi_walk_through_libc() -> None:
    _, a = run_json(
        "analyze", str(NULL_READ / "linux_null_read_av.dmp"), "--symbols", str(NULL_READ / "symbols")
    )
    got = [(f["function"], f["trust"]) for f in a["frames"][:3]]
    assert got == [("crash()", "context"), ("main", "cfi"), ("__libc_start_main", "cfi")]
    assert a["blamed"]["function"] == "crash()"


TRUSTS = {"context", "cfi", "unwound", "inline", "frame pointer", "return address at sp", "scan"}
"""How a frame was found; Windows x64 kernel stacks add "unwind data" (the images' .pdata)."""


def test_every_frame_of_every_corpus_dump_has_a_trust() -> None:
    dumps = [
        p
        for folder in sorted(CORPUS.iterdir())
        if folder.is_dir() and folder.name != "rust-minidump"
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix not in (".txt", ".sym", ".out", ".cc")
    ] + sorted(RUST.glob("*.dmp"))
    assert len(dumps) == 28 + 45  # the first corpus, and Breakpad's own test dumps (breakpad-testdata/)
    for dump in dumps:
        r, s = run_json("stack", "--all", str(dump))
        assert r.returncode == 0, (dump, r.stderr)
        frames = [f for t in s["threads"] for f in t["frames"]]
        assert frames, dump
        assert {f["trust"] for f in frames} <= TRUSTS | {"unwind data"}, dump
        assert all(t["frames"] == [] or t["frames"][0]["trust"] == "context" for t in s["threads"]), dump


def test_linux_streams_by_their_true_numbers_and_no_environment() -> None:
    dump = NULL_READ / "linux_null_read_av.dmp"
    with open_dump(dump) as md:
        assert isinstance(md, Minidump)
        assert md.pid == 11506  # LinuxProcStatus's Pid (the dump has no misc info stream)
        assert md.command_line == "./null_read_av"
        assert md.environment is not None
        assert "SHELL=/bin/bash" in md.environment
        assert md.auxv.get(6) == 4096  # AT_PAGESZ
        assert any("null_read_av" in line for line in md.linux_maps)
    r, a = run_json("analyze", str(dump))
    assert a["process"]["pid"] == 11506
    assert a["process"]["command_line"] == "./null_read_av"
    text = run_nmf("analyze", str(dump)).stdout
    for secret in ("SSH_AUTH_SOCK", "PATH=", "HOME=/home/mattdr", "SSH_CONNECTION"):
        assert secret not in text
        assert secret not in r.stdout
    assert "COMMAND_LINE: ./null_read_av" in text
    shown = run_nmf("analyze", str(dump), "--environment").stdout
    assert "ENVIRONMENT:\n" in shown
    assert "  HOME=/home/mattdr" in shown
    _, with_env = run_json("analyze", str(dump), "--environment")
    assert "LOGNAME=mattdr" in with_env["environment"]


def _minidump_with_module(name: str, cv: bytes, platform: int = 0x8201) -> bytes:
    """A minimal minidump (header, system info, one module) whose module has CodeView record ``cv``."""
    streams: list[tuple[int, bytes]] = []
    header_size, dir_size = 32, 12 * 2
    base = header_size + dir_size
    sysinfo = struct.pack("<HHHBBIIIII", 9, 6, 0, 1, 1, 5, 15, 0, platform, 0) + bytes(24)
    name_rva = base + len(sysinfo) + 4 + 108
    name_blob = struct.pack("<I", len(name) * 2) + name.encode("utf-16-le") + b"\0\0"
    cv_rva = name_rva + len(name_blob)
    module = struct.pack("<QIIII", 0x400000, 0x1000, 0, 0, name_rva) + bytes(52)
    module += struct.pack("<II", len(cv), cv_rva) + bytes(24)
    assert len(module) == 108
    streams = [(7, sysinfo), (4, struct.pack("<I", 1) + module)]
    body, directory, at = b"", b"", base
    for kind, data in streams:
        directory += struct.pack("<III", kind, len(data), at)
        body += data
        at += len(data)
    header = b"MDMP" + struct.pack("<IIIII", 0xA793, len(streams), header_size, 0, 0) + bytes(8)
    return header + directory + body + name_blob + cv


def test_breakpad_elf_codeview_as_it_lies_on_disk(tmp_path: Path) -> None:
    """Breakpad's MDCVInfoELF: the uint32 0x4270454c ('BpEL') little-endian, so 'LEpB' on disk.

    The debug id of a module whose build-id starts f1c3bcc0 2798 65fe... is the first 16 bytes read
    as a GUID, age 0: minidump-stackwalk's C0BCC3F19827FE653058404B2831D9E60 for the same bytes.
    """
    build_id = bytes.fromhex("f1c3bcc0279865fe3058404b2831d9e6aabbccdd")
    p = tmp_path / "elf.dmp"
    p.write_bytes(_minidump_with_module("/usr/bin/crash", b"LEpB" + build_id))
    with open_dump(p) as md:
        assert isinstance(md, Minidump)
        (m,) = md.modules
        assert m.debug_id == "C0BCC3F19827FE653058404B2831D9E60"
        assert m.code_id == build_id.hex()
        assert m.build_id == build_id.hex()
        assert m.debug_file == "crash"
    p.write_bytes(_minidump_with_module("/usr/bin/crash", b"BpEL" + build_id))  # the wrong byte order
    with open_dump(p) as md:
        assert isinstance(md, Minidump)
        assert md.modules[0].debug_id is None


def test_macos_mach_exceptions_and_uuid_code_ids() -> None:
    _, a = run_json("analyze", str(RUST / "pipeline-inlines-macos-segv.dmp"))
    assert a["exception"]["name"] == "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS"
    assert a["signal"]["address"] == "0xffffffff80000042"
    assert a["crash_class"] == "INVALID_MEMORY_WRITE"  # mov byte ptr [0xffffffff80000042], 1
    _, b = run_json("analyze", str(RUST / "simple-crashpad.dmp"))
    assert b["exception"]["name"] == "EXC_CRASH / SIGABRT"
    assert b["crash_class"] == "ABORT"
    assert b["signal"]["address"] is None
    text = run_nmf("analyze", str(RUST / "simple-crashpad.dmp")).stdout
    assert "SIGHUP" not in text
    assert "signal 0" not in text
    _, mods = run_json("modules", str(RUST / "simple-crashpad.dmp"))
    crashy = mods["modules"][0]
    assert crashy["code_id"] == "ef1091e381da369b9039ea1591d07e0b"  # the Mach-O UUID
    assert crashy["debug_id"] == "EF1091E381DA369B9039EA1591D07E0B0"


def test_windows_invalid_parameter_and_its_assertion() -> None:
    dump = RUST / "invalid-parameter.dmp"
    _, a = run_json("analyze", str(dump))
    assert a["exception"]["code"] == "0xc000000d"
    assert a["exception"]["name"] == "STATUS_INVALID_PARAMETER"
    assert a["crash_class"] == "ASSERTION_FAILURE"
    assert a["signal"]["address"] is None
    assert a["access"] is None
    text = run_nmf("analyze", str(dump)).stdout
    assert "memory referenced" not in text
    assert "assertion: format != nullptr in common_vfprintf" in text
    assert "output.cpp:32)" in text
    with open_dump(dump) as md:
        assert isinstance(md, Minidump)
        assert md.assertion is not None
        assert (md.assertion.expression, md.assertion.function, md.assertion.line) == (
            "format != nullptr",
            "common_vfprintf",
            32,
        )


def test_demangling() -> None:
    assert demangle("_ZN4nodeL5AbortERKN2v820FunctionCallbackInfoINS0_5ValueEEE") == (
        "node::Abort(v8::FunctionCallbackInfo<v8::Value> const&)"
    )
    assert demangle("_ZN3std2rt10lang_start17h1234567890abcdefE") == "std::rt::lang_start"  # legacy Rust
    assert demangle("_RNvCskwGfYPst2Cb_3foo16example_function") == "foo::example_function"  # Rust v0
    assert demangle("main") == "main"
    assert demangle("_Zgarbage") == "_Zgarbage"
    hostile = "_Z1f" + "P" * 100000 + "i"
    assert demangle(hostile) == hostile  # too long: not given to the demangler


def test_postfix_rules() -> None:
    mem = {0x1004: 0x4242}
    env = {"$esp": 0x0FF8, "$ebp": 0x1000}
    evaluate(
        ["$T0", "$ebp", "=", "$eip", "$T0", "4", "+", "^", "=", "$esp", "$T0", "8", "+", "="],
        env,
        mem.get,
        0xFFFFFFFF,
    )
    assert env["$eip"] == 0x4242
    assert env["$esp"] == 0x1008
    assert evaluate(["$esp", "16", "@"], {"$esp": 0x1237}, mem.get, 0xFFFFFFFF) == [0x1230]
    for bad in ("$nope 4 +", "1 0 /", "+", "5 ^", "4 $x ="):
        with pytest.raises(PostfixError):
            evaluate(bad.split(), {"$x": 1}, mem.get, 0xFFFFFFFF)
    sym = parse_sym(
        "MODULE Linux x86_64 0 a\nSTACK CFI INIT 100 20 .cfa: $rsp 8 + .ra: .cfa -8 + ^\n"
        "STACK CFI 104 .cfa: $rsp 16 + $rbp: .cfa -16 + ^\nSTACK WIN 4 200 10 1 0 8 4 0 0 1 $eip 4 =\n"
        "STACK CFI garbage\nSTACK WIN x\n"
    )
    assert sym.cfi_at(0x100) == {".cfa": "$rsp 8 +", ".ra": ".cfa -8 + ^"}
    assert sym.cfi_at(0x110) == {".cfa": "$rsp 16 +", ".ra": ".cfa -8 + ^", "$rbp": ".cfa -16 + ^"}
    assert sym.cfi_at(0x120) is None
    win = sym.win_at(0x205)
    assert win is not None
    assert (win.params, win.saved_regs, win.program) == (8, 4, "$eip 4 =")


@pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
def test_cpp_frames_demangled_like_gdb(tmp_path: Path) -> None:
    src = tmp_path / "parse.cc"
    src.write_text(
        "namespace parser {\n"
        "template <typename T> struct Reader {\n"
        "    __attribute__((noinline)) static int read_field(T *p, int n) { *p = n; return n; }\n"
        "};\n"
        "__attribute__((noinline)) int parse_record(int *dst, int n)"
        " { return Reader<int>::read_field(dst, n) + 1; }\n"
        "}\n"
        "int main(int argc, char **) { return parser::parse_record(argc > 5 ? new int : nullptr, argc); }\n"
    )
    exe = tmp_path / "parse"
    core = crash_program(
        ["g++", "-g", "-O0", "-fno-omit-frame-pointer", str(src), "-o", str(exe)], exe, tmp_path
    )
    _, a = run_json("analyze", str(core))
    assert [f["function"] for f in a["frames"][:3]] == [
        "parser::Reader<int>::read_field(int*, int)",
        "parser::parse_record(int*, int)",
        "main",
    ]
    assert a["frames"][0]["raw_function"] == "_ZN6parser6ReaderIiE10read_fieldEPii"
    assert a["bucket"] == "FAULT:parse:parser::Reader<T>::read_field"
    theirs = [str(f["name"]) for f in gdb_frames(core, str(exe))][:2]
    for ours, gdbs in zip(a["frames"], theirs, strict=False):
        assert ours["function"].startswith(gdbs), (ours["function"], gdbs)
    for command in (["analyze"], ["stack"], ["disasm", a["frames"][0]["pc"]]):
        text = run_nmf(command[0], str(core), *command[1:]).stdout
        assert "_ZN" not in text
        assert "parser::Reader<int>::read_field(int*, int)" in text


JIT_SOURCE = r"""#include <string.h>
#include <sys/mman.h>
__attribute__((noinline)) void crash_here(int *p) { *p = 1; }
__attribute__((noinline)) void run_jit(void (*code)(void (*)(int *))) { code(crash_here); }
int main(void) {
    /* push rbp; mov rbp, rsp; mov rax, rdi; xor edi, edi; call rax; pop rbp; ret */
    static const unsigned char stub[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x89, 0xf8, 0x31, 0xff, 0xff, 0xd0, 0x5d, 0xc3};
    unsigned char *mem = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(mem, stub, sizeof stub);
    run_jit((void (*)(void (*)(int *)))mem);
    return 0;
}
"""


@pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
def test_jit_frames_are_shown_as_such(tmp_path: Path) -> None:
    """A frame in anonymous executable memory (JIT-compiled code) is listed, as gdb lists it (its
    '?? ()'), marked as JIT code; the frames beyond it follow."""
    (tmp_path / "jit.c").write_text(JIT_SOURCE)
    exe = tmp_path / "jit"
    build = ["gcc", "-g", "-O1", "-fno-omit-frame-pointer", str(tmp_path / "jit.c"), "-o", str(exe)]
    core = crash_program(build, exe, tmp_path)
    _, s = run_json("stack", str(core))
    frames = s["threads"][0]["frames"]
    assert [f["function"] for f in frames[:4]] == ["crash_here", None, "run_jit", "main"]
    jit = frames[1]
    assert jit["module"] is None
    assert jit["code"] == "jit"
    assert jit["location"] == f"[JIT code] {jit['pc']}"
    theirs = gdb_frames(core, str(exe))
    assert theirs[1]["name"] is None
    assert theirs[1]["pc"] == int(jit["pc"], 16)
    assert f"[JIT code] {jit['pc']}" in run_nmf("stack", str(core)).stdout


RUST_SOURCE = """mod parser {
    #[inline(never)]
    pub fn store(p: *mut i32, v: i32) {
        unsafe { std::ptr::write_volatile(p, v) }
    }
    #[inline(never)]
    pub fn parse_record(args: usize) -> i32 {
        let p: *mut i32 = if args > 5 { Box::into_raw(Box::new(0)) } else { std::ptr::null_mut() };
        store(p, args as i32);
        args as i32
    }
}
fn main() {
    std::process::exit(parser::parse_record(std::env::args().count()));
}
"""


@pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
@pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc (./dev test installs it)")
@pytest.mark.parametrize(
    ("mangling", "raw_prefix"),
    [(None, "_ZN5crash6parser5store17h"), ("v0", "_RNv")],  # stable rustc's default is legacy
)
def test_rust_frames_demangled_like_gdb(mangling: str | None, raw_prefix: str, tmp_path: Path) -> None:
    """A real Rust program's core, with either symbol mangling: the frames, the blame and the bucket
    read crash::parser::store as gdb reads it; the raw symbol stays in --json."""
    (tmp_path / "crash.rs").write_text(RUST_SOURCE)
    exe = tmp_path / "crash"
    flags = ["-C", f"symbol-mangling-version={mangling}"] if mangling else []
    core = crash_program(
        ["rustc", "-g", "-C", "opt-level=1", *flags, "crash.rs", "-o", "crash"], exe, tmp_path
    )
    _, a = run_json("analyze", str(core))
    ours = [f["function"] for f in a["frames"] if f["trust"] != "inline"][:3]
    assert ours == ["crash::parser::store", "crash::parser::parse_record", "crash::main"]
    # the function inlined into store at the pc, found in DWARF (drgn shows none in Rust's units)
    assert a["frames"][0]["trust"] == "inline"
    assert a["frames"][0]["function"].startswith("core::ptr::write_volatile")
    theirs_inline = [str(f["name"]) for f in gdb_frames(core, str(exe))][:1]
    assert theirs_inline[0].startswith("core::ptr::write_volatile")
    raw = next(f for f in a["frames"] if f["trust"] != "inline")["raw_function"]
    # (should v0 become the default, the default build shows it too)
    assert raw.startswith(raw_prefix) or (mangling is None and raw.startswith("_RNv"))
    # write_volatile is the standard library's, inlined or not by the build: skipped
    assert a["bucket"] == "FAULT:crash:crash::parser::store"
    theirs = [str(f["name"]) for f in gdb_frames(core, str(exe)) if f["kind"] != "inline"][:3]
    assert ours == theirs
    text = run_nmf("analyze", str(core)).stdout
    assert raw not in text
