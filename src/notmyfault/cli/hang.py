"""``notmyfault hang``: NotMyfault's Hang tab."""

from __future__ import annotations

import os
import sys

import click

from notmyfault.cli.common import (
    DUMP_DIR_HELP,
    DURATION,
    EXIT_INTERRUPTED,
    EXIT_NO_DUMP,
    dump_settings,
    echo_safe,
    emit_json,
    fail,
    report_crash,
    run_watched,
)
from notmyfault.render import SCHEMA_VERSION


@click.command()
@click.argument("hang_type", metavar="TYPE", required=False)
@click.option(
    "--threads", type=click.IntRange(1, 1024), help="spin: how many threads spin (default: one per CPU)."
)
@click.option(
    "--realtime", is_flag=True, help="spin: SCHED_FIFO threads (needs CAP_SYS_NICE; leaves one CPU free)."
)
@click.option(
    "--crash-after",
    type=DURATION,
    metavar="SECONDS",
    help="A watchdog thread aborts the process after SECONDS, so the dump shows the hang.",
)
@click.option("--list", "list_", is_flag=True, help="List the hang types.")
@click.option("--dump-dir", type=click.Path(file_okay=False), help=DUMP_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Events and the final report as JSON Lines.")
@click.option("--child", is_flag=True, hidden=True)
def hang(
    hang_type: str | None,
    threads: int | None,
    realtime: bool,
    crash_after: float | None,
    list_: bool,
    dump_dir: str | None,
    as_json: bool,
    child: bool,
) -> None:
    """Hang a child process inside myfault: deadlock, spin, or unkillable (d-state).

    Prints the hung PID and how to take a dump of it. Ctrl-C or SIGTERM
    releases the hang (the child and all it started are killed; exit 130). If the child
    dies instead (--crash-after, or a signal you send it), the dump it left is
    reported as for 'notmyfault crash'.
    """
    from notmyfault.faults import HANGS, lookup_hang

    if list_:
        if as_json:
            emit_json(
                {"schema_version": SCHEMA_VERSION, "kind": "hangs", "hang_types": [h.__dict__ for h in HANGS]}
            )
        else:
            for h in HANGS:
                echo_safe(f"{h.name:<11} {h.summary} (state {h.state}; {', '.join(h.functions)})")
                echo_safe(f"{'':<11} analog: {h.analog}")
        return
    if hang_type is None:
        fail("give a hang type: deadlock, spin or unkillable ('notmyfault hang --list')")
    try:
        entry = lookup_hang(hang_type)
    except LookupError as e:
        fail(str(e))
    if threads is not None and entry.name != "spin":
        fail("--threads applies to the spin hang only")
    if realtime and entry.name != "spin":
        fail("--realtime applies to the spin hang only")
    cpus = os.cpu_count() or 1
    n = threads or cpus
    if realtime:
        n = min(n, max(1, cpus - 1))
    if child:
        _hang_here(entry.name, n, realtime, crash_after)
        return
    _hang_child(entry.name, n, realtime, crash_after, dump_dir, as_json)


def _hang_here(name: str, threads: int, realtime: bool, crash_after: float | None) -> None:
    from notmyfault.capture import CHILD_COMM, prepare_current_process
    from notmyfault.faults import commit_hang, lookup_hang

    prepare_current_process(name=CHILD_COMM)
    try:
        commit_hang(lookup_hang(name), threads, realtime, crash_after)
    except PermissionError:
        fail("--realtime needs CAP_SYS_NICE (or an RLIMIT_RTPRIO above 0) to make SCHED_FIFO threads")
    except OSError as e:
        fail(f"the hang could not start: {e}")
    print("myfault: the hang was released", file=sys.stderr, flush=True)


def _hang_child(
    name: str, threads: int, realtime: bool, crash_after: float | None, dump_dir: str | None, as_json: bool
) -> None:
    from notmyfault.capture import CrashInterrupted
    from notmyfault.faults import lookup_hang

    entry = lookup_hang(name)
    settings = dump_settings(dump_dir)
    argv = [sys.executable, "-m", "notmyfault", "hang", name, "--child"]
    if name == "spin":
        argv += ["--threads", str(threads)] + (["--realtime"] if realtime else [])
    if crash_after is not None:
        argv += ["--crash-after", repr(crash_after)]
    started: list[int] = []

    def announce(pid: int) -> None:
        started.append(pid)
        hint = entry.dump_hint.replace("PID", str(pid))
        if as_json:
            emit_json(
                {
                    "schema_version": SCHEMA_VERSION,
                    "kind": "hang",
                    "event": "started",
                    "hang_type": name,
                    "pid": pid,
                    "threads": threads if name == "spin" else (2 if name == "deadlock" else 1),
                    "state": entry.state,
                    "functions": list(entry.functions),
                    "crash_after": crash_after,
                    "dump_hint": hint,
                },
                lines=True,
            )
        else:
            echo_safe(f"notmyfault: pid {pid} hangs ({name}: {entry.summary})")
            echo_safe(f"notmyfault: take a dump: {hint}")
            after = f"; the watchdog crashes it in {crash_after:g} s" if crash_after else ""
            echo_safe(f"notmyfault: Ctrl-C releases it{after}")
        sys.stdout.flush()

    try:
        run = run_watched(
            argv,
            settings,
            f"hang-{name}",
            None,
            on_interrupt="kill",
            new_session=True,
            echo_stderr=not as_json,
            on_start=announce,
        )
    except CrashInterrupted:
        pid = started[0] if started else None
        if as_json:
            emit_json(
                {"schema_version": SCHEMA_VERSION, "kind": "hang", "event": "released", "pid": pid},
                lines=True,
            )
        else:
            echo_safe(f"notmyfault: released: pid {pid} and everything it started were killed")
        sys.exit(EXIT_INTERRUPTED)  # as every command a stop ends (leak, dump, crash)
    if run.child.signal is None:
        code = run.child.exit_code
        if as_json:
            event = {
                "schema_version": SCHEMA_VERSION,
                "kind": "hang",
                "event": "ended",
                "pid": run.child.pid,
                "exit_code": code,
            }
            emit_json(event, lines=True)
        else:
            echo_safe(f"notmyfault: the hang ended: pid {run.child.pid} exited with code {code}")
        sys.exit(0 if code == 0 else EXIT_NO_DUMP)
    report_crash(run, as_json, lines=True)
