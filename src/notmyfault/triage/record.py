"""One dump's analysis as the row triage stores: what it is, what crashed, its program, version and
build id, the frames its signature is made from, the build ids of the modules on its stack, and the
``!analyze -v`` page itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

from notmyfault import __version__
from notmyfault.api import CrashAnalysis
from notmyfault.api import open as open_dump
from notmyfault.render.analysis import analysis_text

ANALYSIS_VERSION = f"{__version__}+triage4"
"""Stored with every row: a dump analysed by another version is analysed again on the next ingest."""
TOP_FRAMES = 32
"""The frames whose modules' build ids are stored."""


def analyze_path(path: str) -> dict[str, Any]:
    """Analyse the dump at ``path`` (any format the analyzer reads) into a row's fields.

    Errors propagate (DumpError for a bad file): the worker turns them into a failure record.
    """
    # imported with this module, before a worker's memory limit applies: an import that fails
    # for want of memory does not always say so
    with open_dump(path) as dump:
        a = dump.analysis()
        facts = dump.provenance(TOP_FRAMES)
        fields = _fields(a, facts.crash_time, facts.build_ids, analysis_text(a))
        # the home directory is used to redact the row, never stored (triage.redact.with_home)
        fields.update(build_id=facts.build_id, version=facts.version, home=dump.home_directory())
        return fields


def _fields(
    a: CrashAnalysis, crash_time: dt.datetime | None, build_ids: dict[str, str], text: str
) -> dict[str, Any]:
    return {
        "dump_kind": a.dump_kind,
        "arch": a.arch,
        "pid": a.pid,
        "executable": a.executable,
        "program": a.program,
        "crash_class": a.crash_class,
        "reason": a.signal_name or a.exception_name,
        "blamed": a.blamed_python.where() if a.blamed_python else a.blamed.location() if a.blamed else None,
        "frames": [f.as_dict() for f in a.sign_stack],
        "build_ids": build_ids,
        "crash_time": crash_time.isoformat() if crash_time else None,
        "analysis_text": text,
        "truncated": a.truncated,
    }


def file_time(mtime: float) -> str:
    """A file's modification time (UTC, ISO 8601): for a core, when the kernel wrote it."""
    return dt.datetime.fromtimestamp(mtime, dt.timezone.utc).isoformat()
