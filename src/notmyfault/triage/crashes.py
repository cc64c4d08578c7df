"""Crashes as the pipeline received them (``crashes``: one row per crash id, migration 4), joined
to their dumps' analysis (``dumps``, by content hash): what the live web UI lists.

A dump row is one content; a crash is one arrival. The same dump uploaded twice is one analysis
and two crashes, and the UI counts crashes. A crash's version is its annotation (``ver``) where
it has one, else what its dump says; its time is when it crashed, else when it was received.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from notmyfault.base.utf8 import storable
from notmyfault.triage.db import Database, _like, now
from notmyfault.triage.redact import DEFAULT_REDACTIONS, Redaction, redact

WHEN = "COALESCE(c.crash_time, c.received_at)"
VERSION = "COALESCE(c.version, d.version)"
PROGRAM = "COALESCE(c.product, d.program)"
JOIN = "crashes c JOIN dumps d ON d.hash = c.hash AND d.status = 'ok'"
SPARK_DAYS = 14


@dataclass(frozen=True)
class CrashFilter:
    """Which crashes a page covers: of a program (name, or executable path), a version, a crash
    class, since a time (ISO 8601 UTC, as ``parse_since`` gives it), and whose function names or
    signature hold a text (case-insensitive)."""

    program: str | None = None
    version: str | None = None
    crash_class: str | None = None
    since: str | None = None
    search: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition over ``JOIN`` and its parameters."""
        sql, args = "1 = 1", []
        if self.program:
            sql += f" AND ({PROGRAM} = ? OR d.program = ? OR d.executable = ?)"
            args += [self.program] * 3
        if self.version:
            sql += f" AND {VERSION} = ?"
            args.append(self.version)
        if self.crash_class:
            sql += " AND d.crash_class = ?"
            args.append(self.crash_class)
        if self.since:
            sql += f" AND {WHEN} >= ?"
            args.append(self.since)
        if self.search:
            like = "%" + _like(self.search.lower()) + "%"
            sql += (
                " AND ("
                + " OR ".join(
                    f"LOWER(COALESCE({c}, '')) LIKE ? ESCAPE '\\'"
                    for c in ("d.signature", "d.blamed", "d.frames")
                )
                + ")"
            )
            args += [like] * 3
        return sql, args

    def as_dict(self) -> dict[str, str | None]:
        """The filter's fields (for links and JSON)."""
        return {
            "program": self.program,
            "version": self.version,
            "crash_class": self.crash_class,
            "since": self.since,
            "search": self.search,
        }


def redacted_meta(meta: dict[str, Any], rules: tuple[Redaction, ...] = DEFAULT_REDACTIONS) -> dict[str, Any]:
    """A collected crash's metadata as stored: its command line (joined, as a page shows it) and
    its paths redacted by ``rules`` as triage redacts a dump's row (triage.redact)."""
    out = dict(meta)
    args = out.pop("cmdline", None)
    if isinstance(args, list):
        out["command_line"] = redact(" ".join(str(a) for a in args), rules, "command_line")
    for key in ("exe", "cgroup"):
        if isinstance(out.get(key), str):
            out[key] = redact(out[key], rules, "paths")
    return out


def record_crash(
    db: Database,
    crash_id: str,
    digest: str | None,
    meta: dict[str, Any],
    rules: tuple[Redaction, ...] = DEFAULT_REDACTIONS,
) -> bool:
    """Store a processed crash (its dump's row is stored already, by hash), its metadata redacted
    (``redacted_meta``); False if it was there."""
    meta = redacted_meta(meta, rules)
    sql = (
        "INSERT INTO crashes (id, hash, source, received_at, crash_time, product, version, annotations, meta,"
        " processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
    )
    annotations = meta.get("annotations") or {}
    values = [
        crash_id,
        digest,
        str(meta.get("source") or "?"),
        str(meta.get("received_at") or now()),
        meta.get("time"),
        meta.get("product"),
        meta.get("version"),
        json.dumps(annotations, sort_keys=True),
        json.dumps({k: v for k, v in meta.items() if k != "annotations"}, sort_keys=True),
        now(),
    ]
    with db.transaction() as cur:
        cur.execute(db.sql(sql), [storable(v) if isinstance(v, str) else v for v in values])
        return bool(cur.rowcount)


def known_crash(db: Database, crash_id: str) -> bool:
    """Whether the crash is stored."""
    return bool(db.execute("SELECT 1 FROM crashes WHERE id = ?", [crash_id]))


