"""Debug files kept decompressed by build-id (unwind/debugcache.py): the copy reads, to binutils'
readelf, exactly as the compressed original does, for zlib and zstd, 64- and 32-bit, little- and
big-endian; an analysis through the copy gives the same page as one without it; a corrupt section
leaves nothing behind; the cache is bounded and can be turned off."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from notmyfault.unwind import debugcache
from notmyfault.unwind.debugcache import compressed_sections, write_decompressed
from tests.conftest import run_nmf
from tests.coretools import NULL_WRITE_SOURCE, build_id, crash_program

SOURCE = """
struct point { int x, y; };
static int scale(struct point *p, int k) { return p->x * k + p->y; }
int main(int argc, char **argv) { struct point p = { argc, 2 }; return scale(&p, 3) > 100; }
"""


def readelf_dwarf(path: Path) -> str:
    """binutils' readelf's view of the DWARF (it inflates compressed sections itself), without the
    lines that name the file or a section's offset in it."""
    out = subprocess.run(
        ["readelf", "--debug-dump=info,abbrev,line,str,aranges", "-W", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(line for line in out.splitlines() if str(path) not in line)


def sections(path: Path) -> dict[str, str]:
    """Section name -> its flags column, from readelf."""
    out = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True, check=True)
    found = {}
    for line in out.stdout.splitlines():
        if "] ." in line:
            fields = line.split("]", 1)[1].split()
            found[fields[0]] = " ".join(fields[6:-3]) if len(fields) > 9 else ""
    return found


def _build(tmp: Path, compiler: str, flags: list[str], name: str) -> Path:
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (./dev setup installs it)")
    (tmp / "s.c").write_text(SOURCE)
    out = tmp / name
    subprocess.run([compiler, "-g", "-O1", *flags, str(tmp / "s.c"), "-o", str(out)], check=True)
    return out


@pytest.mark.parametrize(
    ("compiler", "flags", "compression"),
    [
        ("gcc", [], "zlib"),  # x86_64 executable
        ("gcc", [], "zstd"),
        ("arm-linux-gnueabihf-gcc", ["-c"], "zlib"),  # 32-bit, relocatable
        ("s390x-linux-gnu-gcc", ["-c"], "zstd"),  # big-endian
    ],
)
def test_the_copy_reads_as_the_compressed_original(
    tmp_path: Path, compiler: str, flags: list[str], compression: str
) -> None:
    plain = _build(tmp_path, compiler, flags, "plain")
    packed = tmp_path / "packed"
    objcopy = compiler.replace("gcc", "objcopy")  # the target's own binutils
    subprocess.run([objcopy, f"--compress-debug-sections={compression}", str(plain), str(packed)], check=True)
    assert compressed_sections(packed) >= 3
    assert "C" in sections(packed)[".debug_info"]
    copy = tmp_path / "cache" / "copy.debug"
    assert write_decompressed(str(packed), str(copy))
    assert compressed_sections(copy) == 0
    assert "C" not in sections(copy)[".debug_info"]
    assert readelf_dwarf(copy) == readelf_dwarf(packed) == readelf_dwarf(plain)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    # elfutils reads it too, and it keeps the original's build-id (what drgn checks)
    subprocess.run(["eu-readelf", "-S", str(copy)], check=True, capture_output=True)
    if not flags:
        assert build_id(copy) == build_id(packed)
    # a file with nothing compressed is not copied
    assert not write_decompressed(str(plain), str(tmp_path / "cache" / "plain.debug"))
    assert not (tmp_path / "cache" / "plain.debug").exists()


def test_a_debug_file_with_a_supplementary_file_is_not_copied(tmp_path: Path) -> None:
    """dwz's .gnu_debugaltlink (and DWARF 5's .debug_sup) name a file found from the debug file's
    own directory: a copy elsewhere would lose it, so none is made."""
    plain = _build(tmp_path, "gcc", [], "plain")
    packed = tmp_path / "packed"
    subprocess.run(["objcopy", "--compress-debug-sections=zlib", str(plain), str(packed)], check=True)
    link = tmp_path / "link"
    link.write_bytes(b"../../.dwz/x86_64-linux-gnu/libc6.debug\0" + bytes(20))
    alt = tmp_path / "alt"
    subprocess.run(["objcopy", f"--add-section=.gnu_debugaltlink={link}", str(packed), str(alt)], check=True)
    assert compressed_sections(alt) >= 3
    assert write_decompressed(str(packed), str(tmp_path / "cache" / "a.debug"))
    assert not write_decompressed(str(alt), str(tmp_path / "cache" / "b.debug"))
    assert sorted(os.listdir(tmp_path / "cache")) == ["a.debug"]


def test_a_corrupt_section_writes_nothing(tmp_path: Path) -> None:
    plain = _build(tmp_path, "gcc", [], "plain")
    packed = tmp_path / "packed"
    subprocess.run(["objcopy", "--compress-debug-sections=zlib", str(plain), str(packed)], check=True)
    out = subprocess.run(["readelf", "-S", "-W", str(packed)], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if ".debug_info" in x)
    offset = int(line.split("]", 1)[1].split()[3], 16)
    data = bytearray(packed.read_bytes())
    data[offset + 30 : offset + 60] = b"\xff" * 30  # past the compression header: the zlib stream
    packed.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="corrupt compressed section"):
        write_decompressed(str(packed), str(cache / "x.debug"))
    assert os.listdir(cache) == []


