"""Stack walks that hold beyond our corpus (issue 28): where a walk ends, frames past a wild pc,
the whole of a deep stack, and the whole command line, each checked against gdb or eu-stack on
real cores of generated programs (bench/frame_matrix.py's short form)."""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import notmyfault
from notmyfault.dumps.elfcore import ElfCore
from tests.conftest import run_bench, run_json, run_nmf
from tests.coretools import build_frames, build_id, gdb_physical_pcs, physical_pcs, unlimited_cores

BENCH_BUGS = Path(__file__).resolve().parent.parent / "bench" / "bugs"

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)


def test_frames_equal_gdbs_on_the_short_matrix() -> None:
    """frames.c's walker-shaped crashes (deep and runaway recursion, alloca, longjmp, a fault in a
    handler on the thread's stack and on a sigaltstack, calls through NULL and to an unmapped
    address, a libc callback, blocked threads, abort) built two ways: every frame of every thread
    has gdb's pc, and eu-stack's where eu-stack walks (it cannot go past a call through NULL)."""
    result = run_bench("frame_matrix.py", "--quick", timeout=1500)
    assert result["missing"] == []
    assert result["cores"] >= 20
    gdb = result["oracles"]["gdb"]
    assert gdb["agree"] == gdb["frames"], result["disagreements"]
    assert gdb["frames"] > 15_000  # the runaway recursions' frames, walked to the end
    assert gdb["name_agreement"] >= 0.99, result["disagreements"]
    eu = result["oracles"]["eu-stack"]
    assert eu["frame_agreement"] >= 0.99, result["disagreements"]


LONG_ARGS = ["--first-option=" + "a" * 60, "--second=" + "b" * 70, "third argument with spaces", "x" * 200]


def test_command_line_is_whole(tmp_path: Path) -> None:
    """COMMAND_LINE is every argument, read from the initial stack, not the kernel's first 80 bytes
    (NT_PRPSINFO's pr_psargs); the arguments are the ones the program was given."""
    src = tmp_path / "die.c"
    src.write_text("int main(void) { *(volatile int *)0 = 1; return 0; }\n")
    exe = tmp_path / "die"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(src)], check=True)
    r = subprocess.run([str(exe), *LONG_ARGS], cwd=tmp_path, preexec_fn=unlimited_cores, check=False)
    assert r.returncode == -11
    r, a = run_json("analyze", str(tmp_path / "core"))
    assert r.returncode == 0, r.stderr
    assert a["process"]["command_line"] == " ".join([str(exe), *LONG_ARGS])
    assert len(a["process"]["command_line"]) > 300


def test_another_build_on_disk_is_named(tmp_path: Path) -> None:
    """The executable was rebuilt after the crash: the analysis says that the file here is another
    build (both build-ids, as eu-readelf reads them), that it was not used, and -v marks it in
    MISSING; given with --exe it is used as asked, and the note says its names may be wrong."""
    src = tmp_path / "p.c"
    src.write_text("void f(int *p) { *p = 1; }\nint main(void) { f(0); return 0; }\n")
    exe = tmp_path / "p"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(src)], check=True)
    ran = build_id(exe)
    r = subprocess.run([str(exe)], cwd=tmp_path, preexec_fn=unlimited_cores, check=False)
    assert r.returncode == -11
    src.write_text(
        '#include <stdio.h>\nvoid f(int *p) { *p = 2; puts("x"); }\nint main(void) { f(0); return 0; }\n'
    )
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(src)], check=True)
    now = build_id(exe)
    assert now != ran
    core = str(tmp_path / "core")
    r, a = run_json("analyze", core)
    assert r.returncode == 0, r.stderr
    note = next(n for n in a["notes"] if "is not the build that ran" in n)
    assert note.startswith(
        f"{exe} is not the build that ran: its build-id is {now}, the dump's {ran}; it was not used"
    )
    assert a["other_builds"] == [str(exe)]
    assert a["frames"][0]["function"] is None  # its symbols are not taken for the build that ran
    text = run_nmf("analyze", "-v", core).stdout
    assert "MISSING: p (another build is here)" in text
    r, a = run_json("analyze", "--exe", str(exe), core)
    assert any(
        n.endswith("it was used as asked (--exe), so p's names and lines may be wrong") for n in a["notes"]
    )
    assert a["other_builds"] == []