def crash_total(db: Database, f: CrashFilter) -> int:
    """How many analysed crashes ``f`` covers."""
    cond, args = f.where()
    return int(db.execute(f"SELECT COUNT(*) FROM {JOIN} WHERE {cond}", args)[0][0])


def crash_buckets(db: Database, f: CrashFilter, limit: int = 500) -> list[dict[str, Any]]:
    """The buckets of the crashes ``f`` covers, largest first: count, share, first and last seen,
    versions and programs (each with its count), and crashes per day for the last SPARK_DAYS days."""
    cond, args = f.where()
    rows = db.execute(
        f"SELECT d.bucket_id, MIN(d.bucket), MIN(d.crash_class), MIN(d.signature), MIN({PROGRAM}), COUNT(*),"
        f" MIN({WHEN}), MAX({WHEN}) FROM {JOIN} WHERE {cond} GROUP BY d.bucket_id"
        f" ORDER BY COUNT(*) DESC, MIN(d.bucket) LIMIT {int(limit)}",
        args,
    )
    all_crashes = sum(int(r[5]) for r in rows) or 1
    split: dict[str, dict[str, dict[str, int]]] = {}
    for bid, version, prog, n in db.execute(
        f"SELECT d.bucket_id, {VERSION}, {PROGRAM}, COUNT(*) FROM {JOIN} WHERE {cond}"
        f" GROUP BY d.bucket_id, {VERSION}, {PROGRAM}",
        args,
    ):
        s = split.setdefault(bid, {"versions": {}, "programs": {}})
        s["versions"][version or "-"] = s["versions"].get(version or "-", 0) + int(n)
        s["programs"][prog or "-"] = s["programs"].get(prog or "-", 0) + int(n)
    days = _days()
    spark: dict[str, list[int]] = {}
    for bid, day, n in db.execute(
        f"SELECT d.bucket_id, SUBSTR({WHEN}, 1, 10), COUNT(*) FROM {JOIN} WHERE {cond} AND {WHEN} >= ?"
        f" GROUP BY d.bucket_id, SUBSTR({WHEN}, 1, 10)",
        [*args, days[0]],
    ):
        if day in days:
            spark.setdefault(bid, [0] * len(days))[days.index(day)] += int(n)
    out = []
    for bid, key, cls, sig, prog, n, first_seen, last_seen in rows:
        s = split.get(bid, {"versions": {}, "programs": {}})
        out.append(
            {
                "bucket_id": bid,
                "bucket": key,
                "crash_class": cls,
                "signature": sig,
                "program": prog,
                "count": int(n),
                "share": round(int(n) / all_crashes, 4),
                "first_seen": first_seen,
                "last_seen": last_seen,
                "versions": dict(sorted(s["versions"].items(), key=lambda kv: (-kv[1], kv[0]))),
                "programs": dict(sorted(s["programs"].items(), key=lambda kv: (-kv[1], kv[0]))),
                "per_day": spark.get(bid, [0] * len(days)),
            }
        )
    return out


def _days(today: dt.date | None = None) -> list[str]:
    """The last SPARK_DAYS days (UTC), oldest first, as YYYY-MM-DD."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return [(today - dt.timedelta(days=SPARK_DAYS - 1 - i)).isoformat() for i in range(SPARK_DAYS)]


def spark_days() -> list[str]:
    """The days a bucket's ``per_day`` counts are of."""
    return _days()


def bucket_crashes(db: Database, bucket: str, f: CrashFilter, limit: int = 1000) -> list[dict[str, Any]]:
    """The crashes of one bucket (by id) that ``f`` covers, newest first."""
    cond, args = f.where()
    cols = (
        "id",
        "source",
        "received_at",
        "crash_time",
        "version",
        "program",
        "executable",
        "blamed",
        "reason",
        "host",
    )
    rows = db.execute(
        f"SELECT c.id, c.source, c.received_at, c.crash_time, {VERSION}, {PROGRAM}, d.executable, d.blamed,"
        f" d.reason, d.host FROM {JOIN} WHERE d.bucket_id = ? AND {cond} ORDER BY {WHEN} DESC, c.id"
        f" LIMIT {int(limit)}",
        [bucket, *args],
    )
    return [dict(zip(cols, r, strict=True)) for r in rows]


