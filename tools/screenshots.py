"""Draw the README's pictures of the window from a real session: ``./dev screenshots``.

The window runs headless at 120x36: a nonpaged leak tagged Leak (paged where
this user may not lock that much), a picture of the Leak tab with its chart,
then Do Bug, and a picture of the Dump Analysis tab showing the real dump.
The pictures are SVG files in docs/img/.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, RadioButton

from notmyfault.faults.leak import memlock_allows
from notmyfault.ui.app import NotMyfaultApp

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
SIZE = (120, 36)


async def _until(pilot: Pilot[None], cond: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: the window did not get there in time")
        await pilot.pause(0.1)


def main() -> None:
    """Run the session and write docs/img/ui-leak.svg and docs/img/ui-analysis.svg."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="notmyfault-shots-") as dump_dir:
        app = NotMyfaultApp(dump_dir)

        async def session(pilot: Pilot[None]) -> None:
            await pilot.press("3")
            app.query_one("#leak-rate", Input).value = "20MB"
            app.query_one("#leak-stop", Input).value = "100MB"
            pool = "nonpaged" if memlock_allows(100_000_000) else "paged"
            app.query_one(f"#pool-{pool}", RadioButton).value = True
            await pilot.press("l")
            await _until(pilot, lambda: any(e.leaked >= 60_000_000 for e in app.leak_events))
            app.save_screenshot("ui-leak.svg", str(OUT))
            await _until(pilot, lambda: any(e.event == "holding" for e in app.leak_events))
            await pilot.press("b")
            await _until(pilot, lambda: app.report is not None)
            await pilot.pause(0.5)
            app.save_screenshot("ui-analysis.svg", str(OUT))
            await pilot.press("1")
            await pilot.pause(0.3)
            app.save_screenshot("ui-crash.svg", str(OUT))
            await pilot.press("q")

        app.run(headless=True, size=SIZE, auto_pilot=session)
    for name in ("ui-leak.svg", "ui-analysis.svg", "ui-crash.svg"):
        print(f"screenshots: wrote {OUT / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