def _notes_only(core: Path, out: Path) -> None:
    """``core`` without its memory: only its PT_NOTE program header kept, the file cut after the notes
    (as a writer that filtered every mapping out, or a copy cut short, leaves it). Parsed here with
    struct, independently of the reader under test."""
    data = bytearray(core.read_bytes())
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    size, count = struct.unpack_from("<HH", data, 0x36)
    notes = [bytes(data[phoff + i * size : phoff + (i + 1) * size]) for i in range(count)]
    notes = [h for h in notes if struct.unpack_from("<I", h, 0)[0] == 4]  # PT_NOTE
    for i, h in enumerate(notes):
        data[phoff + i * size : phoff + (i + 1) * size] = h
    struct.pack_into("<H", data, 0x38, len(notes))
    end = max(struct.unpack_from("<Q", h, 8)[0] + struct.unpack_from("<Q", h, 32)[0] for h in notes)
    out.write_bytes(bytes(data[:end]))


def test_a_core_of_notes_only_shows_its_registers(tmp_path: Path) -> None:
    """A core without memory segments is read, not refused: every view says first that it holds no
    memory, the registers equal the whole core's, and the crash is classed from the signal and the
    code on disk (not 'outside every mapping': NT_FILE still maps the pc)."""
    src = tmp_path / "w.c"
    src.write_text("void f(int *p) { *p = 1; }\nint main(void) { f(0); return 0; }\n")
    exe = tmp_path / "w"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(src)], check=True)
    r = subprocess.run([str(exe)], cwd=tmp_path, preexec_fn=unlimited_cores, check=False)
    assert r.returncode == -11
    whole, cut = tmp_path / "core", tmp_path / "notes.core"
    _notes_only(whole, cut)
    _, full_regs = run_json("regs", str(whole))
    r, regs = run_json("regs", str(cut))
    assert r.returncode == 0, r.stderr
    assert regs["registers"] == full_regs["registers"]
    for command in ("regs", "analyze", "stack", "modules"):
        first = [
            line for line in run_nmf(command, str(cut)).stdout.splitlines() if line and line[0] not in "* "
        ]
        assert first[0].startswith("WARNING: the core holds no memory (no PT_LOAD segments"), (command, first)
    r, a = run_json("analyze", str(cut))
    assert a["truncated"] is True
    assert a["crash_class"] == "NULL_POINTER_WRITE"
    assert a["frames"][0]["function"] == "f"


def _arm64_minidump(context: bytes) -> bytes:
    """A minidump of one arm64 thread whose CONTEXT record is ``context``: header, stream directory,
    system info (ARM64, Linux), a thread list; laid out by the format's document, not our reader."""
    header_size, entry = 32, 12
    sysinfo_at = header_size + 2 * entry
    sysinfo = struct.pack("<HHHBBIIIIIHH", 12, 8, 0, 2, 1, 5, 10, 0, 0x8201, 0, 0, 0) + bytes(24)
    threads_at = sysinfo_at + len(sysinfo)
    context_at = threads_at + 4 + 48
    thread = struct.pack("<IIIIQQIIII", 775, 0, 0, 0, 0, 0, 0, 0, len(context), context_at)
    threads = struct.pack("<I", 1) + thread
    head = struct.pack("<4sIIIIIQ", b"MDMP", 0xA793, 2, header_size, 0, 0, 0)
    directory = struct.pack("<III", 7, len(sysinfo), sysinfo_at) + struct.pack(
        "<III", 3, len(threads), threads_at
    )
    return head + directory + sysinfo + threads + context


