"""What the command modules share: errors, exit codes, JSON output, signals."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

EXIT_NO_DUMP = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

DUMP_DIR_HELP = (
    "Where dumps go when core_pattern is relative (default: $NOTMYFAULT_DUMP_DIR or "
    "~/.local/state/notmyfault/dumps)."
)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print a one-line error and exit with ``code``."""
    click.echo(f"notmyfault: error: {message}", err=True)
    sys.exit(code)


def emit_json(obj: Any, lines: bool = False) -> None:
    """Print ``obj`` as JSON on stdout: indented, or on one line (JSON Lines) with ``lines``."""
    click.echo(json.dumps(obj) if lines else json.dumps(obj, indent=2))


def raise_interrupt(signum: int, frame: object) -> None:
    """A signal handler that turns SIGTERM into KeyboardInterrupt, as Ctrl-C is."""
    raise KeyboardInterrupt


def parse_size_option(name: str, text: str) -> int:
    """Parse a size option, or fail with a one-line error naming the option."""
    from notmyfault.units import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        fail(f"{name}: {e}")
