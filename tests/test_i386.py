"""i386 cores written by the kernel: drgn does not unwind them, so our frame-pointer walk does, and
each frame's source line comes from the DWARF line table (of the call, for a return address, as gdb
looks it up). Checked against gdb's ``bt``: every frame's pc, function, file and line, through a
recursion deeper than any fixed cap of the walk.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_json
from tests.coretools import crash_program

SOURCE = """#include <stdlib.h>
__attribute__((noinline)) int store(int *p, int v) {
    *p = v;
    return v;
}
__attribute__((noinline)) int descend(int *p, int depth) {
    if (depth == 0)
        return store(p, 1);
    return descend(p, depth - 1) + 1;
}
int main(int argc, char **argv) {
    int *p = argc > 5 ? (int *)argv : 0;
    return descend(p, argc > 1 ? atoi(argv[1]) : 150);
}
"""
DEPTH = 150
"""Deeper than the 64 frames our frame-pointer walk stopped at before, without saying so."""


def _can_build_i386() -> bool:
    if not shutil.which("gcc") or not shutil.which("gdb"):
        return False
    probe = subprocess.run(
        ["gcc", "-m32", "-x", "c", "-", "-o", "/dev/null"], input="int main(void){return 0;}", text=True,
        capture_output=True, check=False,
    )  # fmt: skip
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_build_i386(), reason="needs gcc-multilib and gdb (./dev test installs them)"
)


@pytest.fixture(scope="module", params=["-O0", "-O1"])
def crashed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(executable, core) of the program built for i386 with frame pointers."""
    directory = tmp_path_factory.mktemp("i386")
    (directory / "deep.c").write_text(SOURCE)
    exe = directory / "deep"
    build = [
        "gcc",
        "-m32",
        "-g",
        request.param,
        "-fno-omit-frame-pointer",
        "-o",
        str(exe),
        str(directory / "deep.c"),
    ]
    return exe, crash_program(build, exe, directory)


def _gdb_bt(exe: Path, core: Path) -> list[tuple[int, str, str, int]]:
    """gdb's frames down to main: (pc, function, file's base name, line)."""
    out = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "bt", str(exe), str(core)],
        capture_output=True, text=True, timeout=300, check=False,
    ).stdout  # fmt: skip
    frames: dict[int, tuple[int, str, str, int]] = {}  # gdb shows frame 0 once on loading the core too
    for line in out.splitlines():
        m = re.match(r"#(\d+)\s+(?:0x([0-9a-f]+) in )?(\w+) \(.*\) at (\S+):(\d+)$", line)
        if m:
            pc = int(m.group(2), 16) if m.group(2) else -1
            frames[int(m.group(1))] = (pc, m.group(3), Path(m.group(4)).name, int(m.group(5)))
    return [frames[i] for i in sorted(frames)]


def test_every_frame_has_gdbs_pc_function_and_line(crashed: tuple[Path, Path]) -> None:
    exe, core = crashed
    gdb = _gdb_bt(exe, core)
    assert len(gdb) == DEPTH + 3, gdb[:3]
    assert (gdb[0][1], gdb[-1][1]) == ("store", "main")
    _r, stack = run_json("stack", str(core), "--max-frames", "0")
    thread = stack["threads"][0]
    assert thread["walk_stopped"] is None
    ours = thread["frames"]
    assert ours[0]["trust"] == "context"
    for i, (pc, function, file, line) in enumerate(gdb):
        mine = ours[i]
        if pc >= 0:  # gdb prints no pc for frame 0
            assert int(mine["pc"], 16) == pc, (i, mine, gdb[i])
        assert (mine["function"], Path(mine["file"] or "").name, mine["line"]) == (function, file, line), (
            i,
            mine,
        )


def test_the_page_shows_the_faulting_line(crashed: tuple[Path, Path]) -> None:
    _exe, core = crashed
    _r, page = run_json("analyze", str(core))
    assert page["arch"] == "i386"
    first = page["frames"][0]
    assert (first["function"], Path(first["file"]).name, first["line"]) == ("store", "deep.c", 3)
