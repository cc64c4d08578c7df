"""The triage database: SQLite by default (a file, nothing to start), PostgreSQL for a shared one.

Both get the same schema from the same migrations (``MIGRATIONS``, applied in order and recorded
in ``schema_migrations``; a migration runs under a lock, so two ingests starting together apply it
once). A dump is one row, unique by (content hash, analysis version): inserting a row that is
already there does nothing, so concurrent ingests of the same dumps neither lose nor duplicate rows,
and every row is committed as soon as its dump is done. A row replaces the dump's rows of older
analysis versions, so an upgrade never counts a dump twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from notmyfault.api import DEFAULT_RULES, Rules, SignFrame, bucket_id, bucket_key
from notmyfault.api import program_name as program
from notmyfault.api import signature_of as signature
from notmyfault.base.utf8 import storable

RETRIES = 1
"""How many times the next ingests analyse again a dump whose analysis was stopped (transient)."""
BREAKDOWN = ("executable", "build_id", "version", "host")
"""What a bucket's dumps are split by in the report."""
COLUMNS = (
    "hash", "analysis_version", "path", "size", "file_time", "crash_time", "ingested_at", "host", "pid",
    "executable", "dump_kind", "arch", "status", "error", "crash_class", "reason", "blamed", "frames",
    "build_ids", "signature", "bucket", "bucket_id", "rules", "analysis_text", "seconds", "program",
    "build_id", "version", "transient", "attempts",
)  # fmt: skip

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE dumps (
            id {id},
            hash TEXT NOT NULL,
            analysis_version TEXT NOT NULL,
            path TEXT NOT NULL,
            size BIGINT NOT NULL,
            file_time TEXT,
            crash_time TEXT,
            ingested_at TEXT NOT NULL,
            host TEXT,
            pid BIGINT,
            executable TEXT,
            dump_kind TEXT,
            arch TEXT,
            status TEXT NOT NULL,
            error TEXT,
            crash_class TEXT,
            reason TEXT,
            blamed TEXT,
            frames TEXT,
            build_ids TEXT,
            signature TEXT,
            bucket TEXT,
            bucket_id TEXT,
            rules TEXT,
            analysis_text TEXT,
            seconds DOUBLE PRECISION,
            UNIQUE (hash, analysis_version)
        );
        CREATE INDEX dumps_bucket ON dumps (bucket_id);
        CREATE INDEX dumps_status ON dumps (status)
        """,
    ),
    (
        2,
        """
        ALTER TABLE dumps ADD COLUMN program TEXT;
        ALTER TABLE dumps ADD COLUMN build_id TEXT;
        ALTER TABLE dumps ADD COLUMN version TEXT;
        CREATE INDEX dumps_program ON dumps (program)
        """,
    ),
    (
        3,
        """
        ALTER TABLE dumps ADD COLUMN transient INTEGER;
        ALTER TABLE dumps ADD COLUMN attempts INTEGER
        """,
    ),
    (
        4,
        """
        CREATE TABLE crashes (
            id TEXT PRIMARY KEY,
            hash TEXT,
            source TEXT NOT NULL,
            received_at TEXT NOT NULL,
            crash_time TEXT,
            product TEXT,
            version TEXT,
            annotations TEXT,
            meta TEXT,
            processed_at TEXT NOT NULL
        );
        CREATE INDEX crashes_hash ON crashes (hash);
        CREATE INDEX crashes_received ON crashes (received_at)
        """,
    ),
)
"""(version, SQL): ``{id}`` is the dialect's auto-increment key; statements are split on ';'."""


@dataclass(frozen=True)
class Bucket:
    """A bucket: the dumps of one program with one crash class and one signature."""

    id: str
    key: str
    crash_class: str
    program: str
    signature: str
    count: int
    first_seen: str
    last_seen: str
    examples: tuple[str, ...]
    """The first dumps (at most the ``examples`` asked for), oldest first."""


