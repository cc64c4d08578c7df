"""``notmyfault list`` and ``notmyfault info``: the crashes this machine kept, as ``coredumpctl list`` /
``coredumpctl info`` show them, from systemd-coredump, the journal, apport and our own dump directory."""

from __future__ import annotations

import datetime
from typing import Any

import click

from notmyfault.cli.common import echo_safe, emit_json, fail
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
since_option = click.option("--since", metavar="DATE", help="Only crashes from this time on (ISO 8601).")


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--since {text!r}: give an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T12:00")
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


def _kept(store: str, crash_dir: str, dump_dir: str | None, journal: Any, since: str | None) -> list[Any]:
    from notmyfault.capture import default_dump_dir
    from notmyfault.capture import dump_inventory as inventory

    lines = journal.read().splitlines() if journal is not None else None
    return inventory(store, crash_dir, dump_dir or default_dump_dir(), lines, _since(since))


def _verdict(path: str) -> dict[str, Any]:
    """The one-line verdict of a kept dump: its class and what the blame rule picked."""
    import notmyfault

    try:
        with notmyfault.open(path) as dump:
            if dump.kind not in ("elf-core", "minidump"):
                return {"class": None, "blamed": None, "error": "not a process dump"}
            a = dump.analysis()
    except notmyfault.DumpError as e:
        return {"class": None, "blamed": None, "error": str(e)}
    return {"class": a.crash_class, "blamed": a.blamed.location() if a.blamed else None, "error": None}


def _row(i: int, c: Any, verdict: dict[str, Any] | None) -> dict[str, Any]:
    row = {
        "id": i,
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
    present = "present" if row["present"] else "missing"
    line = (
        f"{row['id']:>3}  {when:19}  {row['pid'] or '-':>7}  {row['signal_name'] or '-':8}  {present:8}"
        f"  {size:>10}  {row['source']:16}  {printable(row['executable'] or '?')}"
    )
    verdict = row.get("verdict")
    if verdict:
        line += f"\n     {verdict['class'] or '?'} {verdict['blamed'] or ''}".rstrip()
        if verdict["error"]:
            line += f"  ({printable(verdict['error'])})"
    return line


@click.command("list")
@store_option
@crash_dir_option
@dump_dir_option
@journal_option
@since_option
@click.option("--verdict", is_flag=True, help="Also analyse each present dump: its class and blamed frame.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (docs/json-schema.md).")
def list_crashes(
    store: str,
    crash_dir: str,
    dump_dir: str | None,
    journal: Any,
    since: str | None,
    verdict: bool,
    as_json: bool,
) -> None:
    """The crashes this machine kept, newest first: systemd-coredump's store and journal entries, apport's
    reports, notmyfault's dumps (like coredumpctl list).  'notmyfault info ID' shows one."""
    kept = _kept(store, crash_dir, dump_dir, journal, since)
    rows = [
        _row(i, c, _verdict(c.path) if verdict and c.present and c.path else None)
        for i, c in enumerate(kept, 1)
    ]
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "crash-list", "crashes": rows})
        return
    if not rows:
        echo_safe(
            "No kept crashes found (systemd-coredump, the journal, apport, notmyfault's dump directory)."
        )
        return
    echo_safe(
        f"{'ID':>3}  {'TIME':19}  {'PID':>7}  {'SIG':8}  {'COREFILE':8}  {'SIZE':>10}  {'SOURCE':16}  EXE"
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
    """One kept crash (ID from 'notmyfault list', a pid, or the dump's path) with its analysis."""
    kept = _kept(store, crash_dir, dump_dir, journal, None)
    numbered = list(enumerate(kept, 1))
    # an ID (up to three digits) or a path first; else a pid: the newest crash with it
    found = next(
        ((i, c) for i, c in numbered if (len(ident) < 4 and ident == str(i)) or ident == c.path), None
    )
    if found is None and ident.isdigit():
        found = next(((i, c) for i, c in numbered if c.pid == int(ident)), None)
    if found is None:
        fail(f"no kept crash {ident!r}: give an ID from 'notmyfault list', a pid or a dump's path")
    i, c = found
    row = _row(i, c, _verdict(c.path) if c.present and c.path else None)
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "crash-info", **row})
        return
    from notmyfault.render.safe import printable

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
        "note",
    ):
        if row[key] is not None:
            echo_safe(f"{key.replace('_iso', '').replace('_name', ''):>12}: {printable(str(row[key]))}")
    if row.get("verdict"):
        v = row["verdict"]
        echo_safe(f"{'verdict':>12}: {v['class'] or '?'} {v['blamed'] or ''}".rstrip())
        if v["error"]:
            echo_safe(f"{'':>12}  {printable(v['error'])}")
        elif c.path:
            echo_safe(f"\n'notmyfault analyze {printable(c.path)}' shows the whole page.")
