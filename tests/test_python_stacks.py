"""Python frames in the cores of CPython processes, checked against gdb's py-bt and pystack's own CLI.

Each interpreter the machine has (pyenv's builds, with their python-gdb.py; Debian's /usr/bin/python3,
without its dbg package) runs a program that crashes in a C extension (ctypes) at a known line while
two other threads wait: one sleeps, one blocks on a lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import notmyfault
from notmyfault.dumps.elfcore import ElfCore
from notmyfault.unwind.python import read_python_stacks, reader_started
from tests.conftest import run_json, run_nmf
from tests.coretools import by_thread, unlimited_cores

pytestmark = [
    pytest.mark.crash,
    pytest.mark.skipif(
        Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
        reason="needs the plain 'core' pattern",
    ),
]

PYENV = Path("/root/.pyenv/versions")
INTERPRETERS = {
    "3.10 (pyenv)": PYENV / "3.10.13/bin/python3.10",
    "3.11 (Debian, no dbg)": Path("/usr/bin/python3.11"),
    "3.12 (pyenv)": PYENV / "3.12.1/bin/python3.12",
    "3.13 (pyenv)": PYENV / "3.13.0/bin/python3.13",
}

APP = """\
import ctypes
import threading
import time

lock = threading.Lock()


def idle(ready):
    ready.set()
    time.sleep(60)  # IDLE


def waiter(ready):
    ready.set()
    lock.acquire()  # WAITER


def parse(buf):
    header = len(buf)
    return ctypes.string_at(1, header)  # CRASH


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


def line_of(marker: str) -> int:
    return next(i for i, text in enumerate(APP.splitlines(), 1) if text.endswith(f"# {marker}"))


def real_path(interpreter: Path) -> Path:
    return interpreter.resolve()


@pytest.fixture(scope="module", params=list(INTERPRETERS))
def crashed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    """(interpreter, program, core) for one interpreter."""
    interpreter = INTERPRETERS[request.param]
    if not interpreter.exists():
        pytest.skip(f"{interpreter} is not on this machine")
    d = tmp_path_factory.mktemp("py" + request.param.split()[0])
    app = d / "app.py"
    app.write_text(APP)
    r = subprocess.run(
        [str(interpreter), str(app)], cwd=d, preexec_fn=unlimited_cores, capture_output=True, timeout=60
    )
    assert r.returncode == -11, (r.returncode, r.stderr)
    core = d / "core"
    assert core.is_file()
    return real_path(interpreter), app, core


def test_the_machine_has_three_interpreters() -> None:
    """The issue asks for three Python versions: the machine must have them."""
    present = [name for name, path in INTERPRETERS.items() if path.exists()]
    assert len(present) >= 3, present


def test_analyze_names_the_python_line_that_crashed(crashed: tuple[Path, Path, Path]) -> None:
    _, app, core = crashed
    r, a = run_json("analyze", str(core))
    assert r.returncode == 0, r.stderr
    assert a["crash_class"] == "NULL_POINTER_READ"
    assert a["blamed_python"] == {
        "function": "parse",
        "file": str(app),
        "line": line_of("CRASH"),
        "library": False,
    }
    assert a["python_callee"] == "ctypes.string_at"
    assert a["probably_caused_by"] == f"ctypes.string_at called from app.py:{line_of('CRASH')} parse"
    assert a["signature"].endswith(" | parse"), a["signature"]
    assert a["python"]["holds_gil"] is True
    assert a["python_error"] is None
    # merged: the Python frames are carried by the eval-loop frames that run them
    carriers = [f for f in a["frames"] if f["python"]]
    assert carriers
    assert all(f["function"] == "_PyEval_EvalFrameDefault" or f["trust"] == "inline" for f in carriers)
    merged = [p["function"] for f in a["frames"] for p in f["python"]]
    assert merged == [p["function"] for p in a["python"]["frames"]]
    assert merged[:4] == ["string_at", "parse", "main", "<module>"]

    text = run_nmf("analyze", str(core)).stdout
    assert f"Probably caused by : ctypes.string_at called from app.py:{line_of('CRASH')} parse" in text
    assert f'[Python] File "{app}", line {line_of("CRASH")}, in parse' in text