@dataclass(frozen=True)
class Filter:
    """Which dumps a listing covers: all, or those of one program (its name, the executable's file
    name or path), of an executable build id (or a prefix of one), from a time on, or whose bucket,
    executable or blamed frame holds a text (case-insensitive)."""

    exe: str | None = None
    build_id: str | None = None
    since: str | None = None
    """An ISO 8601 time in UTC, as ``parse_since`` gives it."""
    search: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition (for ok rows) and its parameters."""
        sql, args = "status = 'ok'", []
        if self.exe:
            sql += " AND (program = ? OR executable = ? OR executable LIKE ? ESCAPE '\\')"
            args += [self.exe, self.exe, "%/" + _like(self.exe)]
        if self.build_id:
            sql += " AND LOWER(build_id) LIKE ? ESCAPE '\\'"
            args.append(_like(self.build_id.lower()) + "%")
        if self.since:
            sql += f" AND {WHEN} >= ?"
            args.append(self.since)
        if self.search:
            sql += (
                " AND (LOWER(bucket) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(executable, '')) LIKE ? ESCAPE '\\'"
            )
            sql += " OR LOWER(COALESCE(blamed, '')) LIKE ? ESCAPE '\\')"
            args += ["%" + _like(self.search.lower()) + "%"] * 3
        return sql, args


WHEN = "COALESCE(crash_time, file_time)"
"""A dump's time: when it crashed, where the dump says, else when its file was written."""


def _like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_since(text: str) -> str:
    """A --since value (journalctl's forms, ``base.when``: ISO 8601, ``yesterday``, ``1 hour ago``;
    UTC when it names no zone) as the stored form of times (UTC, ISO 8601), so that stored times
    compare with it; ValueError if it is no time."""
    from notmyfault.base import parse_when

    try:
        seconds = parse_when(text, zone=dt.timezone.utc)
    except ValueError as e:
        raise ValueError(f"--since {e}") from None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat()
    except (ValueError, OverflowError, OSError):  # before the year 1 or after 9999
        raise ValueError(
            f"--since {text!r} is out of range: give a time between the years 1 and 9999"
        ) from None


