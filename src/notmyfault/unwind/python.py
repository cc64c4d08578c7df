"""Python-level stacks of a CPython process's core: every thread's Python frames, merged into its
native stack where the interpreter runs them.

The frames are read by **pystack** (Bloomberg), a maintained library that finds ``_PyRuntime`` in a
core through the interpreter's own debug offsets, its ELF symbols or its ``.PyRuntime`` section, so it
needs no debug package (Debian's ``/usr/bin/python3`` without ``python3-dbg`` and pyenv's builds both
work), and walks each thread state's frames: code object, file, line, and on request the reprs of the
arguments and locals that it can read safely (it reads memory, it never runs the process's code).
drgn could do the same by reading ``_PyRuntime`` and ``_PyInterpreterFrame`` with CPython's types,
but those need the interpreter's DWARF, which a distribution's build does not ship: we would have to
keep every version's structure offsets ourselves, which is pystack's whole job.

pystack runs in a child process (``python -m notmyfault.unwind.pyreader``) with a time limit: its
engine is C++ over memory read from an untrusted dump, and a crash or a hang there must end the
child, not the analysis. What the child cannot read becomes a note, never a failure. For the core
of a CPython process the child is started ahead of need (``reader_started``): it imports pystack,
a third of what the Python frames cost, on the other core while the native stacks are walked, and
waits to be told which core to read; if the walk shows no Python, it is killed unused.

**Merging.** From CPython 3.11 one call of ``_PyEval_EvalFrameDefault`` runs a Python function and
every pure-Python function it calls; the first frame of each call is marked as an *entry* frame.
So the Python frames, cut at each entry frame, are runs of the native stack's eval frames, in order.
When the two counts differ (the native unwind stopped early), the Python frames are shown apart.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from notmyfault.base import private_temp_dir
from notmyfault.base.lifetime import tied_env
from notmyfault.unwind.frames import Frame, PythonFrame
from notmyfault.unwind.pycore import BUDGET, Reduction, reduce_core, worth_reducing

if TYPE_CHECKING:
    from notmyfault.dumps.elfcore import ElfCore

EVAL_FRAMES = ("_PyEval_EvalFrameDefault",)
"""The native functions that run Python frames (CPython 3.8 to 3.13)."""
INTERPRETER_MODULES = ("python", "python3*", "libpython3*.so*")
"""The module file names that make a core one of a CPython process."""
SCRATCH = "python"
"""The kind of private temporary directory the reduced core is written in (``base.files``)."""
TIME_LIMIT = 60.0
"""Seconds the child reading the Python frames may take."""


@dataclass(frozen=True)
class PythonThread:
    """One thread's Python stack, innermost frame first."""

    tid: int
    frames: tuple[PythonFrame, ...]
    holds_gil: bool


@dataclass(frozen=True)
class PythonStacks:
    """What the child read: each thread's frames, or why not."""

    threads: tuple[PythonThread, ...]
    error: str | None = None

    def thread(self, tid: int) -> PythonThread | None:
        """The Python stack of thread ``tid``, if it runs Python."""
        return next((t for t in self.threads if t.tid == tid), None)


def runs_python(modules: Sequence[str | None]) -> bool:
    """True if one of the module paths is a CPython interpreter or its shared library."""
    return any(
        m and any(fnmatch.fnmatchcase(os.path.basename(m), p) for p in INTERPRETER_MODULES) for m in modules
    )


_started: dict[str, subprocess.Popen[bytes]] = {}
"""The readers started ahead of need, by the path of the core they are for."""


def _start() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "notmyfault.unwind.pyreader", "--wait"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tied_env(),
    )  # fmt: skip


@contextmanager
def reader_started(core: ElfCore) -> Iterator[None]:
    """Within this block, a reader child for ``core`` is started and waiting, if the core's mapped
    files say it is a CPython process's (``read_python_stacks`` hands it the request); one that was
    not used is ended at the block's end."""
    if core.path in _started or not runs_python([f.path for f in core.files]):
        yield
        return
    with suppress(OSError):  # one that cannot start is tried again when needed, and says why then
        _started[core.path] = _start()
    try:
        yield
    finally:
        proc = _started.pop(core.path, None)
        if proc is not None:
            _end(proc)


def _end(proc: subprocess.Popen[bytes]) -> None:
    """End a reader that was not used (it holds nothing: killed, not waited for to finish importing)."""
    proc.kill()
    proc.communicate()


