"""A cut-off core says so on every page, in JSON and in triage (issue 18, item 0: dumps are whole or
say they are not), and a file that is no regular file is refused with one line instead of hanging."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.build_crashers import build, crash_all
from tests.conftest import proc_state, run_json, run_nmf
from tests.coretools import null_write_core

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, int]:
    """A real core and a copy cut in the middle of its memory: (whole, cut, segments, segments cut)."""
    root = tmp_path_factory.mktemp("trunc")
    whole = crash_all(build(root / "build"), root / "dumps", 1)["null-write"][0]
    with open(whole, "rb") as f:
        loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
    ends = sorted(s["p_offset"] + s["p_filesz"] for s in loads)
    middle = [s for s in loads if s["p_filesz"]][len(loads) // 2]
    size = middle["p_offset"] + middle["p_filesz"] // 2  # in the middle of a segment with data
    cut_path = root / "core.cut"
    cut_path.write_bytes(whole.read_bytes()[:size])
    return whole, cut_path, len(loads), sum(1 for e in ends if e > size)


def test_every_page_of_a_cut_core_says_it_is_truncated(cut: tuple[Path, Path, int, int]) -> None:
    whole, path, segments, missing = cut
    r, a = run_json("analyze", str(path))
    assert r.returncode == 0, r.stderr
    assert a["truncated"] is True
    size = path.stat().st_size
    assert a["truncation"].startswith(f"the core is truncated: the file ends at {size} bytes")
    assert f"{missing} of {segments} memory segments" in a["truncation"]
    assert run_json("analyze", str(whole))[1]["truncated"] is False
    for command in ("analyze", "stack", "regs", "vm", "modules"):
        r = run_nmf(command, str(path))
        assert r.returncode == 0, (command, r.stderr)
        assert r.stdout.splitlines()[0 if command != "analyze" else 4].startswith(
            "WARNING: the core is truncated"
        ), (command, r.stdout[:400])
        assert r.stdout.count("WARNING: the core is truncated") == 1, command
        _, data = run_json(command, str(path))
        assert data["truncated"] is True, command
        assert "WARNING" not in run_nmf(command, str(whole)).stdout, command
    # vm counts what the file holds, not what its headers promised
    _, vm = run_json("vm", str(path))
    _, full = run_json("vm", str(whole))
    assert vm["dumped"] < full["dumped"]
    with open(path, "rb") as f:
        held = sum(
            max(0, min(s["p_filesz"], size - s["p_offset"]))
            for s in ELFFile(f).iter_segments()
            if s["p_type"] == "PT_LOAD"
        )
    assert vm["dumped"] == held


def test_triage_keeps_a_cut_core_apart(cut: tuple[Path, Path, int, int], tmp_path: Path) -> None:
    whole, path, _, _ = cut
    db = str(tmp_path / "t.db")
    r, out = run_json("triage", "ingest", "--db", db, str(whole), str(path))
    assert r.returncode == 0, r.stderr
    assert (out["analysed"], out["failed"]) == (2, 0)
    _, buckets = run_json("triage", "buckets", "--db", db)
    assert [b["count"] for b in buckets["buckets"]] == [1]  # the whole one only
    assert buckets["truncated"] == 1
    assert "1 dumps are truncated" in run_nmf("triage", "buckets", "--db", db).stdout
    _, listed = run_json("triage", "show", "truncated", "--db", db)
    assert [d["path"] for d in listed["dumps"]] == [str(path)]
    assert listed["dumps"][0]["error"].startswith("the core is truncated")
    page = tmp_path / "r.html"
    assert run_nmf("triage", "report", "--html", str(page), "--db", db).returncode == 0
    assert "Truncated (not counted above)" in page.read_text()


def test_a_fifo_or_a_directory_is_refused_at_once(cut: tuple[Path, Path, int, int], tmp_path: Path) -> None:
    fifo = tmp_path / "core.fifo"
    os.mkfifo(fifo)
    r = run_nmf("analyze", str(cut[0]), "--exe", str(fifo), timeout=20)  # hung in drgn before
    assert r.returncode == 2
    assert f"{fifo} is not a regular file" in r.stderr
    for path, what in ((fifo, "a FIFO"), (tmp_path, "a directory")):
        for command in ("analyze", "stack", "search"):
            args = [command, str(path)] + (["x"] if command == "search" else [])
            try:
                r = run_nmf(*args, timeout=20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{command} {what} hung")
            assert r.returncode == 2, (command, what, r.stderr)
            assert r.stderr.count("\n") == 1, (command, what, r.stderr)
            assert f"is {what}, not a dump file" in r.stderr, (command, what, r.stderr)


def test_a_crash_whose_core_is_cut_short_is_no_success(tmp_path: Path) -> None:
    """RLIMIT_CORE below the core's size (a hard limit the child cannot raise: as root, without
    CAP_SYS_RESOURCE) makes the kernel cut the core and still say it dumped one, as a full disk does.
    crash used to report the 976 KiB piece of a 14 MB core as its dump, exit 0."""
    cmd = ["prlimit", "--core=1000000:1000000"]
    if os.geteuid() == 0:
        cmd += ["setpriv", "--bounding-set=-sys_resource"]
    cmd += [sys.executable, "-m", "notmyfault", "crash", "null-deref", "--dump-dir", str(tmp_path), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    dump = report["dump"]
    assert dump["size"] < 1_100_000  # the kernel stops at the limit, give or take its last page
    assert dump["problem"].startswith("the core is truncated: the file ends at")
    assert "RLIMIT_CORE 1000000 bytes" in dump["problem"]
    assert Path(dump["path"]).stat().st_size == dump["size"]  # kept, for what it is worth
    text = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=120, check=False)
    assert text.returncode == 1
    assert "Incomplete dump: the core is truncated" in text.stdout


def _grow_notes(src: Path, dst: Path, size: int) -> None:
    """Copy the core ``src`` to ``dst`` with its PT_NOTE segment claiming ``size`` bytes, the file
    made long enough (sparse: it costs no disk)."""
    import struct

    shutil.copy(src, dst)
    with open(dst, "r+b") as f:
        h = ELFFile(f).header
        for i in range(h["e_phnum"]):
            at = h["e_phoff"] + i * h["e_phentsize"]
            f.seek(at)
            (p_type,) = struct.unpack("<I", f.read(4))
            if p_type == 4:  # PT_NOTE: p_offset at +8, p_filesz at +32 (ELF64)
                f.seek(at + 8)
                (offset,) = struct.unpack("<Q", f.read(8))
                f.seek(at + 32)
                f.write(struct.pack("<Q", size))
                f.truncate(max(offset + size, f.seek(0, 2)))
                return
    raise AssertionError("no PT_NOTE")


@pytest.mark.shared
def test_a_crafted_3_gb_note_is_refused_at_once(tmp_path: Path) -> None:
    """A sparse 3 GB PT_NOTE took analyze past 10 minutes and 5 GB of memory (drgn read it all)."""
    from tests.conftest import CORPUS

    crafted = tmp_path / "crafted.core"
    _grow_notes(CORPUS / "drgn-crashme" / "crashme.core", crafted, 3_000_000_000)
    for command in ("analyze", "stack", "modules"):
        r = run_nmf(command, str(crafted), timeout=30)
        assert r.returncode == 2, (command, r.stderr)
        assert "its notes take 3000000000 bytes, more than any core writer makes" in r.stderr


def _process_in(directory: Path) -> int | None:
    """The pid of a process working in ``directory``, if one is."""
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if os.readlink(cwd) == str(directory):
                return int(cwd.parent.name)
        except OSError:
            continue
    return None


def test_a_core_left_by_a_killed_run_is_adopted_by_the_next(tmp_path: Path) -> None:
    """A run killed after its child's core was written, before it moved the core out of its hidden
    staging directory, left it there for ever (314 MB and 803 MB seen). The parent is stopped once
    its child runs, so the child crashes and its core is complete (the child a zombie) before the
    parent is killed. The next run moves the core into the dump directory, says so, and removes the
    directory."""
    import time

    parent = subprocess.Popen(
        [sys.executable, "-m", "notmyfault", "crash", "null-deref", "--dump-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    staging, child = None, None
    while time.monotonic() < deadline and child is None:
        for d in tmp_path.glob(".incoming-*"):
            if (child := _process_in(d)) is not None:
                staging = d
                break
        time.sleep(0.001)
    assert staging is not None, "the child never started"
    assert child is not None
    parent.send_signal(signal.SIGSTOP)
    while time.monotonic() < deadline and proc_state(child) not in ("Z", None):
        time.sleep(0.01)
    assert proc_state(child) == "Z", "the child did not crash"  # its core is written whole
    parent.kill()
    parent.wait()
    cores = list(staging.glob("core*"))
    assert len(cores) == 1
    core = cores[0]
    r, report = run_json("crash", "abort", "--dump-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    adopted = [n for n in report["notes"] if n.startswith("adopted ")]
    assert len(adopted) == 1, report["notes"]
    path = Path(adopted[0].split()[1])
    assert path.parent == tmp_path
    assert path.name == f"{core.name}.adopted"
    assert not list(tmp_path.glob(".incoming-*"))
    _, a = run_json("analyze", str(path))
    assert a["crash_class"] == "NULL_POINTER_WRITE"
    assert a["truncated"] is False


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_unreadable_input_is_no_success(cut: tuple[Path, Path, int, int], tmp_path: Path) -> None:
    """Without the right to read them (root without CAP_DAC_OVERRIDE here, as another user would be),
    files were 'not a core dump' and directories held '0 dumps', exit 0. Now each is named with the
    reason, what could be read is stored, and the exit code is 2."""
    whole = cut[0]
    fleet = tmp_path / "fleet"
    (fleet / "locked").mkdir(parents=True)
    shutil.copy(whole, fleet / "a.core")
    shutil.copy(whole, fleet / "b.core")
    (fleet / "b.core").write_bytes((fleet / "b.core").read_bytes() + b"x")  # another hash
    (fleet / "b.core").chmod(0)
    (fleet / "locked").chmod(0)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    r = subprocess.run(
        [*drop, sys.executable, "-m", "notmyfault", "triage", "ingest", "-r", "--json",
         "--db", str(tmp_path / "t.db"), str(fleet)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    out = json.loads(r.stdout)
    assert (out["found"], out["stored"]) == (1, 1)
    assert out["unreadable"] == [
        {"path": str(fleet / "b.core"), "error": "Permission denied"},
        {"path": str(fleet / "locked"), "error": "Permission denied"},
    ]
    assert out["not_dumps"] == out["skipped"] == []


def _elf_core(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    """A minimal x86_64 ELF core: its notes (owner, type, description) and one page of memory."""
    body = b""
    for owner, kind, desc in notes:
        name = owner + b"\0"
        body += struct.pack("<III", len(name), len(desc), kind)
        body += name.ljust(-(-len(name) // 4) * 4, b"\0") + desc.ljust(-(-len(desc) // 4) * 4, b"\0")
    phoff, phnum = 64, 2
    notes_at = phoff + 56 * phnum
    load_at = -(-(notes_at + len(body)) // 4096) * 4096
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, phoff, 0, 0, 64, 56, phnum, 0, 0, 0)
    note_ph = struct.pack("<IIQQQQQQ", 4, 0, notes_at, 0, 0, len(body), 0, 4)
    load_ph = struct.pack("<IIQQQQQQ", 1, 6, load_at, 0x400000, 0, 4096, 4096, 4096)
    data = header + note_ph + load_ph + body
    return data.ljust(load_at, b"\0") + bytes(4096)


def _as_owner(core: bytes, owner: bytes) -> bytes:
    """A real Linux core whose notes (CORE's and LINUX's) are relabelled as ``owner``'s (8 bytes with
    its NUL, as CORE's and LINUX's take once padded): the layout stays the same."""
    out = bytearray(core)
    phoff, phentsize, phnum = struct.unpack_from("<Q", core, 32)[0], *struct.unpack_from("<HH", core, 54)
    for i in range(phnum):
        kind, _flags, offset, _v, _p, filesz = struct.unpack_from("<IIQQQQ", core, phoff + i * phentsize)
        if kind != 4:
            continue
        at, end = offset, offset + filesz
        while at + 12 <= end:
            namesz, descsz, _type = struct.unpack_from("<III", core, at)
            if namesz in (5, 6) and len(owner) + 1 == 8:
                struct.pack_into("<I", out, at, 8)
                out[at + 12 : at + 20] = owner + b"\0"
            at += 12 + -(-namesz // 4) * 4 + -(-descsz // 4) * 4
    return bytes(out)


@pytest.mark.parametrize(
    ("owner", "system"),
    [(b"NetBSD-CORE", "NetBSD"), (b"FreeBSD", "FreeBSD"), (b"OpenBSD", "OpenBSD"), (b"illumos", "illumos")],
)
def test_a_core_of_another_kernel_is_refused_in_one_line(tmp_path: Path, owner: bytes, system: str) -> None:
    """A core's notes name the kernel that wrote it: another kernel's core is refused by name in one
    line (a NetBSD core was read as Linux's: pid 0, signal 32767)."""
    synthetic = tmp_path / "synthetic.core"
    synthetic.write_bytes(_elf_core([(owner, 1, bytes(64)), (owner, 2, bytes(32))]))
    cases = [synthetic]
    if len(owner) + 1 == 8:  # a real Linux core relabelled: the same layout, another writer
        real = null_write_core(tmp_path)
        relabelled = tmp_path / "relabelled.core"
        relabelled.write_bytes(_as_owner(real.read_bytes(), owner))
        cases.append(relabelled)
    for core in cases:
        for command in ("analyze", "stack", "regs"):
            r = run_nmf(command, str(core))
            assert r.returncode == 2, (core, command, r.stderr)
            assert r.stderr.strip() == (
                f"notmyfault: error: {core} is a core of {system}, not of Linux: notmyfault reads Linux's "
                "cores (their notes are CORE's and LINUX's); analyse it on its own system (gdb, lldb)"
            )


def test_a_linux_core_with_the_same_layout_still_reads(tmp_path: Path) -> None:
    """The control: the synthetic core with Linux's owner is not refused as another system's."""
    core = tmp_path / "linux.core"
    core.write_bytes(_elf_core([(b"CORE", 1, bytes(336)), (b"LINUX", 0x202, bytes(512))]))
    r = run_nmf("regs", str(core))
    assert "not of Linux" not in r.stderr
