"""The reduced core the Python frame reader gets from a large core (unwind/pycore.py).

Each interpreter the machine has runs a program that leaks 75 MB in 64 KiB blocks it keeps no pointer
to (their addresses live only in Python ints, whose digits are not the address; each its own
mapping, most next to another, as a leak's blocks are), builds a chain of
blocks each holding a pointer to the next at a random offset (only its head is held, in a ctypes
pointer), maps a marked buffer with the mmap module, then crashes in a C function while two other
threads wait. The reduced core must keep every block the roots reach and leave the leak out; pystack
and gdb must read it as they read the whole core.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from notmyfault.dumps.elfcore import ElfCore, Segment
from notmyfault.unwind.pycore import REDUCE_ABOVE, _write, reachable, reduce_core
from tests.conftest import run_json
from tests.coretools import unlimited_cores
from tests.test_python_stacks import INTERPRETERS, pystack_threads, real_path

pytestmark = [
    pytest.mark.crash,
    pytest.mark.skipif(
        Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
        reason="needs the plain 'core' pattern",
    ),
]

LEAKED, CHAIN, BLOCK = 1200, 24, 1 << 16
MARKER = b"notmyfault-reachable-marker"

APP = f"""\
import ctypes
import json
import mmap
import random
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
BLOCK = {BLOCK}


def block(n=[0]):
    n[0] += 1  # every other block with MAP_NORESERVE: neighbours, but never one mapping
    a = libc.mmap(None, BLOCK, 3, 0x02 | 0x20 | 0x8000 | (0x4000 if n[0] % 2 else 0), -1, 0)
    assert a and a != 2**64 - 1
    ctypes.memset(a, 0x5A, BLOCK)  # no word of it is a pointer
    return a