def test_an_analysis_through_the_cache_is_the_same_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program built with compressed DWARF (gcc -gz): the first analysis keeps its copy, the second
    reads through it (drgn's debug file is the copy), and both pages (frames with their source
    lines) are the same; with the cache off nothing is written."""
    from notmyfault.dumps import open_dump
    from notmyfault.unwind.elf import load_program

    (tmp_path / "nw.c").write_text(NULL_WRITE_SOURCE)
    exe = tmp_path / "nw"
    core = crash_program(["gcc", "-g", "-O1", "-gz=zlib", "nw.c", "-o", str(exe)], exe, tmp_path)
    cache = tmp_path / "xdg"
    env = {"XDG_CACHE_HOME": str(cache), "NOTMYFAULT_DEBUG_CACHE": "1"}
    first = run_nmf("stack", str(core), "--json", env=env)
    kept = cache / "notmyfault" / "debug" / f"{build_id(exe)}.debug"
    assert kept.is_file()
    assert compressed_sections(kept) == 0
    second = run_nmf("stack", str(core), "--json", env=env)
    assert first.returncode == second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    assert '"function": "store"' in first.stdout
    assert '"line": 2' in first.stdout
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("NOTMYFAULT_DEBUG_CACHE", raising=False)
    with open_dump(str(core)) as dump:
        program = load_program(dump)
        assert program.prog.main_module().debug_file_path == str(kept)
    off = tmp_path / "off"
    run_nmf("stack", str(core), "--json", env={"XDG_CACHE_HOME": str(off), "NOTMYFAULT_DEBUG_CACHE": "0"})
    assert not (off / "notmyfault").exists()
    # a command that only reads writes no copy (tests/test_read_only.py); triage's workers do
    fresh = tmp_path / "fresh"
    env = {"XDG_CACHE_HOME": str(fresh)}
    assert run_nmf("stack", str(core), env=env).returncode == 0
    assert not (fresh / "notmyfault").exists()
    r = run_nmf("triage", "ingest", str(core), "--db", str(tmp_path / "t.db"), env=env)
    assert r.returncode == 0, r.stderr
    assert (fresh / "notmyfault" / "debug" / kept.name).is_file()


def test_the_cache_keeps_within_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "debug"
    directory.mkdir()
    for i, name in enumerate(["old", "mid", "new"]):
        path = directory / f"{name}.debug"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    (directory / "other").write_bytes(b"y" * 5000)  # not a copy: never removed
    monkeypatch.setattr(debugcache, "CACHE_LIMIT", 2000)
    debugcache._evict(str(directory))
    assert sorted(os.listdir(directory)) == ["mid.debug", "new.debug", "other"]


@pytest.fixture
def in_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[debugcache._InMemory]:
    """A fresh record of this process's in-memory copies; the files it made are closed after."""
    fresh = debugcache._InMemory()
    monkeypatch.setattr(debugcache, "_memory", fresh)
    try:
        yield fresh
    finally:
        debugcache._collect()  # reaps a child a failed test left
        for path in fresh.paths.values():
            os.close(int(path.rsplit("/", 1)[1]))


