"""Fleet triage: many dumps analysed in worker processes, stored one row each, grouped into buckets
(by the signature the public API makes, the one analyze prints as BUCKET_ID).

Built on the public API (``notmyfault.api``) and the renderers, nothing behind them.

worker.py     a warm analysis process per worker, with a time and a memory limit per dump
record.py     one dump's analysis turned into the row that is stored
db.py         SQLite (default) or PostgreSQL, the same schema and migrations
ingest.py     finding dumps, skipping known ones, running them locally or on a Dask cluster
report.py     the self-contained HTML report

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: api, render, base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.triage.db import Database, Filter, parse_since
    from notmyfault.triage.ingest import ingest as ingest_dumps
    from notmyfault.triage.redact import DEFAULT_REDACTIONS, load_redactions, redactions_data
    from notmyfault.triage.report import html_report, trends

_EXPORTS = {
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
    "Database",
    "Filter",
    "html_report",
    "ingest_dumps",
    "load_redactions",
    "parse_since",
    "redactions_data",
    "trends",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
