"""``notmyfault ui``: the window."""

from __future__ import annotations

import signal
import sys

import click

from notmyfault.cli.common import DUMP_DIR_HELP, dump_settings, fail
from notmyfault.cli.stops import raise_keyboard_interrupt


@click.command()
@click.argument("dump", required=False)
@click.option("--dump-dir", type=click.Path(file_okay=False), help=DUMP_DIR_HELP)
def ui(dump: str | None, dump_dir: str | None) -> None:
    """NotMyfault's window in the terminal: Crash, Hang, Leak, Dump Configuration and Dump Analysis tabs.

    Every fault runs in a child process, so the window survives it and shows
    the analysis of the dump the child left. Keys: 1-5 tabs, b Do Bug, s start
    a hang, l leak, x stop, r refresh, Esc leaves a field, q quits (and kills
    every child the window started).  With DUMP, the window opens on that dump's analysis (the Dump
    Analysis tab), as windbg -z FILE does.
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        fail("the window needs a terminal; for scripts use the commands (crash, hang, leak, analyze)")
    if dump is not None:
        import notmyfault

        try:  # any dump the analyzer reads; a bad file is one line here, not a window that shows an error
            notmyfault.open(dump).close()
        except notmyfault.DumpError as e:
            fail(str(e))
    dump_settings(dump_dir)
    from notmyfault.ui import run_window

    if signal.getsignal(signal.SIGINT) is raise_keyboard_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # asyncio's Runner takes over only this one
    run_window(dump_dir, dump)
