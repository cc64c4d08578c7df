"""What the command modules share: errors, exit codes, JSON output, signals."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, NoReturn

import click

from notmyfault.cli.stops import STOP_SIGNALS, raise_interrupt

MAX_SIZE = 1 << 60
"""The largest size an option takes (1 EiB): beyond any machine, below what overflows an off_t."""

EXIT_NO_DUMP = 1
EXIT_NO_MATCH = 1
"""``search`` found nothing: grep's convention, so that a script can test for a hit."""
EXIT_OUTPUT = 1
"""The output could not be written: stdout full, broken or closed."""
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

DUMP_DIR_HELP = (
    "Where dumps go when core_pattern is relative (default: $NOTMYFAULT_DUMP_DIR or "
    "~/.local/state/notmyfault/dumps)."
)


_QUICK_EXIT = [False]


def allow_quick_exit() -> None:
    """Say that this command only read a dump and printed: it leaves no thread, child or open file
    behind, so main may end the process as soon as the output is out (:func:`quick_exit`)."""
    _QUICK_EXIT[0] = True


def quick_exit(code: int) -> None:
    """Where :func:`allow_quick_exit` was said, end the process now with ``code``: the atexit
    handlers run (unpacked dumps are removed) and the output is flushed, then ``os._exit`` skips
    the interpreter's teardown (collecting and freeing, module by module, every object an analysis
    made: 30 to 45 ms of a small core's 0.3 s). Otherwise return."""
    if not _QUICK_EXIT[0]:
        return
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            return  # main's own path says what failed
    os._exit(code)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print a one-line error and exit with ``code``. The message is escaped for the terminal: it
    often holds a path from the command line or a name from a dump, either of which can hold escapes."""
    from notmyfault.render.safe import printable

    click.echo(f"notmyfault: error: {printable(message)}", err=True)
    sys.exit(code)


_OUTPUT_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF, errno.EPIPE))


def output_error(e: BaseException) -> bool:
    """True if ``e`` is a failed write of a stream (stdout): an OSError of a full, broken or closed
    output with no file name (errors of files we open name the file, and ours are WriteFailed)."""
    return isinstance(e, OSError) and e.filename is None and e.errno in _OUTPUT_ERRNOS


def echo_safe(text: str) -> None:
    """Print ``text`` on stdout, escaped for the terminal (the one way the commands print a page: paths
    from the command line, names from dumps and messages can all hold escapes)."""
    from notmyfault.render.safe import terminal_safe

    click.echo(terminal_safe(text))


PAGER_ENV = "NOTMYFAULT_PAGER"
"""The pager for long pages, before ``PAGER`` (empty or ``cat``: none), as ``GIT_PAGER`` is git's."""
_pager_off = False


def no_pager() -> None:
    """Print every page straight to stdout from here on (``notmyfault --no-pager``)."""
    global _pager_off
    _pager_off = True


def _pager() -> list[str] | None:
    """The pager's command line where a page should go through one: stdout is a terminal, it was
    not turned off, and the command named (``NOTMYFAULT_PAGER``, ``PAGER``, else ``less``) exists."""
    import shlex
    import shutil

    if _pager_off or not sys.stdout.isatty():
        return None
    named = os.environ.get(PAGER_ENV, os.environ.get("PAGER", "less"))
    try:
        argv = shlex.split(named)
    except ValueError:
        return None
    if not argv or argv[0] == "cat" or shutil.which(argv[0]) is None:
        return None
    return argv


def echo_page(text: str) -> None:
    """Print a page as ``echo_safe`` does; one taller than the terminal goes through the pager on a
    terminal (as git and journalctl do: ``less`` with ``LESS=FRX`` unless LESS is set; Ctrl-C, q or
    the pager's end return to the shell)."""
    import shutil
    import subprocess

    from notmyfault.render.safe import terminal_safe

    argv = _pager()
    safe = terminal_safe(text)
    if argv is None or safe.count("\n") + 1 < shutil.get_terminal_size().lines:
        click.echo(safe)
        return
    sys.stdout.flush()
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    pager = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    try:
        assert pager.stdin is not None
        try:
            pager.stdin.write((safe + "\n").encode(errors="replace"))
            pager.stdin.close()
        except BrokenPipeError:  # the reader quit before the end: nothing more to show
            pass
        pager.wait()
    except KeyboardInterrupt:
        pager.terminate()
        pager.wait()
        raise


def note(message: str) -> None:
    """Print a line of news to stderr, escaped for the terminal (it can name a file from a dump)."""
    from notmyfault.render.safe import printable

    click.echo(printable(message), err=True)


