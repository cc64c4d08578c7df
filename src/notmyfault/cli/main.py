"""The ``notmyfault`` command line: a thin front end over faults, capture and render.

Exit codes: 0 the fault left a dump (or the command succeeded); 1 the fault
happened but no dump exists (the reason is printed), or ``search`` found nothing
(as grep); 2 bad input; 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import glob
import importlib
import os
import sys

import click

from notmyfault import __version__
from notmyfault.cli.common import (
    DUMP_DIR_HELP,
    DURATION,
    EXIT_INTERRUPTED,
    EXIT_NO_DUMP,
    EXIT_OUTPUT,
    dump_settings,
    echo_safe,
    emit_json,
    fail,
    no_pager,
    note,
    output_error,
    quick_exit,
    report_crash,
    run_watched,
)
from notmyfault.cli.stops import install as install_stops
from notmyfault.render import SCHEMA_VERSION


def _catalog_epilog() -> str:
    from notmyfault.faults import CATALOG

    lines = [f"  {c.number if c.number else '-':>2}  {c.name:<20} {c.summary}" for c in CATALOG]
    return (
        "\b\nCrash types:\n"
        + "\n".join(lines)
        + "\n\nSee 'notmyfault crash --list -v' for what each dump shows."
    )


LAZY_COMMANDS = {
    "analyze": "notmyfault.cli.analyze:analyze",
    "cleanup": "notmyfault.cli.leak:cleanup",
    "demo": "notmyfault.cli.demo:demo",
    "disasm": "notmyfault.cli.analyze:disasm",
    "dump": "notmyfault.cli.dump:dump",
    "hang": "notmyfault.cli.hang:hang",
    "info": "notmyfault.cli.inventory:info",
    "kernel": "notmyfault.cli.kernel:kernel",
    "lab": "notmyfault.cli.lab:lab",
    "leak": "notmyfault.cli.leak:leak",
    "list": "notmyfault.cli.inventory:list_crashes",
    "collect": "notmyfault.cli.pipeline:collect",
    "serve": "notmyfault.cli.pipeline:serve",
    "submit": "notmyfault.cli.pipeline:submit",
    "modules": "notmyfault.cli.analyze:modules",
    "poolused": "notmyfault.cli.analyze:poolused",
    "regs": "notmyfault.cli.analyze:regs",
    "search": "notmyfault.cli.analyze:search",
    "shell": "notmyfault.cli.shell:shell",
    "stack": "notmyfault.cli.analyze:stack",
    "triage": "notmyfault.cli.triage:triage",
    "ui": "notmyfault.cli.ui:ui",
    "vm": "notmyfault.cli.analyze:vm",
}
"""The subcommands defined in other modules, and where: each module is imported when its command
runs (or for --help's list), so that one command does not pay for every other's imports."""


class LazyGroup(click.Group):
    """A click group whose commands in ``LAZY_COMMANDS`` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, the lazy ones included, sorted."""
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named ``cmd_name``, its module imported now if it is a lazy one."""
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, _, name = LAZY_COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


def _no_pager(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        no_pager()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="notmyfault")
@click.option(
    "--no-pager",
    is_flag=True,
    expose_value=False,
    callback=_no_pager,
    help="Print long pages straight to the terminal (by default one taller than the terminal goes "
    "through $NOTMYFAULT_PAGER, $PAGER or less).",
)
def cli() -> None:
    """notmyfault: a fault lab for Linux. Crash, hang and leak on purpose inside the native module
    myfault (crash, hang, leak and cleanup; the machine's kernel in host mode or a QEMU guest: kernel, lab),
    capture the dump and say where it is (dumpconfig, dump PID, list, info), then tell the story
    from the dump alone as WinDbg did (analyze, stack, regs, vm, poolused, search, disasm, modules,
    shell, ui), for one dump or a fleet of them (triage), as crashes arrive (collect from the
    kernel, submit and serve: a collector for uploads and a live web UI). 'notmyfault demo' runs
    the whole story: a tagged leak, a crash in myfault, the dump's analysis.

    \b
    Exit codes: 0 done; 1 the fault left no whole dump, search found nothing,
    or an output could not be written; 2 bad input or a missing prerequisite;
    130 interrupted (Ctrl-C, SIGTERM, SIGHUP)."""


@cli.command(epilog=_catalog_epilog())
@click.argument("crash_type", required=False, metavar="TYPE")
@click.option("--list", "list_", is_flag=True, help="List the crash types and what their dumps show.")
@click.option(
    "-v", "--verbose", is_flag=True, help="With --list: also the NotMyfault analog and the exact fault."
)
@click.option(
    "--signal", "signal_", metavar="SIG", help="For TYPE 'signal': the signal to die by (number or name)."
)
@click.option(
    "--dump-dir",
    type=click.Path(file_okay=False),
    help=DUMP_DIR_HELP,
)
@click.option(
    "--in-process", is_flag=True, help="Crash notmyfault itself, as NotMyfault does, instead of a child."
)
@click.option(
    "--ballast",
    metavar="SIZE",
    help="Touch SIZE of anonymous memory first (e.g. 200MB), so the dump is that big.",
)
@click.option(
    "--timeout",
    type=DURATION,
    default="120",
    show_default=True,
    help="Time to wait for the child to die: seconds, or with a unit (90s, 2m).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report (or the list) as JSON.")
@click.option(
    "--kernel",
    "in_kernel",
    is_flag=True,
    help="Crash this machine's kernel in myfault.ko (see 'notmyfault kernel').",
)
@click.option("--yes-crash-this-machine", "yes", is_flag=True, help="With --kernel: really do it.")
@click.option("--child", is_flag=True, hidden=True)
def crash(
    crash_type: str | None,
    list_: bool,
    verbose: bool,
    signal_: str | None,
    dump_dir: str | None,
    in_process: bool,
    ballast: str | None,
    timeout: float,
    as_json: bool,
    in_kernel: bool,
    yes: bool,
    child: bool,
) -> None:
    """Crash in a precise, documented way inside myfault, and report where the dump went.

    TYPE is a NotMyfault number (1-8) or a name. By default the crash happens
    in a child process that notmyfault watches; the report gives the signal,
    the exit status, and the dump's path and size, or exactly why there is no
    dump.
    """
    from notmyfault.faults import UnknownCrashType, lookup

    if in_kernel:
        from notmyfault.cli.kernel import crash_host
        from notmyfault.faults import KERNEL_CRASHES as CRASHES

        if crash_type not in CRASHES:
            fail(f"kernel crash types: {', '.join(CRASHES)} (got {crash_type!r})")
        crash_host(crash_type, 0xE2, yes)
        return
    if list_:
        from notmyfault.render.catalog import catalog_json, catalog_text

        if as_json:
            emit_json(catalog_json())
        else:
            echo_safe(catalog_text(verbose))
        return
    if crash_type is None:
        if signal_ is None:
            fail(
                "give a crash type (e.g. 'notmyfault crash 1' or 'notmyfault crash high-irql'); 'notmyfault crash --list' lists them"
            )
        crash_type = "signal"
    try:
        entry = lookup(crash_type)
    except UnknownCrashType as e:
        fail(str(e))
    signo = _parse_signal(signal_, entry.takes_signal, entry.name)
    ballast_bytes = _parse_ballast(ballast)
    if child or in_process:
        _crash_here(entry.name, signo, ballast_bytes, dump_dir, child, as_json)
        return
    _crash_child(entry.name, signo, ballast, dump_dir, timeout, as_json)


def _parse_signal(text: str | None, takes_signal: bool, name: str) -> int | None:
    from notmyfault.base import parse_signal
    from notmyfault.faults import check_signal

    if text is None:
        return None
    if not takes_signal:
        fail(f"--signal applies only to the crash type 'signal', not '{name}'")
    try:
        signo = parse_signal(text)
        check_signal(signo)
    except ValueError as e:
        fail(str(e))
    return signo


def _parse_ballast(text: str | None) -> int:
    from notmyfault.base import parse_size
    from notmyfault.faults import check_floor

    if text is None:
        return 0
    try:
        n = parse_size(text)
        check_floor(n)
    except ValueError as e:
        fail(f"--ballast: {e}")
    return n


def _crash_here(
    name: str, signo: int | None, ballast: int, dump_dir: str | None, child: bool, as_json: bool
) -> None:
    """Crash this very process (``--in-process``, or as the watched child)."""
    from notmyfault.capture import (
        CHILD_COMM,
        assess,
        crash_facts,
        expected_dump_glob,
        prepare_current_process,
        probe,
    )
    from notmyfault.faults import FaultSurvived, commit, lookup

    entry = lookup(name)
    if child:
        prepare_current_process(name=CHILD_COMM)
    else:
        settings = probe(dump_dir)
        verdict = assess(settings)
        workdir = settings.dump_dir if settings.core_pattern.relative else None
        prepared = prepare_current_process(workdir=workdir, name=CHILD_COMM)
        expected_signal = signo if entry.takes_signal else int(entry.outcome.signal)
        expected = expected_dump_glob(settings, crash_facts(os.getpid(), expected_signal), prepared.cwd)
        replaces = sorted(p for p in glob.glob(expected) if os.path.isfile(p)) if expected else []
        message = {
            "schema_version": SCHEMA_VERSION,
            "kind": "crash-in-process",
            "crash_type": name,
            "pid": os.getpid(),
            "cwd": prepared.cwd,
            "expected_dump": expected,
            "replaces": replaces,
            "verdict": verdict.verdict.value,
            "where": verdict.where,
            "summary": verdict.summary,
        }
        if as_json:
            emit_json(message)
        else:
            echo_safe(f"notmyfault: crashing this process (pid {os.getpid()}) with {name} now")
            echo_safe(f"notmyfault: {verdict.summary}")
            if expected:
                echo_safe(f"notmyfault: the kernel will write {expected}")
            for old in replaces:
                echo_safe(f"notmyfault: warning: this replaces the dump already at {old}")
            for prob in verdict.problems:
                echo_safe(f"notmyfault: problem: {prob}")
        sys.stdout.flush()
    hold = bytearray(b"\xa5") * ballast if ballast else None
    try:
        commit(entry, signo)
    except FaultSurvived as e:
        del hold
        fail(str(e), EXIT_NO_DUMP)


def _crash_child(
    name: str, signo: int | None, ballast: str | None, dump_dir: str | None, timeout: float, as_json: bool
) -> None:
    """Crash a child process, watch it, and report where its dump went."""
    from notmyfault.capture import CrashInterrupted, assess

    settings = dump_settings(dump_dir)
    if not as_json:
        for prob in assess(settings).problems:
            note(f"notmyfault: warning: {prob}")
    argv = [sys.executable, "-m", "notmyfault", "crash", name, "--child"]
    if signo is not None:
        argv += ["--signal", str(signo)]
    if ballast:
        argv += ["--ballast", ballast]
    label = name if signo is None else f"signal-{signo}"
    try:
        run = run_watched(argv, settings, label, timeout)
    except CrashInterrupted as e:
        fail(str(e), EXIT_INTERRUPTED)
    report_crash(run, as_json)


@cli.command()
@click.option(
    "--dump-dir",
    type=click.Path(file_okay=False),
    help="The dump directory to judge (default: the per-user one).",
)
@click.option(
    "--pattern", metavar="PATTERN", help="Judge this core_pattern instead of the machine's (a 'what if')."
)
@click.option("--json", "as_json", is_flag=True, help="Print the configuration and the verdict as JSON.")
def dumpconfig(dump_dir: str | None, pattern: str | None, as_json: bool) -> None:
    """Say whether a crash would leave a dump, where, and what stops it (NotMyfault's Dump Configuration)."""
    from notmyfault.capture import assess, probe, with_pattern
    from notmyfault.render.capture import dumpconfig_json, dumpconfig_text

    settings = probe(dump_dir)
    if pattern is not None:
        settings = with_pattern(settings, pattern)
    verdict = assess(settings)
    if as_json:
        emit_json(dumpconfig_json(settings, verdict))
    else:
        echo_safe(dumpconfig_text(settings, verdict))


def main() -> None:
    """Entry point of the ``notmyfault`` console script.

    One stop path for every command: SIGTERM and SIGHUP are made to raise KeyboardInterrupt
    (Stopped) from here on, as Ctrl-C does, and an interruption that no command handled ends with
    one line and exit 130 (click's own handling would print "Aborted!" and exit 1)."""
    install_stops()  # already set by the entry point (cli.entry); again for python -m and callers
    if not _stdout_open():
        note("notmyfault: error: stdout is closed: give it a file or a pipe (>/dev/null)")
        sys.exit(EXIT_OUTPUT)
    try:
        code = cli.main(prog_name="notmyfault", standalone_mode=False)
        _output_failed(None)  # a full disk or a broken device answers at the flush: here, not at exit
        quick_exit(code if isinstance(code, int) else 0)
    except click.ClickException as e:
        from notmyfault.render.safe import printable

        e.message = printable(e.message)  # type: ignore[misc]  # it can quote a path or a value
        e.show()
        sys.exit(e.exit_code)
    except SystemExit as e:  # a command's own exit code: what it printed must still reach its reader
        _output_failed(None)
        if isinstance(e.code, int):
            quick_exit(e.code)
        raise
    except OSError as e:
        if not output_error(e):
            raise
        _output_failed(e)
    except (KeyboardInterrupt, Exception) as e:
        # click.Abort is click's own; an interruption Python wrapped also counts: a Ctrl-C during
        # an import, in a class body's __set_name__, comes out as RuntimeError("Error calling ...")
        if not (isinstance(e, click.Abort) or _caused_by_interrupt(e)):
            raise
        note("notmyfault: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        _forget_interrupted_string_exec()
    sys.exit(code if isinstance(code, int) else 0)


def _output_failed(e: OSError | None) -> None:
    """Exit 1 with one line if writing stdout failed (``e``) or flushing it now fails; EPIPE (a
    reader that stopped reading, ``| head``) quietly, as click does. Nothing more is written to it:
    what is buffered is dropped, not flushed again at exit (that printed "Exception ignored")."""
    if e is None:
        try:
            sys.stdout.flush()
            return
        except OSError as flushed:
            if not output_error(flushed):
                raise
            e = flushed
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the interpreter's own flush at exit
    if not isinstance(e, BrokenPipeError):
        note(f"notmyfault: error: cannot write the output: {e.strerror}")
    sys.exit(EXIT_OUTPUT)


def _stdout_open() -> bool:
    """False if file descriptor 1 is closed (``>&-``): Python then sets sys.stdout to None, and every
    line printed would vanish while the command says it succeeded."""
    if sys.stdout is None:
        return False
    try:
        os.fstat(1)
    except OSError:
        return False
    return True


def _caused_by_interrupt(e: BaseException | None) -> bool:
    """True if ``e`` is, or was raised while handling or because of, a KeyboardInterrupt."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _forget_interrupted_string_exec() -> None:
    """CPython (3.11 to 3.13) marks a KeyboardInterrupt that ends a *string* exec (dataclasses builds
    its methods that way, so a Ctrl-C during an import can) as unhandled even when it is caught,
    and under ``python -m`` the interpreter then kills itself with SIGINT at exit instead of
    exiting with our code (seen: 4 of 12 stops during an analysis died by SIGINT, not 130).  Every
    string exec clears that mark as it starts: one that does nothing clears it."""
    exec("pass", {})
