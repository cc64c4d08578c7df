"""Ingest: find dumps, skip the ones stored already, analyse the rest in workers, store a row each.

Dumps are found by their magic (ELF cores, minidumps, Windows kernel dumps; packed ones too:
systemd-coredump's .zst/.lz4/.xz cores, .gz, apport's .crash reports), hashed (SHA-256 of the
content: the same dump under two names is one row), and looked up by (hash, analysis version).
The rest go to the workers: a local pool by default (threads, each driving its own warm analysis
process), or a Dask cluster with ``scheduler`` (each Dask worker keeps its own warm process; the
workers read the dumps from the paths the client gives, which they must share). Each result is
committed as it arrives, so an interrupted ingest keeps everything it finished and a re-run does
only the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from notmyfault.api import DEFAULT_RULES, Rules, SignFrame, bucket_id, bucket_key, is_dump
from notmyfault.api import signature_of as signature
from notmyfault.triage import worker as warm
from notmyfault.triage.db import Database, now
from notmyfault.triage.record import ANALYSIS_VERSION, file_time
from notmyfault.triage.redact import DEFAULT_REDACTIONS, Redaction, redact_row


@dataclass
class IngestResult:
    """What an ingest did."""

    found: int = 0
    duplicates: int = 0
    """Files whose content another file found in this batch already has."""
    known: int = 0
    """Dumps already stored for this analysis version (skipped)."""
    analysed: int = 0
    failed: int = 0
    stored: int = 0
    """New rows (a concurrent ingest may have stored some of the analysed ones first)."""
    seconds: float = 0.0
    analysis_seconds: list[float] = field(default_factory=list)
    maxrss_kb: int = 0
    """The largest peak RSS any analysis process reported."""
    interrupted: bool = False
    not_dumps: list[str] = field(default_factory=list)
    """Files named on the command line that are not dumps."""
    skipped: list[str] = field(default_factory=list)
    """Files found in the directories given that are not dumps."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of the files and directories that could not be read: never taken for 'not a dump'."""


def discover(
    paths: list[str], recursive: bool
) -> tuple[list[str], list[str], list[str], list[tuple[str, str]]]:
    """The dumps among ``paths`` (files, and the files in directories: their subdirectories too with
    ``recursive``), sorted; the files named in ``paths`` that are not dumps; the files found in
    directories that are not dumps (skipped); and (path, reason) for every file or directory that
    could not be read.  A path that does not exist raises FileNotFoundError."""
    out: set[str] = set()
    named: set[str] = set()
    unreadable: list[tuple[str, str]] = []

    def refused(e: OSError) -> None:
        unreadable.append((str(e.filename), e.strerror or str(e)))

    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(p)
        if os.path.isdir(p):
            if recursive:
                for root, _dirs, files in os.walk(p, onerror=refused):
                    out.update(os.path.join(root, f) for f in files)
            else:
                try:
                    names = os.listdir(p)
                except OSError as e:
                    refused(e)
                    continue
                out.update(os.path.join(p, f) for f in names if os.path.isfile(os.path.join(p, f)))
        else:
            named.add(p)
    dumps: set[str] = set()
    for p in sorted(out | named):
        try:
            if is_dump(p):
                dumps.add(os.path.abspath(p))
        except OSError as e:
            unreadable.append((p, e.strerror or str(e)))
    cannot = {p for p, _ in unreadable}
    skipped = sorted(p for p in out - named if os.path.abspath(p) not in dumps and p not in cannot)
    not_dumps = sorted(p for p in named if os.path.abspath(p) not in dumps and p not in cannot)
    return sorted(dumps), not_dumps, skipped, sorted(unreadable)


def content_hash(path: str) -> str:
    """SHA-256 of the file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def row_for(
    path: str, digest: str, answer: dict[str, Any], rules: Rules, host: str | None = None
) -> dict[str, Any]:
    """The row stored for one dump, from its worker's answer (``host``: the machine it came from)."""
    try:
        st: os.stat_result | None = os.stat(path)
    except OSError:  # gone since it was hashed
        st = None
    row: dict[str, Any] = {
        "hash": digest,
        "analysis_version": ANALYSIS_VERSION,
        "path": path,
        "size": st.st_size if st else 0,
        "file_time": file_time(st.st_mtime) if st else None,
        "ingested_at": now(),
        "host": host,
        "seconds": answer.get("seconds"),
    }
    if not answer.get("ok"):
        row.update(
            status="failed",
            error=str(answer.get("error") or "unknown failure"),
            transient=1 if answer.get("transient") else 0,
        )
        return row
    fields = answer["fields"]
    sig = signature([SignFrame.from_dict(f) for f in fields["frames"]], rules)
    key = bucket_key(fields["crash_class"], fields["program"], sig, fields.get("reason"))
    row.update(
        # a cut-off dump is analysed as far as it goes, but kept apart from the whole ones
        status="truncated" if fields.get("truncated") else "ok",
        error=fields.get("truncated"),
        crash_time=fields.get("crash_time"),
        pid=fields.get("pid"),
        executable=fields.get("executable"),
        program=fields["program"],
        build_id=fields.get("build_id"),
        version=fields.get("version"),
        dump_kind=fields.get("dump_kind"),
        arch=fields.get("arch"),
        crash_class=fields.get("crash_class"),
        reason=fields.get("reason"),
        blamed=fields.get("blamed"),
        frames=json.dumps(fields["frames"]),
        build_ids=json.dumps(fields.get("build_ids") or {}),
        signature=sig,
        bucket=key,
        bucket_id=bucket_id(key),
        rules=rules.stamp(),
        analysis_text=fields.get("analysis_text"),
    )
    return row


