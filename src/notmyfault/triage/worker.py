"""Warm analysis processes: one per worker, kept alive between dumps, killed when a dump takes too long.

A batch saves the start-up of ``notmyfault analyze`` (the interpreter, drgn, capstone) by keeping a
process that has paid it: ``python -m notmyfault.triage.worker`` reads one request per line on
stdin (a dump's path) and answers one JSON line. Its data segment is capped (RLIMIT_DATA: the heap
and private writable mappings; the dump itself is mapped read-only and does not count), so a dump
that makes the analysis grab memory fails alone with MemoryError. The parent gives every dump a
deadline: past it, or if the process dies (a crash in a native library), the dump is recorded as
failed with the reason, the process is replaced, and the batch goes on.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any, TextIO

from notmyfault.base import PARENT_ENV, die_with_parent, remove_temp_dirs_of
from notmyfault.triage.record import analyze_path


class WarmWorker:
    """One warm analysis process, driven from the parent (not thread-safe: one per thread)."""

    def __init__(self, timeout: float, memory_limit: int | None, single_threaded: bool = False) -> None:
        """``timeout``: seconds per dump; ``memory_limit``: bytes of data segment, or None;
        ``single_threaded``: keep drgn's OpenMP to one thread (when other workers share the cores;
        OMP_NUM_THREADS, if set, wins)."""
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.single_threaded = single_threaded
        self._proc: subprocess.Popen[str] | None = None
        self.started = 0
        """How many processes this worker has started (1, plus one per replacement)."""

    def _start(self) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "notmyfault.triage.worker"]
        if self.memory_limit is not None:
            cmd.append(str(self.memory_limit))
        self.started += 1
        env = dict(os.environ)
        env[PARENT_ENV] = str(os.getpid())  # it dies with us (a SIGKILLed ingest left it analysing)
        if self.single_threaded:
            env.setdefault("OMP_NUM_THREADS", "1")
        # keep distributions' compressed debug files decompressed by build-id (unwind.debugcache):
        # the next dump with that glibc reads the copy (70 ms a dump); unless the user said 0
        env.setdefault("NOTMYFAULT_DEBUG_CACHE", "1")
        return subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
        )

    def start(self) -> None:
        """Start the process now, if it is not running (else the first dump starts it)."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()

    @property
    def pid(self) -> int | None:
        """The current process's pid (None before the first dump)."""
        return self._proc.pid if self._proc is not None else None

    def analyze(self, path: str) -> dict[str, Any]:
        """Analyse ``path``: {"ok": True, "fields": ..., "seconds", "maxrss_kb"} or {"ok": False, "error"},
        with "transient": True when the analysis was stopped rather than the dump found unreadable
        (a timeout, the process killed, its memory limit): such a dump is tried again."""
        for attempt in (1, 2):
            self.start()
            assert self._proc is not None
            assert self._proc.stdin is not None
            assert self._proc.stdout is not None
            try:
                self._proc.stdin.write(json.dumps({"path": path}) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                # the process had died before this dump was given to it: not this dump's doing
                self._reap()
                if attempt == 2:
                    return {
                        "ok": False,
                        "error": "the analysis process could not be started",
                        "transient": True,
                    }
                continue
            return self._answer(path)
        raise AssertionError("unreachable")

    def _answer(self, path: str) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                return {
                    "ok": False,
                    "error": f"the analysis took longer than {self.timeout:g} s and was stopped",
                    "transient": True,
                }
            ready, _, _ = select.select([self._proc.stdout], [], [], left)
            if not ready:
                continue
            line = self._proc.stdout.readline()
            if not line:  # the process died with this dump in hand
                code = self._reap()
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                # under a memory limit, an error no handler could catch (exit 1), or a native
                # library that used the NULL a failed allocation returned, or aborted on it (seen:
                # SIGSEGV on a loaded CI machine): most likely the limit, and said so
                oom = code == 1 or -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT)
                if oom and self.memory_limit is not None:
                    return {
                        "ok": False,
                        "error": f"the analysis process died ({how}) under its memory limit "
                        f"({self.memory_limit} bytes): most likely it ran out of it",
                        "transient": True,
                    }
                return {"ok": False, "error": f"the analysis process died ({how})", "transient": True}
            try:
                answer: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                self._kill()
                return {"ok": False, "error": "the analysis process answered garbage", "transient": True}
            if answer.get("path") != path:
                self._kill()
                return {
                    "ok": False,
                    "error": "the analysis process answered for another dump",
                    "transient": True,
                }
            return answer

    def _reap(self) -> int:
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        code = proc.wait()
        for kind in (
            "unpacked",
            "python",
        ):  # killed, it removed nothing: its unpacked dumps, its reduced core
            remove_temp_dirs_of(kind, proc.pid)
        return code

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def stop(self) -> None:
        """Kill the process now, from any thread: a thread waiting for its answer sees it die."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self) -> None:
        """Stop the process (it exits at the end of its input)."""
        self._kill()


class PerThread:
    """A warm worker for each thread that analyses through it, made on first use; the local pool's
    threads and a Dask worker's threads both use one."""

    def __init__(self, timeout: float, memory_limit: int | None, single_threaded: bool) -> None:
        """The settings every worker of this set gets (see :class:`WarmWorker`)."""
        self.settings = (timeout, memory_limit, single_threaded)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.workers: list[WarmWorker] = []
        self._spare: list[WarmWorker] = []

    def start(self, count: int) -> None:
        """Start ``count`` workers' processes now, for the threads to take on first use: their
        start-up (0.2 s of imports) then overlaps what the parent does before the first dump."""
        with self._lock:
            for _ in range(count):
                worker = WarmWorker(*self.settings)
                self.workers.append(worker)
                self._spare.append(worker)
                worker.start()

    def analyze(self, path: str) -> dict[str, Any]:
        """Analyse ``path`` in this thread's warm worker."""
        worker = getattr(self._local, "worker", None)
        if worker is None:
            with self._lock:
                worker = self._spare.pop() if self._spare else None
                if worker is None:
                    worker = WarmWorker(*self.settings)
                    self.workers.append(worker)
            self._local.worker = worker
        return worker.analyze(path)

    def stop(self) -> None:
        """Kill every worker's process now (threads waiting on them see them die)."""
        with self._lock:
            for w in self.workers:
                w.stop()

    def close(self) -> None:
        """Stop and reap every worker's process."""
        with self._lock:
            for w in self.workers:
                w.close()