ARM64_VALUES = {
    **{f"x{i}": 0x1000 + i for i in range(29)},
    "fp": 0x7FF0,
    "lr": 0x4010,
    "sp": 0x7F00,
    "pc": 0x4000,
}


@pytest.mark.parametrize(("layout", "size"), [("breakpad-old", 796), ("crashpad", 792), ("windows", 912)])
def test_every_arm64_context_layout_gives_the_registers(layout: str, size: int, tmp_path: Path) -> None:
    """The three arm64 CONTEXT layouts writers use (Breakpad's old one, flags 0x80000006 in a 64-bit
    field; Crashpad's 792 bytes; Windows' 912) give the same x0-x28, fp, lr, sp, pc, and each its
    CPSR, FPSR and FPCR from where its layout keeps them."""
    ctx = bytearray(size)
    regs = [ARM64_VALUES[f"x{i}"] for i in range(29)] + [ARM64_VALUES[k] for k in ("fp", "lr", "sp", "pc")]
    struct.pack_into("<33Q", ctx, 8, *regs)
    if layout == "breakpad-old":
        struct.pack_into("<Q", ctx, 0, 0x80000006)
        struct.pack_into("<III", ctx, 272, 0x60000000, 0x11, 0x22)
    elif layout == "crashpad":
        struct.pack_into("<II", ctx, 0, 0x400007, 0x60000000)
        struct.pack_into("<II", ctx, 272, 0x11, 0x22)
    else:
        struct.pack_into("<II", ctx, 0, 0x400007, 0x60000000)
        struct.pack_into("<II", ctx, 784, 0x22, 0x11)
    dump = tmp_path / "arm64.dmp"
    dump.write_bytes(_arm64_minidump(bytes(ctx)))
    r, data = run_json("regs", str(dump))
    assert r.returncode == 0, r.stderr
    got = {k: int(v, 16) for k, v in data["registers"].items()}
    assert {k: got[k] for k in ARM64_VALUES} == ARM64_VALUES
    assert (got["cpsr"], got["fpsr"], got["fpcr"]) == (0x60000000, 0x11, 0x22)


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gdb-multiarch", "qemu-ppc64le", "powerpc64le-linux-gnu-gcc")),
    reason="needs gdb-multiarch, qemu-user and Debian's cross compilers (./dev test installs them)",
)
def test_other_architectures_against_gdb_multiarch() -> None:
    """frames.c built static for ppc64le, s390x and 32-bit ARM (Thumb-2), crashed under qemu-user:
    every frame has gdb-multiarch's pc. On ARM the walk goes on by the EHABI tables where drgn
    stops (glibc has no .debug_frame), and by the prologue where no entry covers a function (abort)
    or the entry says it cannot be unwound (start_thread), as gdb does; through a signal frame (ARM's
    tables restore it, s390x's trampoline is read); past a call through NULL from the link register.
    gdb-multiarch reads no signal frame of qemu-arm's (it lists pc 0 past the trampoline): its
    stack ends there (bench/frame_matrix.py), and our frames past it are checked on x86_64."""
    cases = "nest,alloca,vla,longjmp,qsort,call-null,call-wild,handler,altstack,abort,threads"
    result = run_bench(
        "frame_matrix.py", "--quick", "--cross", "--arch", "ppc64le,s390x,arm", "--cases", cases, timeout=1200
    )
    arches = result["per_arch"]
    assert set(arches) == {"ppc64le", "s390x", "arm"}, result["missing"]
    for arch in arches:
        assert arches[arch]["wrong"] == 0, (arch, result["disagreements"])
    assert arches["ppc64le"]["agree"] == arches["ppc64le"]["frames"] > 60, result["disagreements"]
    # gdb-multiarch gives s390x's call through a wild pointer no stack at all: those frames are ours alone
    assert arches["s390x"]["agree"] >= arches["s390x"]["frames"] - 6 > 60, result["disagreements"]
    # ARM: ours alone past qemu's signal trampoline (6 frames in each of handler and altstack)
    assert arches["arm"]["agree"] >= arches["arm"]["frames"] - 12 > 60, result["disagreements"]


