"""The live view of a leak: rich on a terminal, one line a second elsewhere, JSON Lines with --json.

It shows what a person watching Task Manager in the seed saw: leaked bytes
against the limit, the achieved rate, and the system counters for the pool
(e.g. Mlocked and Unevictable for nonpaged), each with its change since the
leak began, plus MemAvailable.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from notmyfault.base.units import format_size
from notmyfault.faults.leak import LeakPlan, LeakStatus, counters
from notmyfault.render import SCHEMA_VERSION


class LeakView:
    """Shows a leak as it runs; ``mode`` is 'rich', 'lines' or 'json'."""

    def __init__(self, plan: LeakPlan, mode: str, out: TextIO | None = None) -> None:
        self.plan = plan
        self.mode = mode
        self.out = out or sys.stdout
        self.baseline = counters(plan)
        self._live: Any = None
        self.tick = 0.25 if mode == "rich" else 1.0
        """Seconds between updates: smooth on a terminal, one a second in logs and JSON."""

    def _line(self, st: LeakStatus, now: dict[str, int]) -> str:
        p = self.plan
        pct = 100.0 * st.leaked / p.stop_at if p.stop_at else 0.0
        parts = [
            f"leaked {format_size(st.leaked)} / {format_size(p.stop_at)} ({pct:.0f}%, {st.blocks} blocks)",
            f"at {st.rate / 1e6:.2f} MB/s (asked {p.rate / 1e6:.2f})",
        ]
        for k, v in now.items():
            delta = v - self.baseline.get(k, 0)
            parts.append(
                f"{k} {format_size(v)}" + ("" if k == "MemAvailable" else f" ({delta / 2**20:+.1f} MiB)")
            )
        return "; ".join(parts)

    def _rich(self, st: LeakStatus, now: dict[str, int], title: str) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        p = self.plan
        table = Table.grid(padding=(0, 2))
        pct = 100.0 * st.leaked / p.stop_at if p.stop_at else 0.0
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=p.stop_at, completed=st.leaked, width=50), f"{pct:.0f}%")
        table.add_row("progress", bar)
        table.add_row("leaked", f"{format_size(st.leaked)} of {format_size(p.stop_at)} in {st.blocks} blocks")
        table.add_row("rate", f"{st.rate / 1e6:.2f} MB/s achieved, {p.rate / 1e6:.2f} MB/s asked")
        for k, v in now.items():
            delta = "" if k == "MemAvailable" else f"  ({(v - self.baseline.get(k, 0)) / 2**20:+.1f} MiB)"
            table.add_row(k, f"{format_size(v)}{delta}")
        return Group(title, table)

    def _title(self, state: str) -> str:
        p = self.plan
        persist = ", persistent" if p.persist else ""
        return f"Leak {p.pool.value}{persist}, tag '{p.tag}', {format_size(p.block)} blocks: {state}"

    def start(self, pid: int) -> None:
        """The leak begins in process ``pid``."""
        if self.mode == "json":
            self.event("start", pid=pid, counters=self.baseline)
        elif self.mode == "rich":
            from rich.live import Live

            st = LeakStatus()
            self._live = Live(self._rich(st, self.baseline, self._title("leaking")), refresh_per_second=4)
            self._live.start()
        else:
            print(f"notmyfault: {self._title('leaking')} in pid {pid}", file=self.out, flush=True)

    def update(self, st: LeakStatus, state: str = "leaking") -> None:
        """Show the leak's progress."""
        now = counters(self.plan)
        if self.mode == "json":
            self.event("progress", state=state, **status_fields(st), counters=now)
        elif self.mode == "rich" and self._live is not None:
            self._live.update(self._rich(st, now, self._title(state)))
        else:
            print(f"notmyfault: {self._line(st, now)}", file=self.out, flush=True)

    def close(self) -> None:
        """Stop the live display (before the process crashes, so the terminal is left sane)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def event(self, name: str, **fields: Any) -> None:
        """Report an event: JSON Lines in json mode, a sentence otherwise."""
        if self.mode == "json":
            record = {"schema_version": SCHEMA_VERSION, "kind": "leak", "event": name, **fields}
            print(json.dumps(record), file=self.out, flush=True)
            return
        text = fields.get("message")
        if self._live is not None and name in ("error", "freed", "kept"):
            self._live.stop()  # the end: the last picture stays on screen
            self._live = None
        if text and self._live is not None:
            self._live.console.print(f"notmyfault: {text}")  # above the live view, which goes on
        elif text:
            print(f"notmyfault: {text}", file=self.out, flush=True)


def status_fields(st: LeakStatus) -> dict[str, Any]:
    """The leak status as JSON fields."""
    return {
        "leaked": st.leaked,
        "blocks": st.blocks,
        "elapsed_s": round(st.elapsed_s, 6),
        "rate": round(st.rate, 3),
        "reached_limit": st.reached_limit,
        "stopped": st.stopped,
        "error": st.error,
    }
