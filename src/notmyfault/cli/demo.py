"""``notmyfault demo``: the seed's whole story in one command.

Leak nonpaged pool tagged ``Leak`` (Leak/second, to a limit), crash with
``high-irql`` in the same process, then read the dump the way the seed's
WinDbg session did, section by section: ``!analyze -v``, ``.trap``, ``kvL``,
``!vm``, ``!poolused``, ``s -a`` for the tag, ``lmvm myfault``.
"""

from __future__ import annotations

import resource
import sys

import click

from notmyfault.cli.common import (
    DUMP_DIR_HELP,
    EXIT_INTERRUPTED,
    EXIT_NO_DUMP,
    dump_settings,
    echo_safe,
    emit_json,
    fail,
    run_watched,
)
from notmyfault.render import SCHEMA_VERSION

SEED_RATE, SEED_STOP = "1000KB", "200MB"
FAST_RATE, FAST_STOP = "100MB", "200MB"


def _heading(command: str) -> str:
    return f"\n{'=' * 79}\nkd> {command}\n{'=' * 79}"


def _pool(stop_at: int) -> tuple[str, str | None]:
    """nonpaged, unless this user may not lock that much: then paged, with the reason."""
    from notmyfault.faults import memlock_allows

    if memlock_allows(stop_at):
        return "nonpaged", None
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return (
        "paged",
        f"RLIMIT_MEMLOCK ({hard} bytes) is too small to lock {stop_at} bytes: leaking the paged pool instead",
    )


@click.command()
@click.option(
    "--exact",
    is_flag=True,
    help=f"NotMyfault's walkthrough's own numbers: {SEED_RATE}/s to {SEED_STOP} (about 200 s).",
)
@click.option("--rate", help=f"Leak per second (default {FAST_RATE}).")
@click.option("--stop-at", help=f"Leak this much (default {FAST_STOP}).")
@click.option("--dump-dir", type=click.Path(file_okay=False), help=DUMP_DIR_HELP)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON Lines: the demo's start, the leak's events, the crash object, then the report's sections "
    "and the analysis.",
)
def demo(exact: bool, rate: str | None, stop_at: str | None, dump_dir: str | None, as_json: bool) -> None:
    """Leak nonpaged memory tagged Leak, crash in myfault with high-irql, then analyse the dump section by
    section as WinDbg would (!analyze -v, .trap, kvL, !vm, !poolused, s -a, lmvm)."""
    from notmyfault import DumpError
    from notmyfault.capture import CrashInterrupted
    from notmyfault.cli.common import parse_size_option
    from notmyfault.render.analysis import analysis_json
    from notmyfault.render.capture import crash_json, crash_text
    from notmyfault.render.report import dump_report

    if exact and (rate or stop_at):
        fail(
            "--exact uses the walkthrough's numbers (1000KB/s to 200MB); leave out --rate and --stop-at, or --exact"
        )
    rate = rate or (SEED_RATE if exact else FAST_RATE)
    stop_at = stop_at or (SEED_STOP if exact else FAST_STOP)
    stop_bytes = parse_size_option("--stop-at", stop_at)
    parse_size_option("--rate", rate)
    pool, why = _pool(stop_bytes)
    settings = dump_settings(dump_dir)
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "demo", "event": "started", "rate": rate,
                   "stop_at": stop_at, "pool": pool, "pool_reason": why, "tag": "Leak",
                   "crash_type": "high-irql"}, lines=True)  # fmt: skip
    else:
        echo_safe(
            f"notmyfault demo: Leak/second {rate}, {pool} pool, tag 'Leak', to {stop_at}; then High IRQL fault"
        )
        if why:
            echo_safe(f"notmyfault demo: {why}")
    argv = [sys.executable, "-m", "notmyfault", "leak", "--pool", pool, "--rate", rate, "--stop-at", stop_at,
            "--tag", "Leak", "--then-crash", "high-irql", "--child",
            *(["--json"] if as_json else [])]  # fmt: skip
    try:
        run = run_watched(
            argv,
            settings,
            "leak-then-high-irql",
            None,
            on_interrupt="forward",
            new_session=True,
            echo_stderr=True,
        )
    except CrashInterrupted as e:
        fail(str(e), EXIT_INTERRUPTED)
    if as_json:
        emit_json(crash_json(run), lines=True)
    else:
        echo_safe(crash_text(run))
    if run.dump is None:
        sys.exit(EXIT_NO_DUMP)
    try:
        report = dump_report(run.dump.path, tag="Leak")
    except DumpError as e:
        fail(str(e))
    if as_json:
        sections = [
            {"key": x.key, "command": x.command, "title": x.title, "text": x.text} for x in report.sections
        ]
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "demo", "event": "report", "dump": report.path,
                   "sections": sections, "analysis": analysis_json(report.analysis)}, lines=True)  # fmt: skip
        return
    for section in report.sections:
        echo_safe(_heading(section.command))
        echo_safe(section.text)