def bucket_summary(db: Database, bucket: str) -> dict[str, Any] | None:
    """One bucket's key, class, program and signature, or None if no analysed crash is in it."""
    rows = db.execute(
        f"SELECT MIN(d.bucket), MIN(d.crash_class), MIN({PROGRAM}), MIN(d.signature), COUNT(*), MIN({WHEN}),"
        f" MAX({WHEN}) FROM {JOIN} WHERE d.bucket_id = ?",
        [bucket],
    )
    if not rows or not rows[0][4]:
        return None
    key, cls, prog, sig, n, first_seen, last_seen = rows[0]
    return {
        "bucket_id": bucket,
        "bucket": key,
        "crash_class": cls,
        "program": prog,
        "signature": sig,
        "count": int(n),
        "first_seen": first_seen,
        "last_seen": last_seen,
    }


def crash_row(db: Database, crash_id: str) -> dict[str, Any] | None:
    """One crash with its dump's analysis (None if no such crash is stored)."""
    cols = (
        "id", "hash", "source", "received_at", "crash_time", "product", "annotation_version", "annotations",
        "meta", "processed_at", "status", "error", "dump_kind", "arch", "crash_class", "reason", "blamed",
        "frames", "signature", "bucket", "bucket_id", "program", "executable", "version", "build_id",
        "analysis_text", "pid", "host",
    )  # fmt: skip
    rows = db.execute(
        "SELECT c.id, c.hash, c.source, c.received_at, c.crash_time, c.product, c.version, c.annotations, c.meta,"
        " c.processed_at, d.status, d.error, d.dump_kind, d.arch, d.crash_class, d.reason, d.blamed, d.frames,"
        " d.signature, d.bucket, d.bucket_id, d.program, d.executable, d.version, d.build_id, d.analysis_text,"
        " d.pid, d.host FROM crashes c LEFT JOIN dumps d ON d.hash = c.hash WHERE c.id = ?",
        [crash_id],
    )
    if not rows:
        return None
    row = dict(zip(cols, rows[0], strict=True))
    for k in ("annotations", "meta", "frames"):
        row[k] = json.loads(row[k]) if row[k] else ({} if k != "frames" else [])
    row["version"] = row.pop("annotation_version") or row["version"]
    row["program"] = row["product"] or row["program"]
    return row


def failed_crashes(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """Crashes whose dump could not be analysed (or had none), newest first."""
    rows = db.execute(
        "SELECT c.id, c.received_at, c.source, COALESCE(d.status, 'no dump'), d.error FROM crashes c"
        " LEFT JOIN dumps d ON d.hash = c.hash WHERE d.status IS NULL OR d.status <> 'ok'"
        f" ORDER BY c.received_at DESC LIMIT {int(limit)}",
    )
    return [dict(zip(("id", "received_at", "source", "status", "error"), r, strict=True)) for r in rows]


def crash_versions(db: Database) -> list[str]:
    """The versions crashes came from, in the order each was first seen."""
    rows = db.execute(f"SELECT {VERSION}, MIN({WHEN}) FROM {JOIN} GROUP BY {VERSION} ORDER BY MIN({WHEN})")
    return [r[0] for r in rows if r[0]]


def crash_facets(db: Database) -> dict[str, list[str]]:
    """The programs, versions and crash classes there are (the filters' choices)."""
    return {
        "programs": [r[0] for r in db.execute(f"SELECT DISTINCT {PROGRAM} FROM {JOIN} ORDER BY 1") if r[0]],
        "versions": crash_versions(db),
        "classes": [
            r[0] for r in db.execute(f"SELECT DISTINCT d.crash_class FROM {JOIN} ORDER BY 1") if r[0]
        ],
    }


def new_in_version(db: Database, version: str, f: CrashFilter) -> list[dict[str, Any]]:
    """The buckets new in ``version``: it has crashes in them, and no other version had one before
    the first crash of ``version`` (a bucket that older versions had is not new, even if they
    stopped crashing there)."""
    rows = db.execute(
        f"SELECT d.bucket_id, {VERSION}, MIN({WHEN}) FROM {JOIN} GROUP BY d.bucket_id, {VERSION}"
    )
    starts = [t for _, v, t in rows if v == version]
    if not starts:
        return []
    began = min(starts)
    seen_before = {b for b, v, t in rows if v != version and t < began}
    have = {b for b, v, _ in rows if v == version}
    scoped = CrashFilter(f.program, version, f.crash_class, f.since, f.search)
    return [b for b in crash_buckets(db, scoped) if b["bucket_id"] in have - seen_before]
