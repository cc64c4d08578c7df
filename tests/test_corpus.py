"""The analyzer on real cores nobody here made (../shared/corpus), held to what gdb and eu-stack said of them.

The corpus carries no executables or libraries, as many real cores come: the
analyzer must say what the core alone supports, never fail or trace back.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS, run_json

pytestmark = pytest.mark.shared


def _elf_cores() -> list[tuple[str, Path]]:
    if not (CORPUS / "MANIFEST.tsv").exists():
        return []
    out = []
    with open(CORPUS / "MANIFEST.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["format"] != "elf-core":
                continue
            folder = CORPUS / row["folder"]
            cores = [p for p in folder.iterdir() if p.is_file() and p.suffix not in (".txt", ".sym")]
            out.append((row["folder"], cores[0]))
    return out


CORES = _elf_cores()


@pytest.mark.parametrize(("folder", "core"), CORES, ids=[c[0] for c in CORES])
def test_every_elf_core_is_analysed(folder: str, core: Path) -> None:
    r, a = run_json("analyze", str(core))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert a["signal"]["name"], folder
    assert a["crash_class"] != "UNKNOWN", folder
    eu = folder_file(folder, "EUSTACK.txt")
    pid = re.search(r"^PID (\d+) - core", eu or "", re.M)
    if pid:  # NT_PRPSINFO read right (x32's differs from i386's and x86_64's)
        assert a["process"]["pid"] == int(pid.group(1)), folder
        tids = [int(t) for t in re.findall(r"^TID (\d+):", eu or "", re.M)]
        assert a["crashed_tid"] in tids
    gdb = folder_file(folder, "GDB.txt")
    if gdb:
        m = re.search(r"Program terminated with signal (SIG\w+)", gdb)
        assert m
        assert a["signal"]["name"] == m.group(1)
        rip = re.search(r"^rip\s+(0x[0-9a-f]+)", gdb, re.M)
        if rip:
            assert a["fault_pc"] == rip.group(1)
            _, regs = run_json("regs", str(core))
            rsp = re.search(r"^rsp\s+(0x[0-9a-f]+)", gdb, re.M)
            assert rsp
            assert regs["registers"]["rsp"] == rsp.group(1)
        first = re.search(r"^#0\s+(0x[0-9a-f]+)", gdb, re.M)
        if first:
            assert int(a["frames"][0]["pc"], 16) == int(first.group(1), 16)


def folder_file(folder: str, name: str) -> str | None:
    p = CORPUS / folder / name
    return p.read_text() if p.exists() else None


def test_multithreaded_core_threads() -> None:
    core = next(c for f, c in CORES if f == "drgn-multithreaded")
    r, stacks = run_json("stack", str(core), "--all")
    assert r.returncode == 0
    tids = [t["tid"] for t in stacks["threads"]]
    assert len(tids) == 13
    assert 2265413 in tids
    _, a = run_json("analyze", str(core))
    assert a["crashed_tid"] == 2265419
    assert a["crash_class"] == "KILLED_BY_SIGNAL"


def _eustack_frames(folder: str, tid: int | None = None) -> list[int]:
    text = folder_file(folder, "EUSTACK.txt") or ""
    blocks = re.split(r"^TID (\d+):", text, flags=re.M)
    for i in range(1, len(blocks), 2):
        if tid is None or int(blocks[i]) == tid:
            return [int(x, 16) for x in re.findall(r"^#\d+\s+(0x[0-9a-f]+)", blocks[i + 1], re.M)]
    return []


@pytest.mark.parametrize("folder", ["elfutils-backtrace-x86_64.fp", "elfutils-backtrace-x86_64"])
def test_x86_64_backtrace_cores_unwind_like_eu_stack(folder: str) -> None:
    """Without the executable the frame-pointer build still unwinds: our frames are eu-stack's, in order.

    One frame is missed: raise() in the static libc keeps no frame pointer, so
    the walk from its frame skips its caller (sigusr2, 0x401b0d); eu-stack
    had the executable's CFI.
    """
    core = next(c for f, c in CORES if f == folder)
    _, a = run_json("analyze", str(core))
    ours = [int(f["pc"], 16) for f in a["frames"]]
    theirs = _eustack_frames(folder, a["crashed_tid"])
    assert theirs, "eu-stack listed no frames for the crashed thread"
    assert ours[0] == theirs[0]
    it = iter(theirs)
    assert all(pc in it for pc in ours), (ours, theirs)  # a subsequence, in order
    assert len(ours) >= 4


def test_crashme_modules_match_drgns_expectations() -> None:
    """Build-ids and load ranges of the five modules, as drgn's own tests assert them (EXPECTED.txt).

    Ends are compared to the page: this drgn reports the mapped range (page-rounded),
    the expectations the segment's exact end.
    """
    core = next(c for f, c in CORES if f == "drgn-crashme")
    expected = {
        "/home/osandov/crashme": (0x400000, 0x404010, "99a6524c4df01fbff9b43a6ead3d8e8e6201568b"),
        "/home/osandov/crashme.so": (
            0x7F6112CA9000,
            0x7F6112CAD010,
            "7bd58f10e741c3c8fbcf2031aa65f830f933d616",
        ),
        "/lib64/libc.so.6": (0x7F6112AAE000, 0x7F6112C9EB70, "77c77fee058b19c6f001cf2cb0371ce3b8341211"),
        "/lib64/ld-linux-x86-64.so.2": (
            0x7F6112CB6000,
            0x7F6112CEC2D8,
            "91dcd0244204201b616bbf59427771b3751736ce",
        ),
        "linux-vdso.so.1": (0x7F6112CB4000, 0x7F6112CB590F, "fdc3e4d463911345fbc6d9cc432e5ebc276e8e03"),
    }
    r, mods = run_json("modules", str(core))
    assert r.returncode == 0
    got = {m["path"]: m for m in mods["modules"]}
    assert set(got) == set(expected)
    for path, (start, end, build_id) in expected.items():
        m = got[path]
        assert m["build_id"] == build_id
        assert int(m["start"], 16) == start
        assert end <= int(m["end"], 16) < end + 4096
    # none of these files is on this machine; ld.so is, but another build: it must not be trusted
    ld = got["/lib64/ld-linux-x86-64.so.2"]
    if Path(ld["path"]).exists():
        assert ld["file_matches"] is False


@pytest.mark.parametrize("folder", ["elfutils-backtrace-i386.fp", "elfutils-backtrace-i386"])
def test_i386_cores_unwind_by_frame_pointers(folder: str) -> None:
    """drgn refuses to unwind i386 cores; our own frame-pointer walk takes over, and says so."""
    core = next(c for f, c in CORES if f == folder)
    r, stacks = run_json("stack", str(core))
    assert r.returncode == 0
    frames = stacks["threads"][0]["frames"]
    assert frames[0]["trust"] == "context"
    assert frames[0]["function"] == "__kernel_vsyscall"  # the vdso's symbols are in the dump
    walked = [f for f in frames[1:] if f["trust"] == "frame pointer"]
    assert len(walked) >= 4
    sps = [int(f["sp"], 16) for f in walked]
    assert sps == sorted(sps)  # each frame lies further up the stack
    _, regs = run_json("regs", str(core))
    assert int(regs["registers"]["eip"], 16) == int(frames[0]["pc"], 16)


def test_x32_core_says_why_it_has_one_frame() -> None:
    """x32: drgn cannot unwind it and the static executable is not in the corpus: say so, don't guess."""
    core = next(c for f, c in CORES if f == "elfutils-backtrace-x32")
    _, a = run_json("analyze", str(core))
    assert a["arch"] == "x32"
    assert len(a["frames"]) == 1
    assert a["frames"][0]["pc"] == "0x40b2a2"  # gdb's #0 (raise)
    assert any(
        n.startswith("only the frame in the registers") and "backtrace.x32.exe" in n for n in a["notes"]
    )