def _debug_tree(tmp: Path, compression: str = "zlib") -> tuple[Path, str, Path]:
    """A program's DWARF split off into ``tmp/debug/.build-id/ab/cdef….debug``, compressed, as a
    distribution's -dbg package installs it: (the debug directory, the build-id, the debug file)."""
    (tmp / "s.c").write_text(SOURCE)
    exe = tmp / "prog"
    subprocess.run(["gcc", "-g", "-O2", str(tmp / "s.c"), "-o", str(exe)], check=True)
    bid = build_id(exe)
    debug = tmp / "debug" / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
    debug.parent.mkdir(parents=True)
    subprocess.run(
        ["objcopy", "--only-keep-debug", f"--compress-debug-sections={compression}", str(exe), str(debug)],
        check=True,
    )
    assert compressed_sections(debug) >= 3
    return tmp / "debug", bid, debug


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_a_debug_file_is_inflated_in_memory_by_a_child(
    tmp_path: Path, in_memory: debugcache._InMemory, compression: str
) -> None:
    """The copy a child makes reads, to readelf, as the compressed original; only location lists
    stay compressed; nothing is written to disk; the child is gone once the copy is taken."""
    import psutil

    directory, bid, debug = _debug_tree(tmp_path, compression)
    before = _tree(tmp_path)
    assert debugcache.inflate_ahead([bid.upper(), bid], str(directory))
    assert in_memory.child is not None
    child = in_memory.child[0]
    debugcache._collect()
    assert in_memory.child is None
    assert not psutil.pid_exists(child)
    path = in_memory.paths[bid]
    fd = int(path.rsplit("/", 1)[1])
    copy = Path(f"/proc/{os.getpid()}/fd/{fd}")  # the same file, for readelf in another process
    assert readelf_dwarf(copy) == readelf_dwarf(debug)
    flags = sections(copy)
    assert "C" not in flags[".debug_info"]
    assert "C" not in flags[".debug_line"]
    assert ("C" in flags[".debug_loclists"]) == ("C" in sections(debug)[".debug_loclists"])
    assert _tree(tmp_path) == before
    assert in_memory.size == os.fstat(fd).st_size
    # asked again, nothing more is started: this process holds the copy
    assert not debugcache.inflate_ahead([bid], str(directory))


def test_nothing_is_inflated_in_memory_where_it_cannot_be(
    tmp_path: Path, in_memory: debugcache._InMemory
) -> None:
    """No debug file for the build-id, text that is no build-id, a section whose compression header
    claims fewer bytes than it inflates to: no copy, every memory file closed, no error."""
    directory, bid, debug = _debug_tree(tmp_path)
    assert not debugcache.inflate_ahead(["00" * 20, "not-hex", ""], str(directory))
    # the first compressed section declares one byte less than it inflates to
    with open(debug, "r+b") as f:
        elf = debugcache._Elf(f)
        first = elf.compressed()[0]
        _kind, size, _, _ = elf.chdr(f, first)
        f.seek(elf.sections[first][4] + 8)
        f.write(struct.pack("<Q", size - 1))
    assert debugcache.inflate_ahead([bid], str(directory))
    pending = dict(in_memory.pending)
    debugcache._collect()
    assert in_memory.paths == {}
    for fd in pending.values():
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)