def _runaway_core(tmp_path: Path, cc: str, qemu: str) -> tuple[Path, Path]:
    exe = tmp_path / "frames"
    build_frames(cc, exe)
    r = subprocess.run(
        [qemu, "-s", str(1 << 20), str(exe), "runaway", "0"],
        cwd=tmp_path,
        preexec_fn=unlimited_cores,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert r.returncode != 0
    return exe, next(tmp_path.glob("qemu_*.core"))


DEEP = {
    # architecture: (cross compiler, emulator); each walk goes past drgn's 1,024 frames from the
    # registers given back to drgn as that architecture's struct pt_regs
    "aarch64": ("aarch64-linux-gnu-gcc", "qemu-aarch64"),
    "ppc64le": ("powerpc64le-linux-gnu-gcc", "qemu-ppc64le"),
    "s390x": ("s390x-linux-gnu-gcc", "qemu-s390x"),
    "arm": ("arm-linux-gnueabihf-gcc", "qemu-arm"),
}


@pytest.mark.parametrize("arch", list(DEEP))
def test_a_deep_stack_is_walked_to_its_end(arch: str, tmp_path: Path) -> None:
    """A runaway recursion in a 1 MiB stack under qemu-user is walked past drgn's 1,024 frames to
    _start: as many frames as gdb-multiarch walks (which gives up on ARM's: there every frame between
    the fault and main must be the recursion, each the same size)."""
    cc, qemu = DEEP[arch]
    if not all(shutil.which(t) for t in (cc, qemu, "gdb-multiarch")):
        pytest.skip(f"needs {cc}, {qemu} and gdb-multiarch (./dev test installs them)")
    exe, core = _runaway_core(tmp_path, cc, qemu)
    r, stacks = run_json("stack", "--json", "--max-frames", "0", "--exe", str(exe), str(core))
    assert r.returncode == 0, r.stderr
    thread = stacks["threads"][0]
    assert thread["walk_stopped"] is None
    physical = [f for f in thread["frames"] if f["trust"] not in ("inline", "tail call")]
    assert len(physical) > 2000
    if arch == "arm":
        names = [f["function"] for f in physical]
        tail = ["main", "__libc_start_call_main", "__libc_start_main_impl", "_start"]
        assert names[-4:] == tail, names[-6:]
        recursion = physical[1:-4]
        assert {f["function"] for f in recursion} == {"runaway"}
        steps = {int(b["sp"], 16) - int(a["sp"], 16) for a, b in itertools.pairwise(recursion)}
        assert len(steps) == 1, steps
        assert steps.pop() > 0
        return
    out = subprocess.run(
        [
            "gdb-multiarch",
            "-batch",
            "-nx",
            str(exe),
            str(core),
            "-ex",
            "set backtrace past-main on",
            "-ex",
            "bt -1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    ).stdout
    last = re.findall(r"^#(\d+)\s+0x([0-9a-f]+) in (\S+)", out, re.M)[-1]
    count = int(last[0]) + (1 if int(last[1], 16) else 0)  # a last frame at pc 0 is gdb's end of the stack
    assert len(physical) == count
    if int(last[1], 16):
        assert (physical[-1]["pc"], physical[-1]["function"]) == (hex(int(last[1], 16)), last[2])
    assert physical[-1]["function"] in ("_start", "__libc_start_main_impl")  # powerpc's chain ends in libc


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gdb-multiarch", "qemu-arm", "arm-linux-gnueabihf-gcc")),
    reason="needs gdb-multiarch, qemu-user and the ARM cross compiler (./dev test installs them)",
)
def test_arm_frames_have_gdbs_functions_and_lines(tmp_path: Path) -> None:
    """A qsort callback's fault on ARM (Thumb-2): every frame, through libc's merge sort (its
    EHABI tables), has gdb-multiarch's pc, function and source line (a return address's line is
    the call's: looked up at the return address, Thumb bit cleared, minus one)."""
    exe = tmp_path / "frames"
    build_frames("arm-linux-gnueabihf-gcc", exe)
    subprocess.run(
        ["qemu-arm", str(exe), "qsort", "0"],
        cwd=tmp_path,
        preexec_fn=unlimited_cores,
        capture_output=True,
        check=False,
    )
    core = next(tmp_path.glob("qemu_*.core"))
    out = subprocess.run(
        [
            "gdb-multiarch",
            "-batch",
            "-nx",
            "-ex",
            "set backtrace past-main on",
            "-ex",
            "bt",
            str(exe),
            str(core),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    ).stdout
    theirs: dict[int, tuple[int | None, str, int | None]] = {}
    for line in out.splitlines():
        m = re.match(r"#(\d+)\s+(?:0x([0-9a-f]+) in )?([\w.]+) \(.*?\)(?: at \S+:(\d+))?$", line)
        if m:
            pc = int(m.group(2), 16) if m.group(2) else None
            theirs[int(m.group(1))] = (pc, m.group(3), int(m.group(4)) if m.group(4) else None)
    assert len(theirs) >= 9, out
    _r, stacks = run_json("stack", "--json", "--exe", str(exe), str(core))
    ours = [f for f in stacks["threads"][0]["frames"] if f["trust"] not in ("inline", "tail call")]
    assert len(ours) == len(theirs)
    for i, (pc, function, line) in sorted(theirs.items()):
        if pc is not None:
            assert int(ours[i]["pc"], 16) == pc, (i, ours[i], theirs[i])
        same = (
            ours[i]["function"].lstrip("_").split(".")[0] == function.lstrip("_").split(".")[0]
        )  # glibc aliases
        assert same, (i, ours[i], theirs[i])
        assert ours[i]["line"] == line, (i, ours[i], theirs[i])


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("qemu-aarch64", "aarch64-linux-gnu-gcc")),
    reason="needs qemu-user and the aarch64 cross compiler (./dev test installs them)",
)
@pytest.mark.parametrize("link", ["-pie", "-static"])
def test_an_arm64_call_through_a_wild_pointer_resumes_at_the_link_register(link: str, tmp_path: Path) -> None:
    """A call through a bad pointer ran nothing: the link register is its caller's return address,
    PIE or static, whatever drgn guesses past it (in a PIE's qemu core the text is not dumped, and
    drgn guessed __libc_start_main there, skipping call_wild and main)."""
    exe = tmp_path / "frames"
    build_frames("aarch64-linux-gnu-gcc", exe, link)
    subprocess.run(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(exe), "call-wild", "0"],
        cwd=tmp_path,
        preexec_fn=unlimited_cores,
        capture_output=True,
        check=False,
        timeout=120,
    )
    core = next(tmp_path.glob("qemu_*.core"))
    _r, regs = run_json("regs", str(core))
    _r, stacks = run_json("stack", "--sysroot", "/usr/aarch64-linux-gnu", "--exe", str(exe), str(core))
    frames = stacks["threads"][0]["frames"]
    assert frames[0]["module"] is None
    assert (int(frames[1]["pc"], 16), frames[1]["function"]) == (
        int(regs["registers"]["x30"], 16),
        "call_wild",
    )
    assert frames[1]["trust"] == "return address in lr"
    assert frames[2]["function"] == "main"
    assert frames[-1]["function"] == "_start"


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("qemu-aarch64", "aarch64-linux-gnu-gcc")),
    reason="needs qemu-user and the aarch64 cross compiler (./dev test installs them)",
)
def test_a_sysroot_counts_after_the_files_were_read(tmp_path: Path) -> None:
    """A core without NT_FILE (qemu's) names its libraries by the link map, and finds them under the
    sysroot: given after the mapped files were first read (the Python frame reader looks at them
    before the program is loaded), the sysroot still finds libc, and the walk reaches _start."""
    exe = tmp_path / "frames"
    build_frames("aarch64-linux-gnu-gcc", exe, "-pie")
    subprocess.run(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(exe), "call-wild", "0"],
        cwd=tmp_path, preexec_fn=unlimited_cores, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    core = next(tmp_path.glob("qemu_*.core"))
    with ElfCore(str(core)) as elf:
        assert "/lib/libc.so.6" not in {f.path for f in elf.files}  # not under / on this machine
        elf.search_first("/usr/aarch64-linux-gnu")
        assert "/lib/libc.so.6" in {f.path for f in elf.files}
        assert "/lib/libc.so.6" in {i.path for i in elf.images}
    with notmyfault.open(str(core), exe=str(exe), sysroot="/usr/aarch64-linux-gnu") as dump:
        assert dump.reader.files  # read before the program is loaded, as the CLI's stack does
        frames = dump.stacks().threads[0].frames
        assert [f.function for f in frames[-2:]] == ["__libc_start_main", "_start"]
        assert frames[-2].module == "/lib/libc.so.6"