_dask_workers: PerThread | None = None
_dask_lock = threading.Lock()
WARM_UP = (
    "notmyfault.api.dump",
    "notmyfault.analysis.crash",
    "notmyfault.kernel.windows",
    "notmyfault.analysis.minidump",
    "notmyfault.render.analysis",
    "zlib",
)
"""Modules the worker imports before its memory limit applies."""


def analyze_in_warm_worker(path: str, timeout: float, memory_limit: int | None) -> dict[str, Any]:
    """Analyse ``path`` in this thread's warm worker (created on first use): what a Dask task runs,
    so that each Dask worker keeps its own warm process between dumps (single-threaded: a Dask
    cluster runs a worker per core)."""
    global _dask_workers
    with _dask_lock:
        if _dask_workers is None or _dask_workers.settings != (timeout, memory_limit, True):
            if _dask_workers is not None:
                _dask_workers.close()
            _dask_workers = PerThread(timeout, memory_limit, single_threaded=True)
        workers = _dask_workers
    return workers.analyze(path)


def _out_of_memory(e: BaseException) -> bool:
    """True if ``e`` (or what caused it) is an allocation refused: MemoryError, ENOMEM, a native
    module that could not be mapped, or a native call that failed without saying why (SystemError)."""
    seen: BaseException | None = e
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, MemoryError) or (isinstance(seen, OSError) and seen.errno == errno.ENOMEM):
            return True
        text = str(seen)
        if "[Errno 12]" in text or "failed to map segment" in text:
            return True
        if isinstance(seen, SystemError) and (
            "without exception set" in text or "without setting an exception" in text
        ):
            # a native library (drgn, capstone) whose allocation failed returned NULL without
            # raising: under a memory limit that is the limit, not the dump
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _serve(out: TextIO, memory_limit: int | None) -> None:
    """The worker's loop: a path per line in, an answer per line out."""
    # paid once, before the limit, not per dump
    for module in WARM_UP:
        importlib.import_module(module)
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = None
    if memory_limit is not None:
        limit = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
    for line in sys.stdin:
        path = json.loads(line)["path"]
        t0 = time.monotonic()
        answer: dict[str, Any] = {"path": path}
        failure: Exception | None = None
        # the limit holds while one dump is analysed, and is lifted again before the answer is
        # written and the next line read: a worker that hit it must still be able to say so (it
        # died reading its next line, recorded as "died (exit status 1)")
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
        try:
            fields = analyze_path(path)
        except Exception as e:  # every failure of one dump is that dump's record
            failure = e
        finally:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
        if failure is None:
            answer.update(ok=True, fields=fields)
        elif memory_limit is not None and _out_of_memory(failure):
            answer.update(
                ok=False,
                error=f"the analysis ran out of its memory limit ({memory_limit} bytes)",
                transient=True,
            )
        else:
            answer.update(ok=False, error=f"{type(failure).__name__}: {failure}")
        answer["seconds"] = round(time.monotonic() - t0, 4)
        answer["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main() -> None:
    """Entry point: ``python -m notmyfault.triage.worker [MEMORY_LIMIT_BYTES]``."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; Ctrl-C reaches the whole group
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the answers
    _serve(out, int(sys.argv[1]) if len(sys.argv) > 1 else None)


if __name__ == "__main__":
    main()
