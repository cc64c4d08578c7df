"""``notmyfault triage``: many dumps into buckets (ingest, buckets, show, rebucket, report)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from notmyfault.base import WriteFailed, write_file
from notmyfault.cli.analyze import json_option, max_unpacked_option
from notmyfault.cli.common import (
    DURATION,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_NO_DUMP,
    echo_safe,
    emit_json,
    fail,
    interruptible,
    note,
    parse_size_option,
)
from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.safe import printable


def _default_db() -> str:
    """$NOTMYFAULT_TRIAGE_DB, else triage.db in notmyfault's state directory."""
    from notmyfault.capture import state_dir

    return os.environ.get("NOTMYFAULT_TRIAGE_DB") or os.path.join(state_dir(), "triage.db")


db_option = click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=_default_db,
    show_default="$NOTMYFAULT_TRIAGE_DB or ~/.local/state/notmyfault/triage.db",
    help="A SQLite file, or postgresql://user@host/dbname.",
)
rules_option = click.option(
    "--rules",
    "rules_path",
    metavar="FILE",
    help="Signature rules as JSON (keys: normalize, irrelevant, irrelevant_modules, prefix, sentinel, "
    "max_frames; see 'triage rules') instead of the built-in ones.",
)


def filter_options(f: Any) -> Any:
    """The options that narrow a listing to some dumps: --exe, --build-id, --since, --search."""
    for option in reversed(
        (
            click.option(
                "--exe", metavar="NAME", help="Only dumps of this program (name, file name or path)."
            ),
            click.option(
                "--build-id",
                metavar="HEX",
                help="Only dumps of an executable with this build id (or prefix).",
            ),
            click.option(
                "--since",
                metavar="DATE",
                help="Only dumps from this time on, as journalctl takes it: 2026-11-01, yesterday, "
                "'1 hour ago', -2d, @EPOCH (UTC unless a zone is given).",
            ),
            click.option(
                "--search",
                metavar="TEXT",
                help="Only dumps whose bucket, executable or blamed frame holds TEXT.",
            ),
        )
    ):
        f = option(f)
    return f


def _filter(exe: str | None, build_id: str | None, since: str | None, search: str | None) -> Any:
    """The Filter the options ask for (exit 2 with one line for a date that is none)."""
    from notmyfault.triage import Filter, parse_since

    if build_id is not None and not re.fullmatch(r"[0-9a-fA-F]+", build_id):
        fail(f"--build-id {build_id!r}: give hexadecimal digits (a build id or its start)")
    try:
        return Filter(
            exe or None, build_id or None, parse_since(since) if since is not None else None, search or None
        )
    except ValueError as e:
        fail(str(e))


@contextmanager
def _database(url: str, create: bool = False, read_only: bool = False) -> Iterator[Any]:
    """The database at ``url``; a SQLite file is created only by commands that write (``create``): a
    read-only command given a path that holds none says so instead of leaving an empty one behind.
    ``read_only``: the command only reads (it works on a read-only file or filesystem). A database
    error (a full disk, a lost server) is one line and exit 1: SQLite leaves the file as it was."""
    from notmyfault.triage import Database

    if "://" not in url:
        if not create and not os.path.isfile(url):
            fail(f"no triage database at {url}: 'notmyfault triage ingest PATH... --db {url}' makes one")
        os.makedirs(os.path.dirname(os.path.abspath(url)), exist_ok=True)
    try:
        db = Database(url, read_only=read_only)
    except ValueError as e:
        fail(str(e))
    except Exception as e:
        fail(
            f"cannot use the database {url}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
        )
    try:
        yield db
    except Exception as e:
        if not type(e).__module__.startswith(("sqlite3", "psycopg")):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        fail(f"the database {url} failed: {first} (it is left as it was before this command)", EXIT_NO_DUMP)
    finally:
        with contextlib.suppress(Exception):
            db.close()