PLUGIN_HOST = r"""
#include <signal.h>
#include <stdlib.h>
#include <string.h>
typedef int (*plugin_fn)(int);
__attribute__((noinline, visibility("hidden"))) int dispatch(plugin_fn f, int x) { return f(x) + 1; }
__attribute__((noinline)) int run_plugin(unsigned long address, int x) {
    return dispatch((plugin_fn)address, x) * 3;
}
"""

PLUGIN_MAIN = r"""
#include <signal.h>
#include <stdlib.h>
#include <string.h>
int run_plugin(unsigned long address, int x);
static void on_segv(int sig) { (void)sig; abort(); }
int main(int argc, char **argv) {
    if (argc > 2) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sigaction(SIGSEGV, &sa, 0);
    }
    return run_plugin(strtoul(argv[1], 0, 0), argc);
}
"""


@pytest.mark.parametrize("handler", [False, True], ids=["plain", "in-handler"])
@pytest.mark.parametrize("address", ["0", "8", "0x7000"])
def test_a_call_through_a_bad_pointer_from_a_stripped_library(
    handler: bool, address: str, tmp_path: Path
) -> None:
    """A call through a bad pointer from a function a stripped library keeps hidden (no symbol names
    its return address, as libffi's ffi_call_unix64 under ctypes): the caller is the word the call
    pushed at sp, named or not, and the walk goes on from it by the library's CFI: every pc is gdb's,
    with and without a SIGSEGV handler that aborts (a signal frame between)."""
    (tmp_path / "host.c").write_text(PLUGIN_HOST)
    (tmp_path / "main.c").write_text(PLUGIN_MAIN)
    subprocess.run(
        ["gcc", "-O2", "-fPIC", "-shared", "-s", "-o", "libhost.so", "host.c"], cwd=tmp_path, check=True
    )
    subprocess.run(
        ["gcc", "-O2", "-g", "-o", "main", "main.c", "-L.", "-lhost", "-Wl,-rpath,$ORIGIN"],
        cwd=tmp_path,
        check=True,
    )
    argv = [str(tmp_path / "main"), address] + (["handler"] if handler else [])
    r = subprocess.run(argv, cwd=tmp_path, preexec_fn=unlimited_cores, check=False, capture_output=True)
    assert r.returncode == (-6 if handler else -11), r
    core = tmp_path / "core"
    r, stacks = run_json("stack", "--json", str(core))
    assert r.returncode == 0, r.stderr
    assert physical_pcs(stacks["threads"][0]) == gdb_physical_pcs(core, str(tmp_path / "main"))
    host = [f for f in stacks["threads"][0]["frames"] if (f["module"] or "").endswith("/libhost.so")]
    assert [f["function"] for f in host] == [None, "run_plugin"]
    if address != "0":  # drgn goes on from a pc of 0 itself
        assert host[0]["trust"] == "return address at sp"
