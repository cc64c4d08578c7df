"""Minidumps, held to Breakpad's own expected outputs (../shared/corpus/breakpad-*) and to a second reader.

minidump2.dmp (Windows XP, x86): minidump_stackwalk's output with the
corpus' symbols is the reference for the system info, the crash, the
registers, the frames (addresses, names, lines) and the module list.  The
Linux minidumps: the crash their programs were written to make.  Every
corpus minidump is also read with the independent ``minidump`` package.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notmyfault.dumps import Minidump, open_dump
from tests.conftest import CORPUS, run_json, run_nmf

MD2 = CORPUS / "breakpad-minidump2"
DUMP = MD2 / "minidump2.dmp"
pytestmark = pytest.mark.shared


def _stackwalk() -> str:
    return (MD2 / "minidump2.stackwalk.out").read_text().replace("\r", "")


def _machine_readable() -> list[list[str]]:
    return [
        line.split("|")
        for line in (MD2 / "minidump2.stackwalk.machine_readable.out").read_text().splitlines()
    ]


def test_system_info_exception_and_process_equal_breakpads() -> None:
    with open_dump(DUMP) as md:
        assert isinstance(md, Minidump)
        si = md.system_info
        assert si is not None
        rows = {r[0]: r for r in _machine_readable() if r and r[0] in ("OS", "CPU", "Crash")}
        assert [si.os, f"{si.os_version[0]}.{si.os_version[1]}.{si.os_version[2]} {si.csd_version}"] == rows[
            "OS"
        ][1:]
        assert [si.arch, si.cpu_info, str(si.processors)] == rows["CPU"][1:]
        exc = md.exception
        assert exc is not None
        assert exc.code == 0xC0000005
        assert exc.parameters == (1, 0x45)
        assert exc.thread_id == 3060
        # minidump-stackwalk lists the dump writer's thread too (with no frames)
        assert [t.tid for t in md.threads] == [3060, 4544]
        assert md.dump_thread_id == 4544
        assert md.time_date_stamp == 1171480435
        assert md.misc_info.process_create_time == 1171480435
        assert md.misc_info.process_id == 3932
    _, a = run_json("analyze", str(DUMP))
    assert a["dump_kind"] == "minidump"
    assert a["exception"] == {
        "code": "0xc0000005",
        "name": "EXCEPTION_ACCESS_VIOLATION_WRITE",
        "parameters": ["0x1", "0x45"],
        "address": "0x40429e",  # the record's own address: the faulting instruction's
    }
    assert rows["Crash"][1:3] == [a["exception"]["name"], a["signal"]["address"]]
    assert a["crash_class"] == "NULL_POINTER_WRITE"
    assert a["access"] == "write"
    assert a["process"]["pid"] == 3932


def test_registers_equal_breakpads() -> None:
    frame0 = _stackwalk().split(" 1  test_app.exe!main")[0]
    expected = {k: int(v, 16) for k, v in re.findall(r"(\w+) = (0x[0-9a-f]+)", frame0)}
    _, regs = run_json("regs", str(DUMP))
    ours = {k: int(v, 16) for k, v in regs["registers"].items()}
    expected["eflags"] = expected.pop("efl")
    assert len(expected) == 10
    for name, value in expected.items():
        assert ours[name] == value, name
    text = run_nmf("regs", str(DUMP)).stdout
    assert "eip=0040429e" in text
    assert "in c:\\test_app.exe" in text


def test_frames_with_symbols_equal_breakpads() -> None:
    walked = [
        (int(e, 16), int(s, 16))
        for e, s in re.findall(r"eip = (0x[0-9a-f]+)\s+esp = (0x[0-9a-f]+)", _stackwalk())
    ]
    assert len(walked) == 4
    _, stacks = run_json("stack", str(DUMP), "--symbols", str(MD2 / "symbols"))
    frames = stacks["threads"][0]["frames"]
    assert [(int(f["pc"], 16), int(f["sp"], 16)) for f in frames] == walked
    expected = [r for r in _machine_readable() if len(r) == 7 and r[0] == "0"]
    for f, (_t, _n, module, function, file, line, _off) in zip(frames, expected, strict=True):
        assert f["module"].lower().endswith(module.lower())
        assert f["function"] == function
        assert (f["file"] or "") == file
        assert (str(f["line"]) if f["line"] is not None else "") == line
    # Breakpad: "Found by: call frame info" (STACK WIN records) for every caller
    found_by = re.findall(r"Found by: (.*)", _stackwalk())
    assert found_by == ["given as instruction pointer in context"] + ["call frame info"] * 3
    assert [f["trust"] for f in frames] == ["context", "cfi", "cfi", "cfi"]
    _, a = run_json("analyze", str(DUMP), "--symbols", str(MD2 / "symbols"))
    assert a["blamed"]["function"] == "`anonymous namespace'::CrashFunction"
    assert a["probably_caused_by"].startswith(
        "test_app.exe ( test_app!`anonymous namespace'::CrashFunction+0xe"
    )
    assert a["bucket"] == "FAULT:test_app:`anonymous namespace'::CrashFunction"


def test_frames_without_symbols_are_module_offsets() -> None:
    _, a = run_json("analyze", str(DUMP))
    assert [f["location"] for f in a["frames"]] == [
        "test_app+0x429e",
        "test_app+0x4200",
        "test_app+0x53ec",
        "kernel32+0x16fd7",
    ]
    assert any("give --symbols DIR" in n for n in a["notes"])
    assert a["bucket"] == "FAULT:test_app:test_app+0x429e"


def test_module_list_equals_breakpads() -> None:
    expected = [r for r in _machine_readable() if r and r[0] == "Module"]
    _, mods = run_json("modules", str(DUMP))
    by_name = {Path(m["path"].replace("\\", "/")).name.lower(): m for m in mods["modules"]}
    assert len(expected) == len(mods["modules"]) == 13
    for _, name, version, debug_file, debug_id, base, end, _main in expected:
        m = by_name[name.lower()]
        assert (m["file_version"] or "") == version, name
        assert Path(m["debug_file"].replace("\\", "/")).name == debug_file
        assert m["debug_id"] == debug_id
        assert int(m["start"], 16) == int(base, 16)
        assert int(m["end"], 16) - 1 == int(end, 16)
    text = run_nmf("modules", str(DUMP), "-v", "kernel32").stdout
    assert "File version: 5.1.2600.2945" in text
    assert "Debug id:     BCE8785C57B44245A669896B6A19B9542" in text


@pytest.mark.parametrize(
    ("name", "signal", "crash_class", "fault"),
    [
        ("linux_divide_by_zero", "SIGFPE", "DIVIDE_BY_ZERO", "pc"),
        ("linux_jmp_to_0", "SIGSEGV", "NULL_POINTER_EXECUTE", "0x0"),
        ("linux_null_read_av", "SIGSEGV", "NULL_POINTER_READ", "0x0"),
        ("linux_overflow", "SIGABRT", "ABORT", None),
    ],
)
def test_linux_minidumps_give_the_crash_their_program_makes(
    name: str, signal: str, crash_class: str, fault: str | None
) -> None:
    dump = CORPUS / f"breakpad-{name}" / f"{name}.dmp"
    r, a = run_json("analyze", str(dump))
    assert r.returncode == 0
    assert a["signal"]["name"] == signal
    assert a["crash_class"] == crash_class
    assert a["signal"]["address"] == (a["fault_pc"] if fault == "pc" else fault)
    assert a["arch"] == "x86_64"
    assert a["exception"] is None  # Linux: the signal fields carry it


def test_every_corpus_minidump_agrees_with_a_second_reader() -> None:
    """The ``minidump`` package (PyPI) reads the same exception, threads and modules."""
    pytest.importorskip("minidump")
    import logging

    from minidump.minidumpfile import MinidumpFile

    logging.getLogger().setLevel(logging.CRITICAL)  # it logs a traceback when it finds no Windows PEB
    # the five of the first corpus and Breakpad's own 45 test dumps (breakpad-testdata/)
    dumps = sorted(CORPUS.glob("breakpad-*/*.dmp"))
    assert len(dumps) >= 50
    for path in dumps:
        theirs = MinidumpFile.parse(str(path))
        with open_dump(path) as md:
            assert isinstance(md, Minidump)
            if theirs.exception is None:
                assert md.exception is None, path.name
                continue
            exc = theirs.exception.exception_records[0]
            assert md.exception is not None, path.name
            assert md.exception.thread_id == exc.ThreadId
            assert md.exception.code == int(exc.ExceptionRecord.ExceptionCode_raw)
            assert md.exception.address == exc.ExceptionRecord.ExceptionAddress
            assert [t.tid for t in md.threads if t.tid != exc.ThreadId] == [
                t.ThreadId for t in theirs.threads.threads if t.ThreadId != exc.ThreadId
            ], path.name
            assert [(m.name, m.base, m.size) for m in md.modules] == [
                (m.name, m.baseaddress, m.size) for m in theirs.modules.modules
            ]


def test_every_minidump_page_says_what_it_knows_and_no_none() -> None:
    """The page of every corpus minidump names the system and CPU (minidump-stackwalk's figures:
    tools/peer_agreement.py checks each field) and prints no Python None for a field the dump
    lacks (an old Breakpad writer's si_code, a minidump's uid): it leaves the field out."""
    dumps = sorted(CORPUS.glob("breakpad-*/*.dmp"))
    assert len(dumps) >= 50
    for path in dumps:
        r = run_nmf("analyze", str(path))
        assert r.returncode == 0, (path.name, r.stderr)
        assert not re.search(r"\bNone\b", r.stdout), path.name
        lines = r.stdout.splitlines()
        assert any(line.startswith("OS: ") for line in lines), path.name
        assert any(line.startswith("CPU: ") for line in lines), path.name
    page = run_nmf("analyze", str(CORPUS / "breakpad-linux_null_read_av" / "linux_null_read_av.dmp")).stdout
    assert "Arg4: SIGSEGV (11)\n" in page  # no si_code recorded: none shown
    assert "PROCESS: pid 11506, thread 11506, x86_64\n" in page  # no uid recorded
    assert "OS: Linux 3.3.8-gcg-201308121035 #2 SMP Mon Aug 12 10:38:28 PDT 2013\n" in page
    assert "CPU: x86_64, family 6 model 45 stepping 7, 1 CPU\n" in page
    assert (
        "CPU: x86, GenuineIntel family 6 model 13 stepping 8, 1 CPU\n" in run_nmf("analyze", str(DUMP)).stdout
    )


def test_bad_minidumps_get_one_line(tmp_path: Path) -> None:
    data = DUMP.read_bytes()
    cases = {
        "truncated": data[:100],
        "header-only": data[:20],
        "directory-past-end": data[:8] + (10**6).to_bytes(4, "little") + data[12:200],
        "wrong-version": data[:4] + b"\x00\x00" + data[6:],
    }
    for label, blob in cases.items():
        p = tmp_path / f"{label}.dmp"
        p.write_bytes(blob)
        r = run_nmf("analyze", str(p))
        assert r.returncode == 2, (label, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1, (label, r.stderr)
        assert r.stderr.startswith("notmyfault: error: "), label
        assert "Traceback" not in r.stderr
    r = run_nmf("poolused", str(DUMP))
    assert r.returncode == 2
    assert "is a minidump: analyze, stack, regs, modules, search and disasm read minidumps" in r.stderr


def test_search_finds_a_return_address_on_the_stack() -> None:
    """The return address into main (0x404200, frame 1) lies just below frame 1's esp."""
    _, hits = run_json("search", str(DUMP), "00424000", "--hex")
    assert [(h["address"], h["where"]) for h in hits["hits"]] == [("0x12fe8c", "memory")]
    r = run_nmf("disasm", str(DUMP), "0x40429e")
    assert r.returncode == 2
    assert "the dump does not hold that memory" in r.stderr  # minidump2 keeps no code