class _IngestBar:
    """A progress bar for ingest on the terminal (stderr): dumps done of those to analyse, dumps per
    second, time left.  Not drawn when stderr is no terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task: Any = None

    def start(self, total: int) -> None:
        """Draw the bar for ``total`` dumps (none for none)."""
        if total:
            self.bar.start()
            self.task = self.bar.add_task("ingest", total=total, rate="")

    def advance(self, path: str, row: dict[str, Any]) -> None:
        """One more dump done."""
        if self.task is not None:
            self.bar.advance(self.task)
            speed = self.bar.tasks[0].speed
            self.bar.update(self.task, rate=f"{speed:.1f} dumps/s" if speed else "")

    def stop(self) -> None:
        """Take the bar away."""
        if self.task is not None:
            self.bar.stop()


def _rules(path: str | None) -> Any:
    from notmyfault import Rules, load_rules

    return _from_file(path, Rules(), load_rules)


def _from_file(path: str | None, default: Any, load: Callable[[str], Any]) -> Any:
    """``default``, or what ``load`` reads from ``path`` (its ValueError is one line and exit 2)."""
    if path is None:
        return default
    if path != "none" and not os.path.isfile(path):  # a FIFO would make the reader wait for ever
        fail(f"cannot read {path}: {'it is not a regular file' if os.path.lexists(path) else 'no such file'}")
    try:
        return load(path)
    except ValueError as e:
        fail(str(e))


@click.group()
def triage() -> None:
    """Fleet triage: analyse many dumps into a database and group them into buckets by signature."""


@triage.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@max_unpacked_option
@click.option("-r", "--recursive", is_flag=True, help="Look into subdirectories too.")
@click.option(
    "--workers", type=click.IntRange(1, 256), default=1, show_default=True, help="Local analysis processes."
)
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="Run the analyses on this Dask cluster instead.")
@click.option(
    "--timeout",
    type=DURATION,
    default="120",
    show_default=True,
    help="Time per dump: seconds, or with a unit (90s, 2m, 1h).",
)
@click.option(
    "--memory-limit", "memory", default="2GB", show_default=True, help="Heap per analysis process (0: none)."
)
@db_option
@rules_option
@click.option(
    "--host", metavar="NAME", help="The machine these dumps came from (buckets are broken down by it)."
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Analyse again every dump stored as failed (one whose analysis was stopped is retried once anyway).",
)
@click.option("-v", "--verbose", is_flag=True, help="Name every file that was skipped (not a dump).")
@click.option(
    "--redact",
    "redact_path",
    metavar="FILE|none",
    help="Redaction rules for the stored paths and command lines (default: the built-in ones, which "
    "hide home directories and token-like arguments; 'triage redactions' prints them); none: keep all.",
)
@click.option(
    "--debuginfod",
    is_flag=True,
    help="Let the workers fetch missing debug info from $DEBUGINFOD_URLS (off by default in a batch: "
    "each file is fetched once, by build-id, into ~/.cache/debuginfod_client, and counts against --timeout).",
)
@json_option
def ingest(
    paths: tuple[str, ...],
    recursive: bool,
    host: str | None,
    retry_failed: bool,
    verbose: bool,
    redact_path: str | None,
    debuginfod: bool,
    workers: int,
    scheduler: str | None,
    timeout: float,
    memory: str,
    db_url: str,
    rules_path: str | None,
    as_json: bool,
) -> None:
    """Analyse the dumps under PATH... and store one row each; dumps already stored are skipped.

    A dump whose analysis fails, takes longer than --timeout or outgrows --memory-limit is stored
    as failed with the reason; the batch goes on. Ctrl-C or SIGTERM stops it; what was stored stays,
    and running the same ingest again does the rest.
    """
    from notmyfault import debuginfod as use_debuginfod
    from notmyfault.triage import ingest_dumps as run

    if debuginfod and not os.environ.get("DEBUGINFOD_URLS", "").strip():
        fail("--debuginfod: set DEBUGINFOD_URLS to the servers to ask")
    use_debuginfod(enabled=debuginfod)  # the workers inherit it (an environment variable)
    limit = parse_size_option("--memory-limit", memory) or None
    rules = _rules(rules_path)
    redactions = _redactions(redact_path)
    with interruptible(), _database(db_url, create=True) as db:
        bar = _IngestBar() if sys.stderr.isatty() and not as_json else None
        try:
            result = run(
                db,
                list(paths),
                recursive,
                workers,
                scheduler,
                timeout,
                limit,
                rules,
                progress=bar.advance if bar else None,
                on_start=bar.start if bar else None,
                host=host,
                retry_failed=retry_failed,
                redactions=redactions,
            )
        except FileNotFoundError as e:
            fail(f"no such file or directory: {e}")
        except ValueError as e:
            fail(str(e))
        finally:
            if bar is not None:
                bar.stop()
        summary = {
            "found": result.found,
            "duplicates": result.duplicates,
            "already_stored": result.known,
            "analysed": result.analysed,
            "failed": result.failed,
            "stored": result.stored,
            "seconds": round(result.seconds, 3),
            "dumps_per_second": round(result.analysed / result.seconds, 2) if result.seconds else None,
            "mean_analysis_seconds": (
                round(sum(result.analysis_seconds) / len(result.analysis_seconds), 4)
                if result.analysis_seconds
                else None
            ),
            "max_rss_kb": result.maxrss_kb,
            "not_dumps": result.not_dumps,
            "skipped": result.skipped,
            "unreadable": [{"path": p, "error": e} for p, e in result.unreadable],
            "interrupted": result.interrupted,
            "db": db_url,
        }
        if as_json:
            emit_json({"schema_version": SCHEMA_VERSION, "kind": "triage-ingest", **summary})
        else:
            for path, error in result.unreadable:
                note(f"cannot read {path}: {error}")
            for path in result.not_dumps + (result.skipped if verbose else []):
                echo_safe(f"skipped {path}: not a core dump, minidump or Windows kernel dump")
            if result.skipped and not verbose:
                echo_safe(f"{len(result.skipped)} files skipped: not dumps (--verbose names them)")
            echo_safe(
                f"{result.found} dumps found ({result.duplicates} duplicate files, {result.known} already stored); "
                f"{result.analysed} analysed, {result.failed} failed, {result.stored} stored in {result.seconds:.1f} s"
                + (" (interrupted: run it again to do the rest)" if result.interrupted else "")
            )
            if result.failed:
                echo_safe("see 'notmyfault triage show failed' for why")
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.unreadable:  # what could be read is stored; the rest is not 'no dump'
        sys.exit(EXIT_BAD_INPUT)


@triage.command()
@filter_options
@click.option("--top", type=click.IntRange(1), help="Only the N biggest buckets.")
@click.option(
    "--examples", type=click.IntRange(0, 1000), default=3, show_default=True, help="Dumps named per bucket."
)
@db_option
@json_option
def buckets(
    exe: str | None,
    build_id: str | None,
    since: str | None,
    search: str | None,
    top: int | None,
    examples: int,
    db_url: str,
    as_json: bool,
) -> None:
    """The buckets, biggest first: count, share, first and last seen, bucket (KIND:program:signature)."""
    from notmyfault.triage import trends

    where = _filter(exe, build_id, since, search)
    with _database(db_url, read_only=True) as db:
        found = db.buckets(where, top, examples)
        total = db.count_ok(where)
        failed = db.count("failed")
        truncated = db.count("truncated")
        split = db.breakdown(where) if as_json else {}
        trend = trends(db.timeline(where)) if as_json else {}
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "triage-buckets",
                "total": total,
                "buckets": [
                    {
                        "id": b.id,
                        "bucket": b.key,
                        "crash_class": b.crash_class,
                        "program": b.program,
                        "signature": b.signature,
                        "count": b.count,
                        "share": round(b.count / total, 4) if total else None,
                        "first_seen": b.first_seen,
                        "last_seen": b.last_seen,
                        "examples": list(b.examples),
                        "breakdown": {k: dict(v.most_common()) for k, v in split.get(b.id, {}).items()},
                        "trend": dict(
                            zip(("last_7_days", "previous_7_days"), trend.get(b.id, (0, 0)), strict=True)
                        ),
                    }
                    for b in found
                ],
                "failed": failed,
                "truncated": truncated,
            }
        )
        return
    if not found:
        echo_safe(
            "no buckets match"
            if any((exe, build_id, since, search))
            else "no buckets yet: 'notmyfault triage ingest PATH' stores dumps"
        )
    else:
        echo_safe(f"{'id':<10}  {'count':>5}  {'share':>6}  {'first seen':<19}  {'last seen':<19}  bucket")
        for b in found:
            share = f"{100 * b.count / total:.1f}%" if total else "-"
            echo_safe(
                f"{b.id:<10}  {b.count:>5}  {share:>6}  {b.first_seen[:19]:<19}  {b.last_seen[:19]:<19}  {b.key}"
            )
            for path in b.examples:
                echo_safe(f"{'':<10}  {'':>5}  {'':>6}  e.g. {path}")
            if b.count > len(b.examples) and b.examples:
                echo_safe(
                    f"{'':<10}  {'':>5}  {'':>6}  ... and {b.count - len(b.examples)} more: 'notmyfault triage show {b.id}'"
                )
    if failed:
        echo_safe(f"{failed} dumps could not be analysed: 'notmyfault triage show failed'")
    if truncated:
        echo_safe(f"{truncated} dumps are truncated (not counted here): 'notmyfault triage show truncated'")


@triage.command()
@click.argument("bucket")
@db_option
@json_option
def show(bucket: str, db_url: str, as_json: bool) -> None:
    """The dumps of BUCKET (an id from 'triage buckets', or its full name); 'failed' lists the dumps
    that could not be analysed, 'truncated' those cut short."""
    with _database(db_url, read_only=True) as db:
        if bucket in ("failed", "truncated"):
            failures = db.failures(bucket)
            if as_json:
                emit_json({"schema_version": SCHEMA_VERSION, "kind": f"triage-{bucket}",
                           "dumps": [{"path": p, "error": e, "transient": t} for p, e, t in failures]})  # fmt: skip
            else:
                if not failures:
                    echo_safe("no failed dumps: every stored dump was analysed"
                              if bucket == "failed" else "no truncated dumps: every stored dump is whole")  # fmt: skip
                for path, error, transient in failures:
                    again = (
                        " (stopped, not unreadable: the next ingest tries it again once)" if transient else ""
                    )
                    echo_safe(f"{path}: {error}{again}")
            return
        members = db.members(bucket)
    if not members:
        fail(f"no bucket {bucket!r}: 'notmyfault triage buckets' lists them")
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "triage-bucket",
                "bucket": members[0]["bucket"],
                "dumps": members,
            }
        )
        return
    echo_safe(members[0]["bucket"])
    for m in members:
        when = (m["crash_time"] or m["file_time"] or "")[:19]
        echo_safe(f"  {when}  pid {m['pid'] or '-':<7}  {m['blamed'] or '?':<40}  {m['path']}")


@triage.command()
@db_option
@rules_option
@json_option
def rebucket(db_url: str, rules_path: str | None, as_json: bool) -> None:
    """Recompute every signature from the stored frames (after a rule change; no dump is read again)."""
    rules = _rules(rules_path)
    with _database(db_url) as db:
        changed = db.rebucket(rules)
        count = len(db.buckets())
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "triage-rebucket",
                "changed": changed,
                "buckets": count,
            }
        )
    else:
        echo_safe(f"{changed} dumps changed bucket; {count} buckets now")


@triage.command()
@click.argument("dump")
@rules_option
@json_option
def explain(dump: str, rules_path: str | None, as_json: bool) -> None:
    """How DUMP's signature is made: every frame with the rule that kept, skipped or normalised it."""
    from notmyfault import failure_kind
    from notmyfault.cli.analyze import opened

    rules = _rules(rules_path)
    with opened(dump, True) as d:
        a = d.analysis()
        steps = d.signature_trace(rules)
        sig = d.signature(rules)
        bucket = d.bucket(rules)
        kind = failure_kind(a.crash_class, a.signal_name or a.exception_name)
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "triage-explain",
                "rules": rules.stamp(),
                "crash_class": a.crash_class,
                "failure_kind": kind,
                "program": a.program,
                "signature": sig,
                "bucket": bucket,
                "frames": [s.as_dict() for s in steps],
            }
        )
        return
    lines = [f"class {a.crash_class}: kind {kind}; program {a.program}; rules {rules.stamp()}", ""]
    for s in steps:
        where = s.frame.function or (f"+{s.frame.offset:#x}" if s.frame.offset is not None else "??")
        lines.append(f"#{s.index:<3} {s.verdict:<7} {s.token}")
        if s.frame.function and s.frame.function != s.token:
            lines.append(f"     name    {where}")
        lines.append(f"     module  {s.frame.module or '-'}")
        lines.append(f"     why     {s.rule}")
    lines += ["", f"SIGNATURE: {sig}", f"BUCKET_ID: {bucket}"]
    echo_safe("\n".join(lines))


