"""Our own crashme, built the ways real programs come (tests/build_crashme.py), crashed by the kernel,
and read back: exact function names on every build, frame addresses equal to gdb's.

PIE, non-PIE, static and static PIE keep unwind tables and frame pointers;
-O2 -fomit-frame-pointer leaves only the tables (CFI); the fp-no-cfi build
leaves only frame pointers, and its leaf function sets up no frame, which a
plain frame-pointer walk skips (gdb's prologue analysis does not; neither do
we). The stripped build has neither symbols nor debug info: module+offset,
and with --exe pointing at the unstripped file of the same build, the names.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from tests.build_crashme import STRIPPED, build
from tests.conftest import run_json
from tests.coretools import gdb_frames

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)

CHAIN = ["crashme_write", "crashme_level2", "crashme_level1", "main"]


@pytest.fixture(scope="module")
def crashme(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """{variant: (executable, core)}: every variant built and crashed once."""
    root = tmp_path_factory.mktemp("crashme")
    out = {}
    for variant, exe in build(root / "bin").items():
        run = root / f"run-{variant}"
        run.mkdir()

        def unlimited() -> None:
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

        r = subprocess.run([str(exe)], cwd=run, preexec_fn=unlimited, capture_output=True, check=False)
        assert r.returncode == -11, (variant, r.returncode)
        out[variant] = (exe, run / "core")
    return out


def _physical(pcs: list[int]) -> list[int]:
    return [pc for i, pc in enumerate(pcs) if i == 0 or pc != pcs[i - 1]]


@pytest.mark.parametrize("variant", ["pie", "nopie", "static", "static-pie", "omit-fp", "fp-no-cfi"])
def test_every_build_gives_the_exact_chain(variant: str, crashme: dict[str, tuple[Path, Path]]) -> None:
    exe, core = crashme[variant]
    r, stacks = run_json("stack", str(core))
    assert r.returncode == 0
    frames = stacks["threads"][0]["frames"]
    assert [f["function"] for f in frames[:4]] == CHAIN
    module = f"crashme-{variant}"
    assert [f["location"].split("+")[0] for f in frames[:4]] == [f"{module}!{fn}" for fn in CHAIN]
    assert frames[0]["offset"] == "0x0"  # the write is crashme_write's first instruction
    theirs = [f for f in gdb_frames(core, str(exe)) if f["kind"] != "tailcall"]
    assert [f["name"] for f in theirs[:4]] == CHAIN
    assert (
        _physical([int(f["pc"], 16) for f in frames])[:4]
        == _physical([int(str(f["pc"])) for f in theirs])[:4]
    )
    if variant == "fp-no-cfi":
        assert frames[1]["trust"] == "return address at sp"  # what a frame-pointer walk alone misses
    else:
        assert [f["trust"] for f in frames[:4]] == ["context", "unwound", "unwound", "unwound"]
    _, a = run_json("analyze", str(core))
    assert a["crash_class"] == "NULL_POINTER_WRITE"
    assert a["signal"]["address"] == "0x0"
    assert a["blamed"]["function"] == "crashme_write"
    assert a["bucket"] == f"FAULT:{module}:crashme_write"
    if variant.startswith("static"):
        assert not [m for m in run_json("modules", str(core))[1]["modules"] if m["name"] == "libc"]


def _module_offsets(core: Path, module: str, frames: list[dict[str, str]]) -> list[int]:
    _, mods = run_json("modules", str(core))
    start = int(next(m for m in mods["modules"] if m["name"] == module)["start"], 16)
    return [int(f["pc"], 16) - start for f in frames]


def test_stripped_build_gives_offsets_then_names_with_exe(crashme: dict[str, tuple[Path, Path]]) -> None:
    exe, core = crashme[STRIPPED]
    _, stacks = run_json("stack", str(core))
    frames = stacks["threads"][0]["frames"][:4]
    assert [f["function"] for f in frames] == [None] * 4
    # the same code as the pie build: the same offsets in the module, whatever ASLR did
    pie_exe, pie_core = crashme["pie"]
    _, pie = run_json("stack", str(pie_core))
    offsets = _module_offsets(pie_core, "crashme-pie", pie["threads"][0]["frames"][:4])
    assert _module_offsets(core, f"crashme-{STRIPPED}", frames) == offsets
    assert [f["location"] for f in frames] == [f"crashme-{STRIPPED}+{o:#x}" for o in offsets]
    theirs = [f for f in gdb_frames(core, str(exe)) if f["kind"] != "tailcall"]
    assert [int(f["pc"], 16) for f in frames] == [int(str(f["pc"])) for f in theirs[:4]]
    # the unstripped file of the same build brings the names back
    _, named = run_json("stack", str(core), "--exe", str(pie_exe))
    assert [f["function"] for f in named["threads"][0]["frames"][:4]] == CHAIN
    _, a = run_json("analyze", str(core), "--exe", str(pie_exe))
    assert a["blamed"]["function"] == "crashme_write"
    assert a["bucket"] == f"FAULT:crashme-{STRIPPED}:crashme_write"