Progress = Callable[[str, dict[str, Any]], None]


def ingest(
    db: Database,
    paths: list[str],
    recursive: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    timeout: float = 120.0,
    memory_limit: int | None = None,
    rules: Rules = DEFAULT_RULES,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    host: str | None = None,
    retry_failed: bool = False,
    redactions: tuple[Redaction, ...] = DEFAULT_REDACTIONS,
) -> IngestResult:
    """Ingest the dumps under ``paths`` into ``db`` (see the module's docstring); ``host`` names the
    machine the dumps came from (stored with each row; the report breaks buckets down by it). A dump
    whose analysis was stopped (timeout, killed, memory limit) is analysed again once by the next
    ingest; ``retry_failed`` analyses every failed dump again. ``redactions`` are applied to each
    row's paths and command line before it is stored (see triage.redact)."""
    t0 = time.monotonic()
    started = now()
    result = IngestResult()
    found, result.not_dumps, result.skipped, result.unreadable = discover(paths, recursive)
    result.found = len(found)
    pool = warm.PerThread(timeout, memory_limit, single_threaded=workers > 1) if scheduler is None else None
    try:
        if pool is not None and found:  # their start-up overlaps the hashing (a rerun kills them unused)
            pool.start(min(max(1, workers), len(found)))
        by_hash: dict[str, str] = {}
        # hashed on as many threads as there are workers (hashlib lets go of the GIL): a serial pass
        # over every file first would bound what a second worker can add
        with cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hash") as hasher:
            for p, digest in zip(found, hasher.map(content_hash, found), strict=True):
                by_hash.setdefault(digest, p)
        result.duplicates = len(found) - len(by_hash)
        known = db.known(by_hash, ANALYSIS_VERSION, retry_failed, started)
        result.known = len(known)
        todo = [(p, h) for h, p in by_hash.items() if h not in known]
        todo.sort()
        retried = db.failed_attempts([h for _, h in todo], ANALYSIS_VERSION)
        if on_start is not None:
            on_start(len(todo))
        try:
            for path, digest, answer in _run(todo, workers, scheduler, timeout, memory_limit, pool):
                row = row_for(path, digest, answer, rules, host)
                result.analysed += 1
                result.failed += row["status"] == "failed"
                home = answer["fields"].get("home") if answer.get("ok") else None
                result.stored += db.insert(redact_row(row, redactions, home), retried.get(digest))
                if answer.get("seconds") is not None:
                    result.analysis_seconds.append(float(answer["seconds"]))
                result.maxrss_kb = max(result.maxrss_kb, int(answer.get("maxrss_kb") or 0))
                if progress is not None:
                    progress(path, row)
        except KeyboardInterrupt:
            result.interrupted = True
    finally:
        if pool is not None:
            pool.close()
    result.seconds = time.monotonic() - t0
    return result


def _run(
    todo: list[tuple[str, str]],
    workers: int,
    scheduler: str | None,
    timeout: float,
    memory_limit: int | None,
    pool: warm.PerThread | None,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, hash, worker's answer) for every dump, as they finish: on the Dask cluster at
    ``scheduler``, else through ``pool``'s warm workers on ``workers`` threads (the caller closes it)."""
    if not todo:
        return
    if scheduler is not None:
        yield from _run_dask(todo, scheduler, timeout, memory_limit)
        return
    assert pool is not None, "ingest makes the local pool whenever no scheduler is given"
    executor = cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="triage")
    futures: dict[cf.Future[dict[str, Any]], tuple[str, str]] = {}
    try:
        futures = {executor.submit(pool.analyze, path): (path, digest) for path, digest in todo}
        for fut in cf.as_completed(futures):
            path, digest = futures[fut]
            yield path, digest, fut.result()
    finally:  # done, or interrupted: nothing new starts, analyses in flight are killed, then reaped
        for fut in futures:
            fut.cancel()
        pool.stop()
        executor.shutdown(wait=True, cancel_futures=True)


def _run_dask(
    todo: list[tuple[str, str]], scheduler: str, timeout: float, memory_limit: int | None
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    try:
        from distributed import Client, as_completed
    except ImportError as e:
        raise ValueError("--scheduler needs Dask's distributed: pip install distributed") from e
    try:
        client = Client(scheduler, timeout=30)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as e:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
    try:
        futures = client.map(
            warm.analyze_in_warm_worker,
            [p for p, _ in todo],
            timeout=timeout,
            memory_limit=memory_limit,
            pure=False,
        )
        digests = {f.key: (p, h) for f, (p, h) in zip(futures, todo, strict=True)}
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            path, digest = digests[fut.key]
            try:
                answer = fut.result()
            except Exception as e:  # the worker was lost (KilledWorker) or the task failed: try again later
                answer = {
                    "ok": False,
                    "error": f"the Dask task failed: {type(e).__name__}: {e}",
                    "transient": True,
                }
            yield path, digest, answer
    finally:
        client.close()  # type: ignore[no-untyped-call]