@triage.command()
@rules_option
@json_option
def rules(rules_path: str | None, as_json: bool) -> None:
    """The signature rules (the built-in ones, or --rules FILE) as JSON: a start for your own."""
    r = _rules(rules_path)
    data = {"stamp": r.stamp(), **r.data()}
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "triage-rules", **data})
    else:
        click.echo(json.dumps(r.data(), indent=2))


def _redactions(path: str | None) -> Any:
    from notmyfault.triage import DEFAULT_REDACTIONS, load_redactions

    return _from_file(path, DEFAULT_REDACTIONS, load_redactions)


@triage.command()
@click.option(
    "--redact", "redact_path", metavar="FILE|none", help="These rules instead of the built-in ones."
)
@json_option
def redactions(redact_path: str | None, as_json: bool) -> None:
    """The redaction rules triage applies before it stores a row, as JSON: a start for your own
    (--redact FILE). Environments are never stored."""
    from notmyfault.triage import redactions_data

    data = redactions_data(_redactions(redact_path))
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "triage-redactions", **data})
    else:
        click.echo(json.dumps(data, indent=2))


@triage.command()
@click.option("--html", "html_path", required=True, metavar="FILE", help="Write the report here.")
@filter_options
@db_option
@json_option
def report(
    html_path: str,
    exe: str | None,
    build_id: str | None,
    since: str | None,
    search: str | None,
    db_url: str,
    as_json: bool,
) -> None:
    """One self-contained HTML page: the buckets (sortable, searchable) with share, trend and first and
    last seen, counts over time, and each bucket's breakdown, first dumps and analysis."""
    from notmyfault.triage import html_report

    where = _filter(exe, build_id, since, search)
    with _database(db_url, read_only=True) as db:
        page = html_report(db, where)
    try:
        write_file(html_path, page)
    except WriteFailed as e:
        fail(str(e), EXIT_NO_DUMP)
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "triage-report",
                "html": html_path,
                "bytes": len(page.encode()),
            }
        )
    else:
        echo_safe(f"wrote {printable(html_path)}")
