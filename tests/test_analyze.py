"""The analyzer, end to end on real cores: every catalog crash, the seed's leak, hangs, and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from notmyfault.analysis.signature import failure_kind
from notmyfault.faults.catalog import CATALOG, Access, CrashType
from tests.build_crashers import CATALOG_BUCKETS
from tests.conftest import CORPUS, run_json, run_nmf
from tests.coretools import gdb_frames, physical_pcs, read_core
from tests.leakutil import seed_scenario

CRASHES = [c for c in CATALOG if not c.takes_signal]


@pytest.fixture(scope="module")
def catalog_dumps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One real core per catalog type, made once for this module."""
    d = tmp_path_factory.mktemp("catalog-dumps")
    out = {}
    for c in CRASHES:
        _, report = run_json("crash", c.name, "--dump-dir", str(d))
        assert report["dump"] is not None, report["reason"]
        out[c.name] = report["dump"]["path"]
    return out


def _analyze(path: str) -> dict:
    r, data = run_json("analyze", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return data


@pytest.mark.parametrize("entry", CRASHES, ids=lambda c: c.name)
def test_analysis_of_every_catalog_crash(entry: CrashType, catalog_dumps: dict[str, str]) -> None:
    a = _analyze(catalog_dumps[entry.name])
    expected_fn = entry.frame or entry.scan_frame
    assert a["crash_class"] == entry.outcome.crash_class
    assert a["blamed"]["function"] == expected_fn
    assert os.path.basename(a["blamed"]["module"]).startswith("myfault.")
    assert a["bucket"] == CATALOG_BUCKETS.get(
        entry.name, f"{failure_kind(entry.outcome.crash_class)}:python3:{expected_fn}"
    )
    assert a["program"] == "python3"
    assert a["probably_caused_by"].startswith("myfault.")
    core = read_core(catalog_dumps[entry.name])
    assert a["signal"]["number"] == core.signo
    assert a["signal"]["code"] == core.si_code
    assert a["signal"]["code_name"] == entry.outcome.si_code_for()
    assert a["fault_pc"] == f"{core.pc:#x}"
    if a["signal"]["address"] is not None:
        assert int(a["signal"]["address"], 16) == core.si_addr
    if entry.outcome.access in (Access.READ, Access.WRITE, Access.EXECUTE) and entry.outcome.signal in (
        signal.SIGSEGV,
        signal.SIGBUS,
    ):
        assert a["access"] == entry.outcome.access.value
    if entry.outcome.abort_message:
        assert entry.outcome.abort_message in a["abort_message"]
    assert a["frames"][0]["trust"] == "context"
    assert a["schema_version"] == 4


def test_stack_trash_frames_are_found_by_scanning(catalog_dumps: dict[str, str]) -> None:
    a = _analyze(catalog_dumps["stack-trash"])
    assert a["frames"][0]["pc"] == "0x414141414141"
    assert a["frames"][0]["module"] is None
    assert a["blamed"]["trust"] == "scan"
    assert any("scanning the stack" in n for n in a["notes"])


def test_stack_overflow_names_the_recursion(catalog_dumps: dict[str, str]) -> None:
    """The whole stack of a stack overflow is walked (past drgn's 1,024 frames and our old cap of
    512): the recursion's depth and the stack's frame count equal eu-stack's (-n 0: no limit), the
    outermost frames are main's callers, and the JSON says how many frames it left out."""
    path = catalog_dumps["stack-overflow"]
    a = _analyze(path)
    note = next(n for n in a["notes"] if "recurses" in n)
    assert note.startswith("myfault_stack_overflow recurses: ")
    depth = int(note.split("recurses: ")[1].split()[0].replace(",", ""))
    out = subprocess.run(
        ["eu-stack", "-n", "0", "--core", path], capture_output=True, text=True, timeout=600, check=False
    )
    listed = re.findall(r"^#\d+\s+0x([0-9a-f]+)\s+(\S+)", out.stdout, re.M)
    theirs = [name for _pc, name in listed]
    assert depth == sum(1 for name in theirs if name == "myfault_stack_overflow") > 20_000
    total = a["frames_total"]
    assert total >= len(theirs)  # and the inline frames
    assert a["frames_elided"] == {"from": 500, "to": total - 501, "count": total - 1000}
    outer = [f["function"] for f in a["frames"][-6:]]
    assert outer[-3:] == ["__libc_start_call_main", "__libc_start_main_impl", "_start"]
    assert all(f["function"] == "myfault_stack_overflow" for f in a["frames"][:100])
    r, stacks = run_json("stack", path, "--max-frames", "0")
    assert r.returncode == 0, r.stderr
    thread = stacks["threads"][0]
    assert thread["frames_total"] == len(thread["frames"]) == total
    assert thread["frames_elided"] is None
    assert thread["walk_stopped"] is None
    assert physical_pcs(thread) == [
        int(pc, 16) for pc, _name in listed
    ]  # every frame's pc, as eu-stack walks
    text = run_nmf("stack", path).stdout
    assert f"... {total - 1000:,} frames not shown (#500 to #{total - 501};" in text
    assert "!_start+" in text.rstrip().splitlines()[-1]


def test_frames_match_gdb(catalog_dumps: dict[str, str]) -> None:
    """Differential: the pcs and names of the first frames equal gdb's backtrace of the same core."""

    def physical(pcs: list[int]) -> list[int]:
        # gdb and drgn expand inlined calls differently; the physical frames (distinct pcs) must agree
        return [pc for i, pc in enumerate(pcs) if i == 0 or pc != pcs[i - 1]]

    for name in ("high-irql", "double-free", "jump-to-null", "bus-error"):
        ours = _analyze(catalog_dumps[name])["frames"]
        theirs = gdb_frames(catalog_dumps[name])
        ours_pcs = physical([int(f["pc"], 16) for f in ours])
        # gdb also makes up "tail call" frames from DWARF call-site data: no return address of
        # theirs is on the stack (a function that jumped to its callee), so they are not compared
        theirs_pcs = physical([int(f["pc"]) for f in theirs if f["kind"] != "tailcall"])
        n = min(8, len(theirs_pcs))
        assert ours_pcs[:n] == theirs_pcs[:n], name
        assert ours[0]["function"] == theirs[0]["name"] or theirs[0]["name"] is None


def test_text_page(catalog_dumps: dict[str, str]) -> None:
    r = run_nmf("analyze", catalog_dumps["high-irql"])
    assert r.returncode == 0
    out = r.stdout
    assert "INVALID_MEMORY_READ (SIGSEGV / SEGV_MAPERR)" in out
    assert (
        "Arg2: read, the access (from the faulting instruction (mov eax, dword ptr [rbx + 8]))" in out
        or "Arg2: read" in out
    )
    assert "Probably caused by : myfault.cpython" in out
    assert "( myfault!myfault_high_irql+0x" in out
    assert "BUCKET_ID: FAULT:python3:myfault_high_irql" in out
    assert "#0   " in out
    assert "(context)" in out


def test_regs_and_stack_commands(catalog_dumps: dict[str, str]) -> None:
    path = catalog_dumps["null-deref"]
    core = read_core(path)
    r, regs = run_json("regs", path)
    assert r.returncode == 0
    assert regs["registers"]["rip" if core.machine == "EM_X86_64" else "pc"] == f"{core.pc:#x}"
    assert regs["instruction"]["access"] == "write"
    text = run_nmf("regs", path).stdout
    assert "flags:" in text
    r, stacks = run_json("stack", path)
    assert stacks["threads"][0]["frames"][0]["function"] == "myfault_null_deref"
    assert run_nmf("stack", path, "--thread", "1").returncode == 2


def test_poolused_counts_the_seed_leak(seed_core: tuple[str, dict, dict]) -> None:
    """The seed: nonpaged leak tagged Leak, then high-irql; poolused puts Leak on top with the exact numbers."""
    _, limit, report = seed_core
    r, used = run_json("poolused", report["dump"]["path"])
    assert r.returncode == 0
    top = used["tags"][0]
    assert (top["tag"], top["pool"]) == ("Leak", "nonpaged")
    assert top["blocks"] == limit["blocks"]
    assert top["bytes"] == limit["leaked"]
    assert top["pids"] == [report["pid"]]
    a = _analyze(report["dump"]["path"])
    assert a["crash_class"] == "INVALID_MEMORY_READ"
    assert a["blamed"]["function"] == "myfault_high_irql"
    text = run_nmf("poolused", report["dump"]["path"]).stdout
    assert text.splitlines()[1].startswith("Leak   nonpaged")


def test_poolused_without_tags(catalog_dumps: dict[str, str]) -> None:
    r = run_nmf("poolused", catalog_dumps["abort"])
    assert r.returncode == 0
    assert "No tagged pool blocks" in r.stdout


def test_stack_all_shows_deadlocked_threads(dump_dir: Path, catalog_dumps: dict[str, str]) -> None:
    lines = run_nmf(
        "hang", "deadlock", "--crash-after", "1", "--json", "--dump-dir", str(dump_dir)
    ).stdout.splitlines()
    report = json.loads(lines[-1])
    r, stacks = run_json("stack", report["dump"]["path"], "--all")
    assert r.returncode == 0
    names = [{f["function"] for f in t["frames"]} for t in stacks["threads"]]
    assert any("myfault_deadlock_a" in n for n in names)
    assert any("myfault_deadlock_b" in n for n in names)
    assert any("myfault_watchdog" in n for n in names)
    a = _analyze(report["dump"]["path"])
    assert a["crash_class"] == "DEADLOCK"
    assert a["signal"]["name"] == "SIGABRT"  # the watchdog ended it; the story is the deadlock
    assert a["bucket"] == "DEADLOCK:python3:myfault_deadlock_a"  # canonical, whatever the thread order
    cycle = a["deadlock"]
    assert [w["function"] for w in cycle] == ["myfault_deadlock_a", "myfault_deadlock_b"]
    assert cycle[0]["owner"] == cycle[1]["tid"]
    assert cycle[1]["owner"] == cycle[0]["tid"]
    assert cycle[0]["mutex"] != cycle[1]["mutex"]
    assert any("waits for mutex" in n for n in a["notes"])
    # a crash that is not a deadlock has no cycle
    assert _analyze(catalog_dumps["abort"])["deadlock"] == []


def _bad_inputs(tmp: Path, real_core: str) -> dict[str, Path]:
    text = tmp / "notes.txt"
    text.write_text("not a core\n")
    empty = tmp / "empty"
    empty.write_bytes(b"")
    zeros = tmp / "zeros"
    zeros.write_bytes(b"\0" * 4096)
    truncated = tmp / "truncated"
    truncated.write_bytes(Path(real_core).read_bytes()[:2000])
    elf_exe = tmp / "true"
    shutil.copy("/bin/true", elf_exe)
    headers_only = tmp / "headers-only"
    data = Path(real_core).read_bytes()
    headers_only.write_bytes(data[:64])
    cases = {
        "text": text,
        "empty": empty,
        "zeros": zeros,
        "truncated": truncated,
        "executable": elf_exe,
        "elf-header-only": headers_only,
        "missing": tmp / "no-such-file",
        "directory": tmp,
    }
    minidumps = sorted(CORPUS.glob("breakpad-linux_null_read_av/*.dmp")) if CORPUS.exists() else []
    if minidumps:
        cases["minidump"] = minidumps[0]
    return cases


@pytest.mark.parametrize("command", ["analyze", "stack", "regs", "poolused"])
def test_bad_input_one_line_exit_2(command: str, tmp_path: Path, catalog_dumps: dict[str, str]) -> None:
    for label, path in _bad_inputs(tmp_path, catalog_dumps["abort"]).items():
        if label == "minidump" and command != "poolused":
            continue  # analyze, stack and regs read minidumps (tests/test_minidump.py)
        r = run_nmf(command, str(path))
        assert r.returncode == 2, (label, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr, label
        assert len(r.stderr.strip().splitlines()) == 1, (label, r.stderr)
        assert r.stdout == "", label


@pytest.fixture(scope="module")
def seed_core(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, dict]:
    """The seed's dump: 64 MB of nonpaged pool tagged Leak, then high-irql."""
    limit, report = seed_scenario(tmp_path_factory.mktemp("seed"))
    return report["dump"]["path"], limit, report


def test_vm_warns_of_excessive_nonpaged_pool(
    seed_core: tuple[str, dict, dict], catalog_dumps: dict[str, str]
) -> None:
    path, limit, _ = seed_core
    r, vm = run_json("vm", path)
    assert r.returncode == 0
    assert vm["pool_nonpaged"] == limit["leaked"]
    assert any(w.startswith("Excessive NonPaged Pool Usage") for w in vm["warnings"])
    assert vm["dumped"] >= limit["leaked"]
    assert vm["stacks"] > 0
    assert "Excessive NonPaged Pool Usage" in run_nmf("vm", path).stdout
    _, plain = run_json("vm", catalog_dumps["abort"])
    assert plain["warnings"] == []
    assert plain["pool_nonpaged"] == 0


def test_search_finds_the_tag_in_myfault(seed_core: tuple[str, dict, dict]) -> None:
    """s -a 'Leak': the tag's owner is myfault (its rodata, read from the matching file), and the blocks hold it."""
    path, limit, _ = seed_core
    r, found = run_json("search", path, "Leak", "--module", "myfault")
    assert r.returncode == 0
    assert found["hits"]
    for hit in found["hits"]:
        assert hit["where"].startswith("myfault+")
        assert os.path.basename(hit["module"]).startswith("myfault.")
    # the hit really is 'Leak' in the module file, at the offset the hit names (a shared
    # object's file offsets equal its addresses relative to its base, as ld lays them out)
    first = found["hits"][0]
    offset = int(first["where"].split("+")[1], 16)
    with open(first["module"], "rb") as f:
        f.seek(offset)
        assert f.read(4) == b"Leak"
    _, everywhere = run_json("search", path, "4c65616b", "--hex")
    r, none = run_json("search", path, "no-such-bytes-9c41e7")  # as grep: nothing found, exit 1
    assert (r.returncode, none["hits"]) == (1, [])
    r = run_nmf("search", path, "no-such-bytes-9c41e7")
    assert (r.returncode, r.stdout, r.stderr) == (1, "no hits\n", "")
    in_blocks = [h for h in everywhere["hits"] if h["source"] == "dump" and h["module"] is None]
    assert len(in_blocks) >= limit["blocks"]  # every block header carries the tag


def test_modules_match_readelf(catalog_dumps: dict[str, str]) -> None:
    import subprocess

    r, mods = run_json("modules", catalog_dumps["abort"])
    assert r.returncode == 0
    by_name = {m["name"]: m for m in mods["modules"]}
    mf = by_name["myfault"]
    readelf = subprocess.run(["readelf", "-n", mf["path"]], capture_output=True, text=True, check=True).stdout
    assert f"Build ID: {mf['build_id']}" in readelf
    assert mf["file_matches"] is True
    assert "libc" in by_name
    assert by_name["libc"]["build_id"]
    text = run_nmf("modules", catalog_dumps["abort"], "-v", "myfault").stdout
    assert f"Build-id:     {mf['build_id']}" in text
    assert "(build-id matches)" in text
    # lmvm's version: myfault carries a package note (readelf shows it), read back from the dump's
    # copy of its ELF header page
    from notmyfault import __version__

    assert f'Packaging Metadata: {{"type":"pypi","name":"notmyfault","version":"{__version__}"}}' in readelf
    assert mf["version"] == __version__
    assert mf["version_source"] == "package note in the dump"
    assert mf["package"] == {"type": "pypi", "name": "notmyfault", "version": __version__}
    assert f"Version:      {__version__} (from the package note in the dump)" in text
    assert by_name["libc"]["package"] is None  # Debian's libc has no package note
    assert by_name["libc"]["version_source"] == "file name"
    bad = run_nmf("modules", catalog_dumps["abort"], "-v", "nosuchmodule")
    assert bad.returncode == 2
    assert "no module named 'nosuchmodule'" in bad.stderr


def test_a_rebuilt_file_is_not_trusted(catalog_dumps: dict[str, str]) -> None:
    from notmyfault.dumps import ElfCore, open_dump
    from notmyfault.dumps.buildid import dumped_build_id, file_usable

    with open_dump(catalog_dumps["abort"], ElfCore) as core:
        path = next(f.path for f in core.files if "/myfault." in f.path)
        assert dumped_build_id(core, path) is not None
        assert file_usable(core, path, path)
        assert not file_usable(core, path, "/bin/true")  # another build-id


def test_disasm_matches_gdb(catalog_dumps: dict[str, str]) -> None:
    import subprocess
    import sys

    path = catalog_dumps["high-irql"]
    r, dis = run_json("disasm", path, "myfault_high_irql", "-n", "4")
    assert r.returncode == 0
    ours = [i["text"].split()[0] for i in dis["instructions"]]
    gdb = subprocess.run(
        [
            "gdb",
            "-batch",
            "-nx",
            "-ex",
            "set disassembly-flavor intel",
            "-ex",
            "x/4i myfault_high_irql",
            os.path.realpath(sys.executable),
            path,
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    theirs = [
        line.split(":", 1)[1].split()[0]
        for line in gdb.splitlines()
        if "<myfault_high_irql" in line and ":" in line
    ]
    assert ours == theirs[:4]
    bad = run_nmf("disasm", path, "no_such_symbol")
    assert bad.returncode == 2
    assert "no symbol named 'no_such_symbol'" in bad.stderr
