"""Fleet triage: many dumps analysed in worker processes, stored one row each, grouped into buckets
(by the signature the public API makes, the one analyze prints as BUCKET_ID).

Built on the public API (``notmyfault.api``) and the renderers, nothing behind them.

worker.py     a warm analysis process per worker, with a time and a memory limit per dump
record.py     one dump's analysis turned into the row that is stored
db.py         SQLite (default) or PostgreSQL, the same schema and migrations
ingest.py     finding dumps, skipping known ones, running them locally or on a Dask cluster
report.py     the self-contained HTML report
crashes.py    crashes as the pipeline received them, joined to their dumps' rows (the web UI's queries)

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: api, render, base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.triage.crashes import (
        CrashFilter,
        bucket_crashes,
        bucket_summary,
        crash_buckets,
        crash_facets,
        crash_row,
        crash_total,
        crash_versions,
        failed_crashes,
        new_in_version,
        record_crash,
        spark_days,
    )
    from notmyfault.triage.db import Database, Filter, parse_since
    from notmyfault.triage.ingest import ingest as ingest_dumps
    from notmyfault.triage.redact import DEFAULT_REDACTIONS, load_redactions, redactions_data
    from notmyfault.triage.report import html_report, trends

_EXPORTS = {
    "CrashFilter": "notmyfault.triage.crashes:CrashFilter",
    "bucket_crashes": "notmyfault.triage.crashes:bucket_crashes",
    "bucket_summary": "notmyfault.triage.crashes:bucket_summary",
    "crash_buckets": "notmyfault.triage.crashes:crash_buckets",
    "crash_facets": "notmyfault.triage.crashes:crash_facets",
    "crash_row": "notmyfault.triage.crashes:crash_row",
    "crash_total": "notmyfault.triage.crashes:crash_total",
    "crash_versions": "notmyfault.triage.crashes:crash_versions",
    "failed_crashes": "notmyfault.triage.crashes:failed_crashes",
    "new_in_version": "notmyfault.triage.crashes:new_in_version",
    "spark_days": "notmyfault.triage.crashes:spark_days",
    "record_crash": "notmyfault.triage.crashes:record_crash",
    "DEFAULT_REDACTIONS": "notmyfault.triage.redact:DEFAULT_REDACTIONS",
    "Database": "notmyfault.triage.db:Database",
    "Filter": "notmyfault.triage.db:Filter",
    "html_report": "notmyfault.triage.report:html_report",
    "ingest_dumps": "notmyfault.triage.ingest:ingest",
    "load_redactions": "notmyfault.triage.redact:load_redactions",
    "parse_since": "notmyfault.triage.db:parse_since",
    "redactions_data": "notmyfault.triage.redact:redactions_data",
    "trends": "notmyfault.triage.report:trends",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = [
    "DEFAULT_REDACTIONS",
    "CrashFilter",
    "Database",
    "Filter",
    "bucket_crashes",
    "bucket_summary",
    "crash_buckets",
    "crash_facets",
    "crash_row",
    "crash_total",
    "crash_versions",
    "failed_crashes",
    "html_report",
    "ingest_dumps",
    "load_redactions",
    "new_in_version",
    "parse_since",
    "record_crash",
    "redactions_data",
    "spark_days",
    "trends",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
