"""``notmyfault list`` and ``notmyfault info``: the crashes this machine kept, as ``coredumpctl list`` /
``coredumpctl info`` show them, from systemd-coredump, the journal, apport and our own dump directory."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import click

from notmyfault.cli.common import echo_page, echo_safe, emit_json, fail
from notmyfault.render import SCHEMA_VERSION

store_option = click.option(
    "--coredump-dir",
    "store",
    default="/var/lib/systemd/coredump",
    show_default=True,
    type=click.Path(file_okay=False),
    help="systemd-coredump's store.",
)
crash_dir_option = click.option(
    "--crash-dir",
    default="/var/crash",
    show_default=True,
    type=click.Path(file_okay=False),
    help="apport's crash reports.",
)
dump_dir_option = click.option(
    "--dump-dir",
    type=click.Path(file_okay=False),
    help="notmyfault's dumps (default: $NOTMYFAULT_DUMP_DIR or ~/.local/state/notmyfault/dumps).",
)
journal_option = click.option(
    "--journal",
    type=click.File("r"),
    help="Read the journal's coredump entries from this 'journalctl -o json' export (- for stdin) "
    "instead of running journalctl.",
)
since_option = click.option(
    "--since",
    metavar="TIME",
    help="Only crashes from this time on, as journalctl takes it: 2026-11-01, '2026-11-01 12:00', "
    "today, yesterday, '1 hour ago', -2d, @EPOCH (local time unless a zone is given).",
)


def _since(text: str | None) -> float | None:
    from notmyfault.base import parse_when

    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError as e:
        fail(f"--since {e}")


def _matches(c: Any, match: str) -> bool:
    """Whether crash ``c`` is the one ``match`` names, as coredumpctl matches: its ID, its pid (a
    number), its dump's path or its executable's path (with a '/'), or its executable's name."""
    if match == c.id:
        return True
    if match.isdigit():
        return bool(c.pid == int(match))
    if "/" in match:
        return bool(match in (c.path, c.executable))
    return bool(c.executable) and os.path.basename(c.executable) == match


def _find(kept: list[Any], ident: str) -> Any | None:
    """The newest crash ``ident`` names: its ID (or an ID's unique prefix of 4 digits or more), a
    pid, a path, or an executable's name."""
    exact = next((c for c in kept if _matches(c, ident)), None)
    if exact is not None:
        return exact
    if len(ident) >= 4 and all(ch in "0123456789abcdef" for ch in ident):
        by_prefix = [c for c in kept if c.id.startswith(ident)]
        if len(by_prefix) == 1:
            return by_prefix[0]
    return None


def _kept(store: str, crash_dir: str, dump_dir: str | None, journal: Any, since: str | None) -> list[Any]:
    from notmyfault.capture import default_dump_dir
    from notmyfault.capture import dump_inventory as inventory

    lines = journal.read().splitlines() if journal is not None else None
    return inventory(store, crash_dir, dump_dir or default_dump_dir(), lines, _since(since))


def _verdict(analysis: Any, error: str | None) -> dict[str, Any]:
    """The one-line verdict of a kept dump: its class and what the blame rule picked, or why none."""
    blamed = analysis.blamed.location() if analysis is not None and analysis.blamed else None
    return {"class": analysis.crash_class if analysis is not None else None, "blamed": blamed, "error": error}


def _row(c: Any, verdict: dict[str, Any] | None) -> dict[str, Any]:
    row = {
        "id": c.id,
        "source": c.source,
        "time": c.time,
        "time_iso": datetime.datetime.fromtimestamp(c.time).astimezone().isoformat(timespec="seconds")
        if c.time
        else None,
        "pid": c.pid,
        "uid": c.uid,
        "signal": c.signal,
        "signal_name": c.signal_name,
        "executable": c.executable,
        "path": c.path,
        "size": c.size,
        "present": c.present,
        "truncated": c.truncated,
        "truncation": c.truncation,
        "note": c.note,
    }
    if verdict is not None:
        row["verdict"] = verdict
    return row


def _text_line(row: dict[str, Any]) -> str:
    from notmyfault.base import format_size
    from notmyfault.render.safe import printable

    when = (row["time_iso"] or "?")[:19].replace("T", " ")
    size = format_size(row["size"]) if row["size"] is not None else "-"
    present = ("truncated" if row["truncated"] else "present") if row["present"] else "missing"
    line = (
        f"{row['id']:8}  {when:19}  {row['pid'] or '-':>7}  {row['signal_name'] or '-':8}  {present:8}"
        f"  {size:>10}  {row['source']:16}  {printable(row['executable'] or '?')}"
    )
    verdict = row.get("verdict")
    if verdict:
        line += f"\n     {verdict['class'] or '?'} {verdict['blamed'] or ''}".rstrip()
        if verdict["error"]:
            line += f"  ({printable(verdict['error'])})"
    return line


