"""Render the crash catalog (``notmyfault crash --list``)."""

from __future__ import annotations

from typing import Any

from notmyfault.faults.catalog import CATALOG, CrashType
from notmyfault.render import SCHEMA_VERSION


def _expected(c: CrashType) -> str:
    o = c.outcome
    return f"{o.signal.name}/{o.si_code_for()} {o.crash_class}"


def catalog_text(verbose: bool = False) -> str:
    """One line per crash type: number, name, what it does, what the dump shows."""
    lines = []
    for c in CATALOG:
        num = str(c.number) if c.number is not None else "-"
        lines.append(f"{num:>2}  {c.name:<20} {c.summary}")
        lines.append(f"    {'':<20} dump: {_expected(c)}, blames {c.frame or c.scan_frame}")
        if verbose:
            lines.append(f"    {'':<20} analog: {c.analog}")
            lines.append(f"    {'':<20} fault: {c.fault}")
            for note in c.notes:
                lines.append(f"    {'':<20} note: {note}")
    lines.append("")
    lines.append("Give the number or the name: 'notmyfault crash 1' = 'notmyfault crash high-irql'.")
    lines.append("'notmyfault crash signal --signal N' dies by signal N (the analog of /bugcheck CODE).")
    return "\n".join(lines)


def catalog_json() -> dict[str, Any]:
    """The catalog as the JSON contract's ``catalog`` object."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "catalog",
        "crash_types": [
            {
                "number": c.number,
                "name": c.name,
                "analog": c.analog,
                "summary": c.summary,
                "fault": c.fault,
                "function": c.function,
                "frame": c.frame,
                "scan_frame": c.scan_frame,
                "signal": c.outcome.signal.name,
                "si_code": c.outcome.si_code_for(),
                "address": c.outcome.address.value,
                "access": c.outcome.access.value,
                "crash_class": c.outcome.crash_class,
                "abort_message": c.outcome.abort_message,
                "notes": list(c.notes),
            }
            for c in CATALOG
        ],
    }