def pystack_threads(core: Path, interpreter: Path) -> dict[int, list[tuple[str, int, str]]]:
    """pystack's CLI: each thread's frames (file, line, function), innermost first."""
    r = subprocess.run(
        [sys.executable, "-m", "pystack", "core", str(core), str(interpreter)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert r.returncode == 0, r.stderr
    threads = by_thread(
        r.stdout, r"Traceback for thread (\d+)", r'\s+\(Python\) File "(.*)", line (\d+), in (.*)$'
    )
    return {tid: [(f, int(n), fn) for f, n, fn in frames[::-1]] for tid, frames in threads.items()}


def gdb_py_bt(core: Path, interpreter: Path) -> dict[int, list[tuple[str, int, str]]] | None:
    """gdb's py-bt on every thread, with the interpreter's python-gdb.py (None where it has none)."""
    script = interpreter.parent / f"{interpreter.name}-gdb.py"
    if not script.exists():
        return None
    r = subprocess.run(
        [
            "gdb",
            "-nx",
            "-batch",
            "-ex",
            f"source {script}",
            "-ex",
            "thread apply all py-bt",
            str(interpreter),
            str(core),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    threads = by_thread(r.stdout, r"Thread \d+ \(.*LWP (\d+)\)", r'\s+File "(.*)", line (\d+), in (.*)$')
    return {tid: [(f, int(n), fn) for f, n, fn in frames] for tid, frames in threads.items()}


def test_every_thread_agrees_with_pystack_and_gdb(crashed: tuple[Path, Path, Path]) -> None:
    interpreter, app, core = crashed
    r, data = run_json("stack", str(core), "--all")
    assert r.returncode == 0, r.stderr
    ours = {
        t["tid"]: [(p["file"], p["line"], p["function"]) for p in t["python"]["frames"]]
        for t in data["threads"]
        if t["python"]
    }
    assert len(ours) == 3
    # the frames each eval-loop frame carries, in stack order, are the thread's Python stack
    for t in data["threads"]:
        merged = [(p["file"], p["line"], p["function"]) for f in t["frames"] for p in f["python"]]
        assert merged == ours[t["tid"]], t["tid"]
    tops = sorted(frames[0][1:] if frames[0][0] == str(app) else frames[1][1:] for frames in ours.values())
    assert tops == sorted(
        [(line_of("CRASH"), "parse"), (line_of("IDLE"), "idle"), (line_of("WAITER"), "waiter")]
    )
    gil = [t["tid"] for t in data["threads"] if t["python"] and t["python"]["holds_gil"]]
    assert len(gil) == 1
    assert ours[gil[0]][1] == (str(app), line_of("CRASH"), "parse")

    assert pystack_threads(core, interpreter) == ours
    peer = gdb_py_bt(core, interpreter)
    if peer is not None:  # pyenv's builds: gdb reads the frames by itself, through the DWARF
        assert peer == ours


def test_native_and_python_switches_and_locals(crashed: tuple[Path, Path, Path]) -> None:
    _, app, core = crashed
    both = run_nmf("stack", str(core)).stdout
    python = run_nmf("stack", str(core), "--python", "-v").stdout
    native = run_nmf("stack", str(core), "--native").stdout
    assert "(holds the GIL)" in both.splitlines()[0]
    assert "[Python]" in both
    assert "_PyEval_EvalFrameDefault" in both
    assert "[Python]" not in native
    assert "_PyEval_EvalFrameDefault" in native
    assert "_PyEval_EvalFrameDefault" not in python
    lines = [line.strip() for line in python.splitlines()]
    at = lines.index(f'[Python] File "{app}", line {line_of("CRASH")}, in parse')
    assert lines[at + 1 : at + 3] == ['buf = b"12345678"', "header = 8"]
    assert "header = 8" not in both  # the locals only with -v
    r = run_nmf("stack", str(core), "--native", "--python")
    assert r.returncode == 0  # the last switch wins, as click's flag values do
    assert json.loads(run_nmf("stack", str(core), "--json").stdout)["threads"][0]["python"]["holds_gil"]


def test_native_reads_no_python_frames(crashed: tuple[Path, Path, Path]) -> None:
    """--native: the Python frames are not read at all (no reader started, none in JSON either)."""
    _, _, core = crashed
    r, stack = run_json("stack", "--native", str(core))
    assert r.returncode == 0, r.stderr
    assert stack["threads"][0]["python"] is None
    assert all(not f["python"] for f in stack["threads"][0]["frames"])
    r, a = run_json("analyze", "--native", str(core))
    assert r.returncode == 0, r.stderr
    assert a["python_caller"] is None
    r, a = run_json("analyze", str(core))
    assert a["python_caller"] is not None


def _readers() -> list[psutil.Process]:
    """This process's children that are Python frame readers."""
    out = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "notmyfault.unwind.pyreader" in p.cmdline():
                out.append(p)
    return out


def test_a_reader_started_ahead_reads_what_a_cold_one_reads(crashed: tuple[Path, Path, Path]) -> None:
    """The analysis hands its request to the reader it started before the walk (reader_started); a
    reader started when asked (read_python_stacks alone) reads the same frames; neither outlives it."""
    interpreter, _, core = crashed
    with notmyfault.open(str(core)) as dump:
        stacks = dump.stacks(all_threads=True)
        warm = {t.tid: t.python for t in stacks.threads}
        assert any(warm.values())
        assert not _readers()
    with ElfCore(str(core)) as elf:
        cold = read_python_stacks(elf, str(interpreter))
    assert cold.error is None
    assert {t.tid: t for t in cold.threads} == {tid: t for tid, t in warm.items() if t is not None}
    assert not _readers()


def test_a_reader_that_is_not_needed_is_ended(crashed: tuple[Path, Path, Path]) -> None:
    _, _, core = crashed
    with ElfCore(str(core)) as elf:
        with reader_started(elf):
            (waiting,) = _readers()
            assert "--wait" in waiting.cmdline()
        assert not waiting.is_running()  # killed and reaped: no zombie left either
        assert not _readers()


def test_the_reader_s_request_line() -> None:
    """--wait: end of input ends it with nothing read; a bad line or a file that is no core, one line."""
    cmd = [sys.executable, "-m", "notmyfault.unwind.pyreader", "--wait"]
    r = subprocess.run(cmd, input=b"", capture_output=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, b"")
    r = subprocess.run(cmd, input=b"not json\n", capture_output=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.decode().strip() == (
        "pyreader: the request is not one JSON line with core, executable and locals"
    )
    request = json.dumps({"core": __file__, "executable": sys.executable, "locals": False}).encode()
    r = subprocess.run(cmd, input=request + b"\n", capture_output=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("pystack: "), r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1
