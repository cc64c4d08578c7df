"""Modules placed by the rules of the loaders, on kernel cores that hold no ELF header.

A core written with coredump_filter's bit 4 off holds no file's first page (as a core of another
machine's configuration may), and a small program linked without separate code maps its first page
a second time for its data: that copy of the header lies one page above the image, as it does for
every program under 64 KiB pages (aarch64). The rules, from drgn's and gdb's loaders:

- a header is the image's only where an ET_EXEC sits at its link address and every PT_LOAD lands on
  a mapping of the file at the file offset it names;
- a library is listed wherever the dynamic loader's link map names it or NT_FILE maps it executable,
  headers or not (as gdb's ``info sharedlibrary`` and eu-unstrip list them).

Checked, for a non-PIE and a PIE build, against gdb (the libraries and every frame, with the files
here) and against the files themselves (load addresses from NT_FILE as eu-readelf prints it, and
build-ids as eu-readelf reads them), once with the files in place and once with them gone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_json
from tests.coretools import build_id, gdb_frames, unlimited_cores

LIBRARY = "int lib_value = 7;\nint lib_poke(int *p) { return *p + lib_value; }\n"
PROGRAM = """#include <stdio.h>
int lib_poke(int *p);
int counter = 3;
__attribute__((noinline)) int crash_here(int *p) { counter++; return lib_poke(p); }
int main(void) {
    FILE *f = fopen("/proc/self/coredump_filter", "w");  /* anonymous memory only: no ELF header */
    fprintf(f, "0x3");
    fclose(f);
    return crash_here((int *)0x10);
}
"""
ONE_SEGMENT_PAGES = ["-Wl,-z,max-page-size=4096", "-Wl,-z,noseparate-code"]
"""Text and data share the file's first page: the data mapping is a copy of the header."""


def _crash(directory: Path, pie: bool) -> Path:
    (directory / "lib.c").write_text(LIBRARY)
    (directory / "prog.c").write_text(PROGRAM)
    cc = ["gcc", "-g", "-O0", *ONE_SEGMENT_PAGES]
    subprocess.run([*cc, "-shared", "-fPIC", "-o", "libpoke.so", "lib.c"], cwd=directory, check=True)
    link = ["-pie", "-fPIE"] if pie else ["-no-pie"]
    build = [*cc, *link, "-o", "prog", "prog.c", "-L.", "-lpoke", f"-Wl,-rpath,{directory}"]
    subprocess.run(build, cwd=directory, check=True)
    r = subprocess.run(
        ["./prog"], cwd=directory, preexec_fn=unlimited_cores, capture_output=True, check=False
    )
    assert r.returncode == -11, r
    core = directory / "core"
    assert core.is_file(), f"no core in {directory} (core_pattern must be 'core')"
    return core


def _nt_file(core: Path) -> list[tuple[int, int, int, str]]:
    """NT_FILE as eu-readelf prints it: (start, end, file offset, path)."""
    text = subprocess.run(["eu-readelf", "-n", str(core)], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"^\s+([0-9a-f]+)-([0-9a-f]+) ([0-9a-f]+) +\d+ +(\S+)$", text, re.M)
    return [(int(a, 16), int(b, 16), int(o, 16), p) for a, b, o, p in rows]