leaked = [block() for _ in range({LEAKED})]
chain = [block() for _ in range({CHAIN})]
rng = random.Random()
for here, there in zip(chain, chain[1:]):
    ctypes.c_uint64.from_address(here + 8 * rng.randrange(BLOCK // 8)).value = there
head = ctypes.c_void_p(chain[0])
marked = mmap.mmap(-1, 1 << 20)
marked.write({MARKER!r})
at = ctypes.addressof(ctypes.c_char.from_buffer(marked))
with open("blocks.json", "w") as f:
    json.dump({{"leaked": leaked, "chain": chain, "marked": at}}, f)
lock = threading.Lock()


def idle(ready):
    ready.set()
    time.sleep(60)


def waiter(ready):
    ready.set()
    lock.acquire()


def parse(buf):
    return ctypes.string_at(1, len(buf))


def main():
    lock.acquire()
    for target in (idle, waiter):
        ready = threading.Event()
        threading.Thread(target=target, args=(ready,), daemon=True).start()
        ready.wait()
    time.sleep(0.2)
    parse(b"12345678")


main()
"""


@pytest.fixture(scope="module", params=list(INTERPRETERS))
def crashed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict]:
    """(interpreter, core, the blocks' addresses) for one interpreter."""
    interpreter = INTERPRETERS[request.param]
    if not interpreter.exists():
        pytest.skip(f"{interpreter} is not on this machine")
    d = tmp_path_factory.mktemp("pycore" + request.param.split()[0])
    (d / "app.py").write_text(APP)
    r = subprocess.run(
        [str(interpreter), "app.py"], cwd=d, preexec_fn=unlimited_cores, capture_output=True, timeout=120
    )
    assert r.returncode == -11, (r.returncode, r.stderr)
    return real_path(interpreter), d / "core", json.loads((d / "blocks.json").read_text())


def data(core: ElfCore, s: Segment) -> bytes:
    with open(core.path, "rb") as f:
        return os.pread(f.fileno(), s.filesz, s.offset)


def test_the_reduced_core_keeps_what_the_roots_reach(
    crashed: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    _, core_path, blocks = crashed
    core = ElfCore(core_path)
    assert sum(s.filesz for s in core.segments) > REDUCE_ABOVE
    r = reduce_core(core, str(tmp_path))
    assert r is not None
    reduced = ElfCore(r.path)
    kept = {s.vaddr: s for s in reduced.segments}
    assert len(kept) == r.kept
    assert r.kept + r.left == len(core.segments)
    assert r.over_budget == 0

    # the chain is reached through every link, the leak is not
    assert all(reduced.segment_at(a) is not None for a in blocks["chain"])
    leaked_kept = sum(reduced.segment_at(a) is not None for a in blocks["leaked"])
    assert leaked_kept <= LEAKED // 20, leaked_kept  # a stale copy of an address may keep a few
    assert r.left_bytes >= (LEAKED - leaked_kept) * BLOCK
    assert reduced.read(blocks["marked"], len(MARKER)) == MARKER  # held by the mmap object

    # what it keeps, it keeps whole: headers, notes and every byte
    for s in reduced.segments:
        original = core.segment_at(s.vaddr)
        assert original is not None
        assert (original.vaddr, original.memsz, original.filesz, original.flags) == (
            s.vaddr, s.memsz, s.filesz, s.flags,
        )  # fmt: skip
        assert hashlib.sha256(data(reduced, s)).digest() == hashlib.sha256(data(core, original)).digest()
    assert reduced.threads == core.threads
    assert reduced.files == core.files
    assert reduced.auxv == core.auxv
    assert reduced.size == max(s.offset + s.filesz for s in reduced.segments)
    assert r.kept_bytes < 64 << 20


def test_python_frames_read_from_the_reduced_core_are_pystacks_on_the_whole(
    crashed: tuple[Path, Path, dict],
) -> None:
    interpreter, core, _ = crashed
    r, data = run_json("stack", str(core), "--all")
    assert r.returncode == 0, r.stderr
    ours = {
        t["tid"]: [(p["file"], p["line"], p["function"]) for p in t["python"]["frames"]]
        for t in data["threads"]
        if t["python"]
    }
    assert len(ours) == 3
    assert pystack_threads(core, interpreter) == ours
    r, a = run_json("analyze", str(core))
    assert a["python_error"] is None
    assert a["blamed_python"]["function"] == "parse"
    assert a["python_callee"] == "ctypes.string_at"


def gdb_frames(core: Path, interpreter: Path) -> list[str]:
    r = subprocess.run(
        ["gdb", "-nx", "-batch", "-ex", "thread apply all bt", str(interpreter), str(core)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+)", r.stdout, re.M)


def test_gdb_reads_the_reduced_core_as_the_whole(crashed: tuple[Path, Path, dict], tmp_path: Path) -> None:
    """An oracle that is not the reader it was made for: gdb's native stacks of every thread."""
    interpreter, core_path, _ = crashed
    r = reduce_core(ElfCore(core_path), str(tmp_path))
    assert r is not None
    whole = gdb_frames(core_path, interpreter)
    assert "_PyEval_EvalFrameDefault" in whole
    assert gdb_frames(Path(r.path), interpreter) == whole


def test_the_budget_bounds_what_is_kept(crashed: tuple[Path, Path, dict]) -> None:
    _, core_path, blocks = crashed
    core = ElfCore(core_path)
    everything, over = reachable(core)
    assert over == 0
    roots, _ = reachable(core, budget=0)
    roots_bytes = sum(s.filesz for s in roots)
    budget = roots_bytes + 4 * BLOCK
    some, over = reachable(core, budget=budget)
    assert sum(s.filesz for s in some) <= budget
    assert over >= 1
    assert len(everything) > len(some) >= len(roots)
    assert sum(core.segment_at(a) in some for a in blocks["chain"]) < CHAIN


def test_extended_program_header_numbering(crashed: tuple[Path, Path, dict], tmp_path: Path) -> None:
    """PN_XNUM (a process with 65,535 mappings or more): the count in section 0, read by readelf and
    by ElfCore alike."""
    _, core_path, _ = crashed
    core = ElfCore(core_path)
    keep, _ = reachable(core)
    path = tmp_path / "xnum.core"
    _write(core, keep, str(path), extended=True)
    out = subprocess.run(["readelf", "-hlW", str(path)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Number of program headers:\s+65535 \((\d+)\)", out).group(1) == str(
        len(keep) + len(core.note_ranges)
    )
    assert len(re.findall(r"^\s+LOAD\s", out, re.M)) == len(keep)
    reread = ElfCore(path)
    assert [(s.vaddr, s.memsz, s.filesz, s.flags) for s in reread.segments] == [
        (s.vaddr, s.memsz, s.filesz, s.flags) for s in keep
    ]
    assert reread.threads == core.threads


def test_a_small_core_is_read_whole(tmp_path: Path) -> None:
    """Below REDUCE_ABOVE the reader gets the core itself: nothing to gain from a copy."""
    r = subprocess.run(
        ["/usr/bin/python3", "-c", "import ctypes; ctypes.string_at(1, 8)"],
        cwd=tmp_path,
        preexec_fn=unlimited_cores,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == -11
    core = ElfCore(tmp_path / "core")
    assert sum(s.filesz for s in core.segments) <= REDUCE_ABOVE
    assert reduce_core(core, str(tmp_path)) is None
    assert not (tmp_path / "python.core").exists()


def test_the_copy_is_removed_and_so_is_a_killed_run_s(
    crashed: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    """The reduced core lives in a private directory of the analysis (``base.files.private_temp_dir``):
    removed when the frames are read, and one that a killed run left is removed by the next run."""
    _, core, _ = crashed
    private = tmp_path / "tmp"
    private.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = private / f"notmyfault-python-{dead.pid}-abcd1234"
    stale.mkdir()
    (stale / "python.core").write_bytes(bytes(4096))
    r, a = run_json("analyze", str(core), env={"TMPDIR": str(private)})
    assert r.returncode == 0, r.stderr
    assert a["python_error"] is None
    assert a["blamed_python"]["function"] == "parse"
    assert list(private.iterdir()) == []