def _create_private(path: str) -> None:
    """Create the SQLite file ``path``, mode 0600, if it does not exist (it holds what dumps held:
    command lines, paths), never through a link; SQLite's -wal and -shm files take its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Database:
    """A connection to the triage database (SQLite file or PostgreSQL URL); a context manager."""

    def __init__(self, url: str, read_only: bool = False) -> None:
        """Connect to ``url`` (a path, ``sqlite:///path``, or ``postgresql://...``) and migrate;
        ``read_only``: only read (a SQLite file on a read-only filesystem, or not ours to write)."""
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if self.postgres:
            try:
                import psycopg
            except ImportError as e:
                raise ValueError("--db postgresql://... needs psycopg: pip install 'psycopg[binary]'") from e
            try:
                self.conn: Any = psycopg.connect(url, autocommit=False, connect_timeout=10)
            except psycopg.Error as e:
                raise ValueError(f"cannot connect to {url}: {str(e).strip().splitlines()[0]}") from e
        else:
            path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
            if Path(path).is_dir():
                raise ValueError(f"--db {path} is a directory: give a file name (e.g. triage.db)")
            if os.path.exists(path) and not Path(path).is_file():
                raise ValueError(f"--db {path} is not a regular file: give a database file (e.g. triage.db)")
            try:
                if read_only:
                    self.conn = self._read_only(path)
                    self._check_schema(path)
                    return
                _create_private(path)
                self.conn = sqlite3.connect(path, timeout=60, isolation_level=None)
                self._wal()
            except sqlite3.Error as e:
                raise ValueError(f"cannot open the database {path}: {e}") from e
            except OSError as e:
                raise ValueError(f"cannot create the database {path}: {e.strerror}") from e
        self.migrate()

    def _check_schema(self, path: str) -> None:
        """For a database opened read-only: ValueError unless every migration is applied."""
        try:
            applied = {r[0] for r in self.conn.execute("SELECT version FROM schema_migrations")}
        except sqlite3.OperationalError:
            applied = set()
        if missing := [v for v, _ in MIGRATIONS if v not in applied]:
            self.conn.close()
            raise ValueError(
                f"the database {path} is not a triage database of this version (it lacks migration"
                f" {missing[0]}): 'notmyfault triage ingest --db {path}' upgrades it, where it can be written"
            )

    @staticmethod
    def _read_only(path: str) -> sqlite3.Connection:
        """``path`` opened for reading only; on a read-only filesystem, where a database in WAL mode
        cannot make its shared-memory file, as an immutable file (nobody can write it there)."""
        uri = "file:" + quote(os.path.abspath(path))
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=60, isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn = sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn

    def _wal(self) -> None:
        """Switch SQLite to write-ahead logging (readers do not block the writer). Switching takes a
        lock that the busy timeout does not wait for: two ingests opening a new file at once retry."""
        deadline = time.monotonic() + 60
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def sql(self, sql: str) -> str:
        """``sql`` written with ``?`` placeholders, in this database's dialect."""
        return sql.replace("?", "%s") if self.postgres else sql

    @contextmanager
    def transaction(self, exclusive: bool = False) -> Iterator[Any]:
        """A transaction (``exclusive``: no other writer until it ends); commits, or rolls back."""
        cur = self.conn.cursor()
        if not self.postgres:
            cur.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
        try:
            yield cur
        except BaseException:
            self.conn.rollback()
            raise
        else:
            self.conn.commit()
        finally:
            cur.close()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction; return its rows."""
        with self.transaction() as cur:
            cur.execute(self.sql(sql), tuple(args))
            return list(cur.fetchall()) if cur.description else []

    def migrate(self) -> list[int]:
        """Apply the migrations not yet applied; return their versions."""
        done = []
        with self.transaction(exclusive=True) as cur:
            if self.postgres:
                cur.execute("SELECT pg_advisory_xact_lock(7745312)")  # one migrating ingest at a time
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            cur.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in cur.fetchall()}
            for version, sql in MIGRATIONS:
                if version in applied:
                    continue
                key = "BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
                for statement in sql.format(id=key).split(";"):
                    if statement.strip():
                        cur.execute(statement)
                cur.execute(
                    self.sql("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
                    (version, now()),
                )
                done.append(version)
        return done

    def known(
        self,
        hashes: Iterable[str],
        analysis_version: str,
        retry_failed: bool = False,
        started: str | None = None,
    ) -> set[str]:
        """The hashes among ``hashes`` already stored for ``analysis_version``, but for the dumps to
        analyse again: those whose analysis was stopped (transient) and tried only once, and with
        ``retry_failed`` every failed one. ``started``: when the asking ingest started; a row stored
        since then is a concurrent ingest's, never retried (that spent the retry of rows whose
        analysis was still under way elsewhere)."""
        out: set[str] = set()
        wanted = list(hashes)
        again = (
            "status = 'failed'"
            if retry_failed
            else f"(status = 'failed' AND transient = 1 AND COALESCE(attempts, 1) < {RETRIES + 1})"
        )
        if started is not None:
            again = f"({again} AND ingested_at < ?)"
        for at in range(0, len(wanted), 500):  # at most 500 parameters a query
            chunk = wanted[at : at + 500]
            rows = self.execute(
                f"SELECT hash FROM dumps WHERE analysis_version = ? AND hash IN ({','.join('?' * len(chunk))}) "
                f"AND NOT {again}",
                [analysis_version, *chunk, *([started] if started is not None else [])],
            )
            out.update(r[0] for r in rows)
        return out

    def failed_attempts(self, hashes: Iterable[str], analysis_version: str) -> dict[str, int]:
        """The dumps among ``hashes`` stored as failed for ``analysis_version``: how many times each
        was tried. An ingest that analyses one again replaces that row only if it is still the one it
        saw (see :meth:`insert`)."""
        out: dict[str, int] = {}
        wanted = list(hashes)
        for at in range(0, len(wanted), 500):
            chunk = wanted[at : at + 500]
            rows = self.execute(
                "SELECT hash, COALESCE(attempts, 1) FROM dumps WHERE analysis_version = ? AND status = 'failed' "
                f"AND hash IN ({','.join('?' * len(chunk))})",
                [analysis_version, *chunk],
            )
            out.update((r[0], int(r[1])) for r in rows)
        return out

    def insert(self, row: dict[str, Any], replaces: int | None = None) -> bool:
        """Store one dump's row (committed now); False if it was already there. ``replaces``: the
        attempts of the failed row this analysis retries (from :meth:`failed_attempts`): that row is
        replaced, counting the attempt, if it is still there as it was; a row another ingest stored
        meanwhile (a concurrent one that analysed the same dump) is kept, and this one is not counted.
        The row replaces the dump's rows of other analysis versions, in the same transaction: after
        an upgrade, a dump ingested again is counted once, by its new analysis."""
        sql = (
            f"INSERT INTO dumps ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
            "ON CONFLICT (hash, analysis_version) DO NOTHING"
        )
        key = (row["hash"], row["analysis_version"])
        # IMMEDIATE on SQLite: a transaction that reads first and then writes cannot wait for the lock
        # when another ingest wrote meanwhile (SQLITE_BUSY at once); one that starts as a writer waits
        with self.transaction(exclusive=True) as cur:
            # a failed row of this dump and version is replaced by the new analysis, counting the attempt
            cur.execute(
                self.sql(
                    "SELECT COALESCE(attempts, 1) FROM dumps WHERE hash = ? AND analysis_version = ? "
                    "AND status = 'failed'"
                ),
                key,
            )
            before = [r for r in cur.fetchall() if replaces is not None and int(r[0]) == replaces]
            if before:
                cur.execute(
                    self.sql(
                        "DELETE FROM dumps WHERE hash = ? AND analysis_version = ? AND status = 'failed'"
                    ),
                    key,
                )
            attempts = int(before[0][0]) + 1 if before else 1
            values = [attempts if c == "attempts" else row.get(c) for c in COLUMNS]
            cur.execute(self.sql(sql), [storable(v) if isinstance(v, str) else v for v in values])
            inserted = bool(cur.rowcount)
            if inserted:
                cur.execute(
                    self.sql("DELETE FROM dumps WHERE hash = ? AND analysis_version <> ?"),
                    (row["hash"], row["analysis_version"]),
                )
            return inserted

    def count(self, status: str | None = None) -> int:
        """Rows stored (with ``status``: ok or failed)."""
        if status is None:
            return int(self.execute("SELECT COUNT(*) FROM dumps")[0][0])
        return int(self.execute("SELECT COUNT(*) FROM dumps WHERE status = ?", [status])[0][0])

    def count_ok(self, where: Filter | None = None) -> int:
        """Analysed dumps that ``where`` covers (what a bucket's share is of)."""
        cond, args = (where or Filter()).where()
        return int(self.execute(f"SELECT COUNT(*) FROM dumps WHERE {cond}", args)[0][0])

    def buckets(self, where: Filter | None = None, top: int | None = None, examples: int = 3) -> list[Bucket]:
        """Buckets by size (then name), each with its first and last dump time and its first
        ``examples`` dumps; ``where`` narrows the dumps counted."""
        cond, args = (where or Filter()).where()
        sql = (
            # one bucket may hold several classes (one kind): the row shows the first by name
            f"SELECT bucket_id, bucket, MIN(crash_class), COALESCE(program, ''), signature, COUNT(*), MIN({WHEN}), "
            f"MAX({WHEN}) FROM dumps WHERE {cond} GROUP BY bucket_id, bucket, program, signature "
            "ORDER BY COUNT(*) DESC, bucket"
        )
        if top is not None:
            sql += f" LIMIT {int(top)}"
        out = []
        for bid, key, cls, prog, sig, n, first, last in self.execute(sql, args):
            paths = self.execute(
                f"SELECT path FROM dumps WHERE bucket_id = ? AND {cond} ORDER BY {WHEN}, path LIMIT {int(examples)}",
                [bid, *args],
            )
            out.append(
                Bucket(
                    bid,
                    key,
                    cls,
                    prog or "?",
                    sig,
                    int(n),
                    first or "",
                    last or "",
                    tuple(p[0] for p in paths),
                )
            )
        return out

    def breakdown(self, where: Filter | None = None) -> dict[str, dict[str, Counter[str]]]:
        """For each bucket id: how its dumps split by executable, executable build id, version and
        host (``-`` where a dump does not say)."""
        cond, args = (where or Filter()).where()
        out: dict[str, dict[str, Counter[str]]] = {}
        rows = self.execute(
            f"SELECT bucket_id, executable, build_id, version, host, COUNT(*) FROM dumps WHERE {cond} "
            "GROUP BY bucket_id, executable, build_id, version, host",
            args,
        )
        for bid, exe, build, version, host, n in rows:
            split = out.setdefault(bid, {k: Counter() for k in BREAKDOWN})
            for k, v in zip(BREAKDOWN, (exe, build, version, host), strict=True):
                split[k][str(v) if v else "-"] += int(n)
        return out

    def members(self, bucket: str) -> list[dict[str, Any]]:
        """The dumps of a bucket (by id, or by its full key), oldest first."""
        cols = (
            "path",
            "hash",
            "size",
            "file_time",
            "crash_time",
            "pid",
            "executable",
            "blamed",
            "reason",
            "bucket",
        )
        rows = self.execute(
            f"SELECT {', '.join(cols)} FROM dumps WHERE status = 'ok' AND (bucket_id = ? OR bucket = ?) "
            "ORDER BY COALESCE(crash_time, file_time), path",
            [bucket, bucket],
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def failures(self, status: str = "failed") -> list[tuple[str, str, bool]]:
        """(path, reason, transient) of every dump whose analysis failed (``truncated``: of every dump
        cut short); transient: the analysis was stopped, and the next ingest tries it again once."""
        return [
            (r[0], r[1], bool(r[2]))
            for r in self.execute(
                "SELECT path, error, COALESCE(transient, 0) FROM dumps WHERE status = ? ORDER BY path",
                [status],
            )
        ]

    def example_text(self, bucket: str) -> str:
        """The analysis page of a bucket's first dump."""
        rows = self.execute(
            "SELECT analysis_text FROM dumps WHERE status = 'ok' AND bucket_id = ? "
            "ORDER BY COALESCE(crash_time, file_time), path LIMIT 1",
            [bucket],
        )
        return str(rows[0][0]) if rows else ""

    def timeline(self, where: Filter | None = None) -> list[tuple[str, str]]:
        """(bucket id, dump time) of every analysed dump, for the report's chart and trends."""
        cond, args = (where or Filter()).where()
        return [
            (r[0], r[1] or "")
            for r in self.execute(f"SELECT bucket_id, {WHEN} FROM dumps WHERE {cond}", args)
        ]

    def rebucket(self, rules: Rules = DEFAULT_RULES) -> int:
        """Recompute every program, signature and bucket from the stored frames by ``rules`` (no
        dump is read again) and record the rules' stamp; return how many rows changed bucket."""
        changed = 0
        with self.transaction(exclusive=True) as cur:
            cur.execute(
                "SELECT id, crash_class, dump_kind, executable, frames, bucket, reason FROM dumps "
                "WHERE status = 'ok'"
            )
            for rid, cls, kind, exe, frames, old, reason in cur.fetchall():
                prog = program(kind, exe)
                sig = signature([SignFrame.from_dict(f) for f in json.loads(frames or "[]")], rules)
                key = bucket_key(cls, prog, sig, reason)
                if key != old:
                    changed += 1
                cur.execute(
                    self.sql(
                        "UPDATE dumps SET program = ?, signature = ?, bucket = ?, bucket_id = ?, rules = ? WHERE id = ?"
                    ),
                    (prog, sig, key, bucket_id(key), rules.stamp(), rid),
                )
        return changed


def now() -> str:
    """The current time, UTC, ISO 8601 (how every time is stored)."""
    return dt.datetime.now(dt.timezone.utc).isoformat()