@pytest.fixture(scope="module", params=["no-pie", "pie"])
def crashed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(directory of the program and its library, the core), per build."""
    if not shutil.which("eu-readelf"):
        pytest.skip("needs elfutils (./dev test installs it)")
    directory = tmp_path_factory.mktemp(f"placement-{request.param}")
    return directory, _crash(directory, request.param == "pie")


def test_the_core_holds_no_header_and_a_copy_one_page_up(crashed: tuple[Path, Path]) -> None:
    """The premise, from eu-readelf: prog's first mapping is not dumped, its data mapping maps file
    offset 0 again, and the dump holds an ELF header there."""
    directory, core = crashed
    prog = [m for m in _nt_file(core) if m[3] == str(directory / "prog")]
    assert len(prog) >= 2, prog
    assert (prog[0][2], prog[1][2]) == (0, 0), prog
    loads = subprocess.run(["readelf", "-lW", str(core)], capture_output=True, text=True, check=True).stdout
    sizes = {int(v, 16): int(fs, 16) for v, fs in re.findall(r"LOAD\s+0x\w+ 0x(\w+) 0x\w+ 0x(\w+)", loads)}
    assert sizes[prog[0][0]] == 0, "the header page was dumped: coredump_filter was not applied"
    assert sizes[prog[1][0]] > 0


def _expected(directory: Path, core: Path) -> dict[str, tuple[int, str]]:
    """name -> (load address: the start of the file's first mapping, build-id of the file)."""
    out: dict[str, tuple[int, str]] = {}
    for start, _end, offset, path in _nt_file(core):
        name = Path(path).name
        if path.startswith(str(directory)) and offset == 0 and name not in out:
            out[name] = (start, build_id(path))
    return out


def _check_modules(directory: Path, core: Path, where: Path) -> None:
    expected = _expected(directory, core)
    _r, mods = run_json("modules", str(where))
    found = {Path(m["path"]).name: m for m in mods["modules"]}
    for name, (start, bid) in expected.items():
        assert name in found, (name, sorted(found))
        assert int(found[name]["start"], 16) == start, (name, found[name], hex(start))
        assert found[name]["build_id"] == bid, (name, found[name])
    assert any(Path(p).name.startswith("libc.so") for p in found), sorted(found)


def test_modules_are_placed_where_nt_file_maps_them(crashed: tuple[Path, Path]) -> None:
    directory, core = crashed
    _check_modules(directory, core, core)


def test_frames_equal_gdbs_and_the_libraries_gdb_lists_are_listed(crashed: tuple[Path, Path]) -> None:
    directory, core = crashed
    gdb = gdb_frames(core, str(directory / "prog"))
    _r, stack = run_json("stack", str(core))
    ours = stack["threads"][0]["frames"]
    assert [f["name"] for f in gdb[:3]] == ["lib_poke", "crash_here", "main"], gdb
    for theirs, mine in zip(gdb[:3], ours[:3], strict=True):
        assert (int(mine["pc"], 16), mine["function"]) == (theirs["pc"], theirs["name"]), (mine, theirs)
    assert Path(str(gdb[0]["solib"])).name == Path(ours[0]["module"]).name == "libpoke.so"
    libraries = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "info sharedlibrary", str(directory / "prog"), str(core)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    listed = {Path(p).name for p in re.findall(r"^0x\w+\s+0x\w+\s+\S+\s+(\S+)$", libraries, re.M)}
    assert {"libpoke.so", "libc.so.6"} <= listed, libraries
    _r, mods = run_json("modules", str(core))
    ours_listed = {Path(m["path"]).name for m in mods["modules"]}
    assert listed <= ours_listed, (listed, ours_listed)


def test_with_the_files_gone_the_modules_stay_placed_and_blamed(
    crashed: tuple[Path, Path], tmp_path: Path
) -> None:
    """The core of another machine: its program and library are not here (nor beside the core)."""
    directory, core = crashed
    expected = _expected(directory, core)
    alone = tmp_path / "elsewhere" / "core"
    alone.parent.mkdir()
    shutil.copy(core, alone)
    hidden = directory.with_name(directory.name + "-gone")
    directory.rename(hidden)
    try:
        _r, mods = run_json("modules", str(alone))
        found = {Path(m["path"]).name: m for m in mods["modules"]}
        for name, (start, bid) in expected.items():
            assert int(found[name]["start"], 16) == start, (name, found[name], hex(start))
            assert found[name]["build_id"] == bid, (name, found[name])
            assert found[name]["file"] is None
        _r, page = run_json("analyze", str(alone))
        pc = int(page["fault_pc"], 16)
        assert page["probably_caused_by"] == f"libpoke.so ( libpoke+{pc - expected['libpoke.so'][0]:#x} )"
        frames = page["frames"]
        prog_base = expected["prog"][0]
        assert [f["location"].split("+")[0] for f in frames[:3]] == ["libpoke", "prog", "prog"], frames[:3]
        assert all(int(f["location"].split("+")[1], 16) == int(f["pc"], 16) - prog_base for f in frames[1:3])
    finally:
        hidden.rename(directory)