@click.command("list")
@click.argument("matches", metavar="[MATCH]...", nargs=-1)
@store_option
@crash_dir_option
@dump_dir_option
@journal_option
@since_option
@click.option("--verdict", is_flag=True, help="Also analyse each present dump: its class and blamed frame.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (docs/json-schema.md).")
def list_crashes(
    matches: tuple[str, ...],
    store: str,
    crash_dir: str,
    dump_dir: str | None,
    journal: Any,
    since: str | None,
    verdict: bool,
    as_json: bool,
) -> None:
    """The crashes this machine kept, newest first: systemd-coredump's store and journal entries, apport's
    reports, notmyfault's dumps (like coredumpctl list).  Each MATCH keeps the crashes it names: an
    ID, a pid, a path, or an executable's name.  IDs are stable: 'notmyfault info ID' shows one."""
    kept = _kept(store, crash_dir, dump_dir, journal, since)
    if matches:
        kept = [c for c in kept if any(_matches(c, m) for m in matches)]
    rows = [_row(c, _verdict_of(c.path) if verdict and c.present and c.path else None) for c in kept]
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "crash-list", "crashes": rows})
        return
    if not rows:
        echo_safe(
            "No kept crashes found (systemd-coredump, the journal, apport, notmyfault's dump directory)."
        )
        return
    echo_safe(
        f"{'ID':8}  {'TIME':19}  {'PID':>7}  {'SIG':8}  {'COREFILE':9}  {'SIZE':>10}  {'SOURCE':16}  EXE"
    )
    for row in rows:
        echo_safe(_text_line(row))


@click.command()
@click.argument("ident", metavar="ID")
@store_option
@crash_dir_option
@dump_dir_option
@journal_option
@click.option("--json", "as_json", is_flag=True, help="JSON output (docs/json-schema.md).")
def info(store: str, crash_dir: str, dump_dir: str | None, journal: Any, ident: str, as_json: bool) -> None:
    """One kept crash (its ID from 'notmyfault list' or a unique prefix of it, a pid, a path, or an
    executable's name: the newest crash it names) with its analysis: the record, then the
    '!analyze' page of its dump (JSON: ``analysis``)."""
    c = _find(_kept(store, crash_dir, dump_dir, journal, None), ident)
    if c is None:
        fail(
            f"no kept crash {ident!r}: give an ID from 'notmyfault list', a pid, a path or an executable's name"
        )
    from notmyfault.render.analysis import analysis_json, analysis_text, truncation_line
    from notmyfault.render.safe import printable

    render = analysis_json if as_json else analysis_text
    analysis, body, error = _analysis(c.path, render) if c.present and c.path else (None, None, None)
    verdict = _verdict(analysis, error) if analysis is not None or error is not None else None
    row = {**_row(c, None), "verdict": verdict}  # null without a dump to read
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "crash-info", **row, "analysis": body})
        return

    lines = []
    if row["truncation"]:  # every view of a truncated dump says so first
        lines.append(truncation_line(row["truncation"]) + "\n")
    for key in (
        "id",
        "source",
        "time_iso",
        "pid",
        "uid",
        "signal_name",
        "executable",
        "path",
        "size",
        "present",
        "truncated",
        "note",
    ):
        if row[key] is not None:
            lines.append(f"{key.replace('_iso', '').replace('_name', ''):>12}: {printable(str(row[key]))}")
    if verdict is not None:
        lines.append(f"{'verdict':>12}: {verdict['class'] or '?'} {verdict['blamed'] or ''}".rstrip())
        if error:
            lines.append(f"{'':>12}  {printable(error)}")
    if body is not None:
        lines.append("\n" + body)
    echo_page("\n".join(lines))


def _verdict_of(path: str) -> dict[str, Any]:
    """The verdict of the kept dump at ``path``."""
    analysis, _, error = _analysis(path)
    return _verdict(analysis, error)


def _analysis(path: str, render: Callable[[Any], Any] | None = None) -> tuple[Any, Any, str | None]:
    """The analysis of a kept dump, ``render`` of it (made while the dump is open), and why there is
    none (one line)."""
    import notmyfault

    try:
        with notmyfault.open(path) as dump:
            if dump.kind not in ("elf-core", "minidump"):
                return None, None, "not a process dump"
            a = dump.analysis()
            return a, render(a) if render is not None else None, None
    except notmyfault.DumpError as e:
        return None, None, str(e)