def test_an_analysis_through_the_memory_copy_is_the_same(tmp_path: Path) -> None:
    """glibc's debug file (Debian's libc6-dbg, compressed): an analysis that inflated it ahead in a
    child (asked for: ``Dump.prefetch``; without it nothing is inflated ahead) hands drgn the copy (libc's debug file is a memory file) and gives the same frames, source
    lines included, as one that did not."""
    from tests.coretools import null_write_core

    core = null_write_core(tmp_path)
    script = """
import json, sys, notmyfault
from notmyfault.unwind import debugcache
dump = notmyfault.open_core(sys.argv[1])
if sys.argv[2] == "on":  # an opt-in: the analysis alone forks nothing
    dump.prefetch()
a = dump.analysis()
from notmyfault.unwind.elf import _debug_file
libc = [m for m in dump.drgn_program().modules() if "libc.so" in str(m.name)]
found = _debug_file(dump.drgn_program(), [f.pc for f in a.frames if "libc" in (f.module or "")][0])
print(json.dumps({
    "frames": [(f.function, f.module, f.file, f.line, f.how) for f in a.frames],
    "libc_debug": [str(m.debug_file_path) for m in libc],
    "libc_build_id": libc[0].build_id.hex() if libc and libc[0].build_id else None,
    "opened": found[0] if found else None,
    "copies": sorted(debugcache._memory.paths),
}))
"""
    runs = {}
    for mode in ("on", "off"):
        r = subprocess.run(
            [sys.executable, "-c", script, str(core), mode],
            capture_output=True, text=True, timeout=300, env={**os.environ, "NOTMYFAULT_DEBUG_CACHE": "0"},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        runs[mode] = json.loads(r.stdout)
    if not runs["on"]["copies"]:
        libc = runs["off"]["libc_debug"]
        if not libc or libc == ["None"] or not compressed_sections(libc[0]):
            pytest.skip("glibc's debug file is not installed compressed here (libc6-dbg)")
    # drgn names the copy after its memory file; the analysis opens it through its descriptor
    assert runs["on"]["libc_debug"][0].startswith("/memfd:"), runs["on"]
    assert runs["on"]["opened"].startswith("/proc/self/fd/"), runs["on"]
    assert runs["off"]["opened"] == runs["off"]["libc_debug"][0]
    assert runs["off"]["copies"] == []
    assert runs["on"]["frames"] == runs["off"]["frames"]
    assert any(f[0] == "__libc_start_call_main" and f[3] for f in runs["on"]["frames"]), runs["on"]["frames"]
    # triage's workers keep the copy on disk: of the original, not of drgn's memory file
    fresh = tmp_path / "fresh"
    r = run_nmf(
        "triage", "ingest", str(core), "--db", str(tmp_path / "t.db"), env={"XDG_CACHE_HOME": str(fresh)}
    )
    assert r.returncode == 0, r.stderr
    kept = fresh / "notmyfault" / "debug" / f"{runs['on']['libc_build_id']}.debug"
    assert kept.is_file()
    assert compressed_sections(kept) == 0


def test_prefetch_takes_a_process_core_only(tmp_path: Path, in_memory: debugcache._InMemory) -> None:
    """``notmyfault analyze`` and ``stack`` prefetch the first argument that is an ELF process core:
    the executable given with --exe, a missing path, a directory and a text file are passed over."""
    from notmyfault.api.dump import prefetch
    from tests.coretools import null_write_core

    core = null_write_core(tmp_path)
    (tmp_path / "notes.txt").write_text("not a dump\n")
    for other in (tmp_path / "nw", tmp_path / "missing", tmp_path, tmp_path / "notes.txt"):
        assert not prefetch(other), other
    assert in_memory.child is None
    assert prefetch(core)
    r = run_nmf("analyze", "--exe", str(tmp_path / "nw"), str(core), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bucket"].endswith(":store"), r.stdout


def test_a_copy_whose_descriptor_was_taken_is_not_offered(
    tmp_path: Path, in_memory: debugcache._InMemory
) -> None:
    """Other code closed the memory file's descriptor and a pipe took its number: the copy is
    forgotten, so drgn is never handed the pipe (reading it would wait forever)."""
    directory, bid, _ = _debug_tree(tmp_path)
    assert debugcache.inflate_ahead([bid], str(directory))
    debugcache._collect()

    class Module:
        build_id = bytes.fromhex(bid)

    assert debugcache.memory_copy(Module()) == in_memory.paths[bid]
    fd = int(in_memory.paths[bid].rsplit("/", 1)[1])
    os.close(fd)
    r, w = os.pipe()
    try:
        if fd not in (r, w):
            os.dup2(r, fd)
        assert debugcache.memory_copy(Module()) is None
        assert bid not in in_memory.paths
    finally:
        for n in {r, w, fd}:
            os.close(n)


def test_a_child_that_hangs_is_killed_and_nothing_is_offered(
    tmp_path: Path, in_memory: debugcache._InMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that never finishes (here: its work replaced by a sleep) does not hang its parent:
    past COLLECT_SECONDS it is killed and reaped, and its memory files are closed."""
    import time

    import psutil

    directory, bid, _ = _debug_tree(tmp_path)
    monkeypatch.setattr(debugcache, "COLLECT_SECONDS", 0.5)
    monkeypatch.setattr(debugcache, "_inflate_in_child", lambda *args: time.sleep(3600))
    assert debugcache.inflate_ahead([bid], str(directory))
    assert in_memory.child is not None
    child = in_memory.child[0]
    fd = in_memory.pending[bid]
    started = time.monotonic()
    debugcache._collect()
    assert time.monotonic() - started < 30
    assert not psutil.pid_exists(child)
    assert in_memory.paths == {}
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


def test_a_pipe_whose_number_was_taken_is_neither_read_nor_closed(
    tmp_path: Path, in_memory: debugcache._InMemory
) -> None:
    """Other code closed the child's pipe and another pipe took its number (an event loop's wake-up
    pipe, say): collecting the child reads nothing from it and leaves it open."""
    import psutil

    directory, bid, _ = _debug_tree(tmp_path)
    assert debugcache.inflate_ahead([bid], str(directory))
    assert in_memory.child is not None
    child, done_r, _ = in_memory.child
    os.close(done_r)
    r, w = os.pipe()
    try:
        if done_r not in (r, w):
            os.dup2(r, done_r)
        os.write(w, b"wake")
        debugcache._collect()
        assert os.read(done_r, 16) == b"wake"
        assert not psutil.pid_exists(child)
        assert in_memory.paths == {}
    finally:
        for n in {r, w, done_r}:
            with contextlib.suppress(OSError):
                os.close(n)