def emit_json(obj: Any, lines: bool = False) -> None:
    """Print ``obj`` as JSON on stdout: indented, or on one line (JSON Lines) with ``lines``.  Strings
    are kept exact, but for the bytes of a dump's strings that were not UTF-8, which become \\xNN
    (a lone surrogate, as ``\\udcff``, is refused by strict JSON readers)."""
    from notmyfault.base import storable_tree

    obj = storable_tree(obj)
    click.echo(json.dumps(obj) if lines else json.dumps(obj, indent=2))


def parse_size_option(name: str, text: str) -> int:
    """Parse a size option, or fail with a one-line error naming the option."""
    from notmyfault.base import parse_size

    try:
        size = parse_size(text)
    except ValueError as e:
        fail(f"{name}: {e}")
    if size > MAX_SIZE:
        fail(f"{name} {text}: give at most 1EiB")
    return size


def dump_settings(dump_dir: str | None) -> Any:
    """Probe the dump settings for ``dump_dir``; fail at once if that directory is not writable."""
    from notmyfault.capture import probe

    settings = probe(dump_dir)
    if not settings.dump_dir_writable:
        fail(
            f"cannot write the dump directory {settings.dump_dir}: give --dump-dir a directory you can write"
        )
    return settings


@contextmanager
def interruptible() -> Iterator[None]:
    """The CLI's one pattern for stopping: inside, SIGTERM and SIGHUP raise KeyboardInterrupt as
    Ctrl-C does, so every command stops by one path (its cleanup in finally blocks, exit 130); the
    previous handlers come back on the way out. (The leak, which must keep working in its handler's
    stead, sets a SignalFlag instead.)"""
    previous = {s: signal.signal(s, raise_interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_watched(argv: list[str], settings: Any, label: str, timeout: float | None, **options: Any) -> Any:
    """Run a child that will crash (crash_in_child), with SIGTERM and SIGHUP treated like Ctrl-C.

    CrashInterrupted passes through to the caller, which knows what an
    interruption means for its command.
    """
    from notmyfault.capture import crash_in_child

    with interruptible():
        return crash_in_child(argv, settings, label, timeout, **options)


def report_crash(run: Any, as_json: bool, lines: bool = False) -> None:
    """Print a crash report (text or JSON); exit EXIT_NO_DUMP when no whole dump exists."""
    from notmyfault.render.capture import crash_json, crash_text

    if as_json:
        emit_json(crash_json(run), lines=lines)
    else:
        echo_safe(crash_text(run))
    if run.dump is None or run.dump.problem:
        sys.exit(EXIT_NO_DUMP)


class Duration(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """A duration: a number of seconds, or a number with s, m or h (2m = 120 seconds), from 0.1 s to
    30 days (a deadline further off overflows the clocks it is added to)."""

    name = "duration"
    UNITS: ClassVar[dict[str, float]] = {"s": 1.0, "m": 60.0, "h": 3600.0}
    MAX = 30 * 86400.0

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Seconds, as a float of at least 0.1."""
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            factor = self.UNITS.get(text[-1:], None) if text else None
            try:
                seconds = float(text[:-1] if factor else text) * (factor or 1.0)
            except ValueError:
                self.fail(f"{value!r} is not a duration: give seconds, or 90s, 2m, 1h", param, ctx)
        if not 0.1 <= seconds <= self.MAX:  # nan fails both
            self.fail(
                f"{value!r} is out of range: give at least 0.1 s and at most 30 days (720h)", param, ctx
            )
        return seconds


class FiniteRange(click.FloatRange):
    """click's FloatRange, refusing nan and the infinities (nan passes every comparison FloatRange
    makes: ``--interval nan`` was taken)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The number, in range and finite."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a number in the range {self._describe_range()}.", param, ctx)
        return number


def regular_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option's callback refusing a path that is no regular file: a FIFO would make the reader
    wait for ever, a directory or a device would fail later with a traceback."""
    if value is not None and not os.path.isfile(value):
        what = "does not exist" if not os.path.lexists(value) else "is not a regular file"
        raise click.BadParameter(f"{value} {what}: give a file")
    return value


DURATION = Duration()


class SignalFlag:
    """What a signal handler may set: a plain flag, no lock.

    threading.Event.set() takes the event's lock; a handler that runs while the main thread holds
    it (inside Event.wait) waits on itself for ever: a leak given SIGTERM slept in a futex wait
    until SIGKILL. ``wait`` sleeps in short steps instead (a signal cuts each one short, PEP 475
    resumes it), so a set flag is seen within ``STEP`` seconds.
    """

    STEP = 0.02

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Raise the flag (safe in a signal handler)."""
        self._set = True

    def clear(self) -> None:
        """Lower the flag."""
        self._set = False

    def is_set(self) -> bool:
        """True once raised."""
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep until the flag is raised or ``timeout`` seconds pass; return the flag."""
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._set:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, self.STEP))
        return self._set