def read_python_stacks(core: ElfCore, executable: str, with_locals: bool = False) -> PythonStacks:
    """Every thread's Python frames in ``core`` of ``executable``, read in a child (from a reduced
    copy of a large core: ``unwind.pycore``)."""
    if not os.path.isfile(executable):
        return PythonStacks((), f"the interpreter {executable} is not here (give --exe)")
    reduced: Reduction | None = None
    scratch: str | None = None
    try:
        if worth_reducing(core):
            try:
                scratch = private_temp_dir(SCRATCH)  # a killed analysis's copy is removed by the next
                reduced = reduce_core(core, scratch)
            except OSError:  # no room for the copy: the whole core, as before
                reduced = None
        stacks = _read(
            reduced.path if reduced else core.path, executable, with_locals, _started.pop(core.path, None)
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if stacks.error and reduced and reduced.over_budget:
        return PythonStacks(
            stacks.threads,
            f"{stacks.error} (the reader was given the core's reachable memory, {reduced.kept_bytes >> 20} "
            f"MiB, less {reduced.over_budget} segments past its budget of {BUDGET >> 20} MiB)",
        )
    return stacks


def _read(
    core_path: str, executable: str, with_locals: bool, proc: subprocess.Popen[bytes] | None = None
) -> PythonStacks:
    """The frames the reader child ``proc`` (started here when None) reads in ``core_path``."""
    request = json.dumps({"core": core_path, "executable": executable, "locals": with_locals}) + "\n"
    try:
        proc = proc or _start()
    except OSError as e:
        return PythonStacks((), f"cannot run {sys.executable}: {e.strerror}")
    try:
        out, err = proc.communicate(request.encode(), timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return PythonStacks((), f"reading them took more than {TIME_LIMIT:.0f} s")
    except OSError:  # it died before it read the request: its status says how
        out, err = b"", b""
        proc.wait()
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip().splitlines()
        if proc.returncode < 0:
            return PythonStacks((), f"pystack died of signal {-proc.returncode} on this dump")
        return PythonStacks((), why[-1] if why else f"pystack exited {proc.returncode}")
    try:
        return _from_json(json.loads(out))
    except (ValueError, KeyError, TypeError) as e:
        return PythonStacks((), f"pystack's answer could not be read: {e}")


def _from_json(data: dict[str, Any]) -> PythonStacks:
    return PythonStacks(
        tuple(
            PythonThread(
                int(t["tid"]),
                tuple(
                    PythonFrame(
                        str(f["function"]),
                        str(f["file"]),
                        int(f["line"]),
                        tuple((str(k), str(v)) for k, v in f.get("arguments", ())),
                        tuple((str(k), str(v)) for k, v in f.get("locals", ())),
                        bool(f.get("entry")),
                    )
                    for f in t["frames"]
                ),
                bool(t["gil"]),
            )
            for t in data["threads"]
        )
    )


def is_eval_frame(frame: Frame) -> bool:
    """True for a native frame of the eval loop (not an inlined piece of one)."""
    return frame.how != "inline" and frame.function in EVAL_FRAMES


THREAD_STARTS = ("_start", "start_thread", "clone", "clone3", "__clone", "__clone3", "thread_start")
"""The functions a thread's stack begins with (the program's entry point; glibc's and musl's thread
start): a walk that ends at one of them walked the whole stack."""


def starts_thread(frames: Sequence[Frame]) -> bool:
    """True if the outermost of ``frames`` is a function a thread's stack begins with."""
    return bool(frames) and frames[-1].function in THREAD_STARTS


def merge(native: Sequence[Frame], thread: PythonThread) -> tuple[Frame, ...] | None:
    """The native frames with each eval frame carrying the Python frames it runs (innermost first;
    carried by the innermost of the functions inlined at its pc, so they print above them); None when the native stack's eval frames and the Python stack's runs do not match one to one."""
    runs: list[list[PythonFrame]] = []
    for f in reversed(thread.frames):  # outermost first: each entry frame starts a run
        if f.entry or not runs:
            runs.append([])
        runs[-1].append(f)
    evals = [i for i, f in enumerate(native) if is_eval_frame(f)]
    if len(evals) != len(runs):
        return None
    out = list(native)
    for i, run in zip(evals, reversed(runs), strict=True):  # innermost eval frame, innermost run
        at = i  # above the functions inlined into that eval frame's call site (same pc)
        while at > 0 and native[at - 1].how == "inline" and native[at - 1].pc == native[i].pc:
            at -= 1
        out[at] = replace(out[at], python=tuple(reversed(run)))
    return tuple(out)


def caller(frames: Sequence[Frame], python: PythonThread | None) -> PythonFrame | None:
    """The innermost Python frame of a thread: merged into its frames, else from its Python stack."""
    for f in frames:
        if f.python:
            return f.python[0]
    return python.frames[0] if python and python.frames else None
