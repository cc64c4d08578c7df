"""The triage database: SQLite by default (a file, nothing to start), PostgreSQL for a shared one.

Both get the same schema from the same migrations (``MIGRATIONS``, applied in order and recorded
in ``schema_migrations``; a migration runs under a lock, so two ingests starting together apply it
once). A dump is one row, unique by (content hash, analysis version): inserting a row that is
already there does nothing, so concurrent ingests of the same dumps neither lose nor duplicate rows,
and every row is committed as soon as its dump is done.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notmyfault.triage.signature import DEFAULT_RULES, Rules, bucket_id, bucket_key, signature

COLUMNS = (
    "hash", "analysis_version", "path", "size", "file_time", "crash_time", "ingested_at", "host", "pid",
    "executable", "dump_kind", "arch", "status", "error", "crash_class", "reason", "blamed", "frames",
    "build_ids", "signature", "bucket", "bucket_id", "rules", "analysis_text", "seconds",
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
)
"""(version, SQL): ``{id}`` is the dialect's auto-increment key; statements are split on ';'."""


@dataclass(frozen=True)
class Bucket:
    """A bucket: dumps of one crash class with one signature."""

    id: str
    key: str
    crash_class: str
    signature: str
    count: int
    first_seen: str
    last_seen: str
    examples: tuple[str, ...]


class Database:
    """A connection to the triage database (SQLite file or PostgreSQL URL); a context manager."""

    def __init__(self, url: str) -> None:
        """Connect to ``url`` (a path, ``sqlite:///path``, or ``postgresql://...``) and migrate."""
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
            try:
                self.conn = sqlite3.connect(path, timeout=60, isolation_level=None)
                self._wal()
            except sqlite3.Error as e:
                raise ValueError(f"cannot open the database {path}: {e}") from e
        self.migrate()

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

    def _sql(self, sql: str) -> str:
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
            cur.execute(self._sql(sql), tuple(args))
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
                    self._sql("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
                    (version, now()),
                )
                done.append(version)
        return done

    def known(self, hashes: Iterable[str], analysis_version: str) -> set[str]:
        """The hashes among ``hashes`` already stored for ``analysis_version``."""
        out: set[str] = set()
        wanted = list(hashes)
        for at in range(0, len(wanted), 500):  # at most 500 parameters a query
            chunk = wanted[at : at + 500]
            rows = self.execute(
                f"SELECT hash FROM dumps WHERE analysis_version = ? AND hash IN ({','.join('?' * len(chunk))})",
                [analysis_version, *chunk],
            )
            out.update(r[0] for r in rows)
        return out

    def insert(self, row: dict[str, Any]) -> bool:
        """Store one dump's row (committed now); False if it was already there."""
        values = [row.get(c) for c in COLUMNS]
        sql = (
            f"INSERT INTO dumps ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
            "ON CONFLICT (hash, analysis_version) DO NOTHING"
        )
        with self.transaction() as cur:
            cur.execute(self._sql(sql), values)
            return bool(cur.rowcount)

    def count(self, status: str | None = None) -> int:
        """Rows stored (with ``status``: ok or failed)."""
        if status is None:
            return int(self.execute("SELECT COUNT(*) FROM dumps")[0][0])
        return int(self.execute("SELECT COUNT(*) FROM dumps WHERE status = ?", [status])[0][0])

    def buckets(self, since: str | None = None, top: int | None = None, examples: int = 3) -> list[Bucket]:
        """Buckets by size (then name), each with its first and last dump time and a few examples."""
        when = "COALESCE(crash_time, file_time)"
        where, args = "status = 'ok'", []
        if since:
            where += f" AND {when} >= ?"
            args.append(since)
        sql = (
            f"SELECT bucket_id, bucket, crash_class, signature, COUNT(*), MIN({when}), MAX({when}) "
            f"FROM dumps WHERE {where} GROUP BY bucket_id, bucket, crash_class, signature "
            "ORDER BY COUNT(*) DESC, bucket"
        )
        if top is not None:
            sql += f" LIMIT {int(top)}"
        out = []
        for bid, key, cls, sig, n, first, last in self.execute(sql, args):
            paths = self.execute(
                f"SELECT path FROM dumps WHERE bucket_id = ? AND {where} ORDER BY {when}, path LIMIT {int(examples)}",
                [bid, *args],
            )
            out.append(
                Bucket(bid, key, cls, sig, int(n), first or "", last or "", tuple(p[0] for p in paths))
            )
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

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every dump whose analysis failed."""
        return [
            (r[0], r[1])
            for r in self.execute("SELECT path, error FROM dumps WHERE status = 'failed' ORDER BY path")
        ]

    def example_text(self, bucket: str) -> str:
        """The analysis page of a bucket's first dump."""
        rows = self.execute(
            "SELECT analysis_text FROM dumps WHERE status = 'ok' AND bucket_id = ? "
            "ORDER BY COALESCE(crash_time, file_time), path LIMIT 1",
            [bucket],
        )
        return str(rows[0][0]) if rows else ""

    def timeline(self) -> list[tuple[str, str]]:
        """(bucket id, dump time) of every analysed dump, for the report's chart."""
        return [(r[0], r[1] or "") for r in self.execute(
            "SELECT bucket_id, COALESCE(crash_time, file_time) FROM dumps WHERE status = 'ok'"
        )]  # fmt: skip

    def rebucket(self, rules: Rules = DEFAULT_RULES) -> int:
        """Recompute every signature and bucket from the stored frames (no dump is read again);
        return how many rows changed bucket."""
        changed = 0
        with self.transaction(exclusive=True) as cur:
            cur.execute("SELECT id, crash_class, frames, bucket FROM dumps WHERE status = 'ok'")
            for rid, cls, frames, old in cur.fetchall():
                sig = signature([f["token"] for f in json.loads(frames or "[]")], rules)
                key = bucket_key(cls, sig)
                if key != old:
                    changed += 1
                cur.execute(
                    self._sql(
                        "UPDATE dumps SET signature = ?, bucket = ?, bucket_id = ?, rules = ? WHERE id = ?"
                    ),
                    (sig, key, bucket_id(key), rules.digest(), rid),
                )
        return changed


def now() -> str:
    """The current time, UTC, ISO 8601 (how every time is stored)."""
    return dt.datetime.now(dt.timezone.utc).isoformat()
