"""``notmyfault dump PID``: a core of a live process written by our own code, at once or on a trigger."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from typing import Any

import click

from notmyfault.base import (
    SafeFile,
    WriteFailed,
    check_destination,
    check_directory,
    format_size,
    parse_signal,
    signal_name,
    write_error,
)
from notmyfault.cli.common import (
    DURATION,
    EXIT_NO_DUMP,
    FiniteRange,
    echo_safe,
    emit_json,
    fail,
    parse_size_option,
)
from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.safe import printable


class _Progress:
    """One status line on stderr, rewritten in place on a terminal, else printed every few seconds."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if self.quiet or now - self.last < (0.25 if self.tty else 2.0):
            return
        self.last = now
        if self.tty:
            sys.stderr.write(f"\r\x1b[2Knotmyfault dump: {text}")
        else:
            sys.stderr.write(f"notmyfault dump: {text}\n")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
        self.shown = False


@click.command()
@click.argument("pid", type=click.IntRange(1))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the core here (one dump only).")
@click.option(
    "--dump-dir",
    type=click.Path(file_okay=False),
    help="Where the cores go (default: $NOTMYFAULT_DUMP_DIR or ~/.local/state/notmyfault/dumps).",
)
@click.option("--kill", is_flag=True, help="Kill the process (SIGKILL) once the last core is written.")
@click.option(
    "--cpu",
    type=FiniteRange(min=0, max=100.0 * (os.cpu_count() or 1), min_open=True),
    help="Wait until the process uses this %CPU (top's: 200 is two CPUs).",
)
@click.option(
    "--mem",
    "mem_text",
    metavar="SIZE",
    help="Wait until the process's resident memory reaches SIZE (1GB, 500MiB).",
)
@click.option("--for", "hold", type=DURATION, help="With --cpu/--mem: the level must hold this long (5s).")
@click.option(
    "--signal",
    "signals",
    multiple=True,
    metavar="SIG",
    help="Dump when this signal is about to be delivered (SEGV, ABRT, 11); repeatable.",
)
@click.option("--on-exit", is_flag=True, help="Dump when the process exits, before its memory goes.")
@click.option(
    "-n", "count", type=click.IntRange(1, 100), default=1, help="How many dumps (each waits for its trigger)."
)
@click.option("--every", type=DURATION, help="With -n: the time between two dumps (10s).")
@click.option("--timeout", type=DURATION, help="Give up waiting for a trigger after this long.")
@click.option("--json", "as_json", is_flag=True, help="Report the cores as JSON.")
def dump(
    pid: int,
    output: str | None,
    dump_dir: str | None,
    kill: bool,
    cpu: float | None,
    mem_text: str | None,
    hold: float | None,
    signals: tuple[str, ...],
    on_exit: bool,
    count: int,
    every: float | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Write a core of the live process PID (all its threads) without gdb, and leave it running.

    The core is what the kernel writes on a crash, read by notmyfault analyze, gdb and eu-stack.
    Needs ptrace: the same user (and kernel.yama.ptrace_scope 0), or CAP_SYS_PTRACE.
    Triggers, as ProcDump's: --cpu 90 --for 5s, --mem 1GB, --signal SEGV, --on-exit; -n 3 --every 10s.
    """
    from notmyfault.capture import DumpFailed, default_dump_dir

    mem = parse_size_option("--mem", mem_text) if mem_text else None
    try:
        sigs = {parse_signal(s) for s in signals}
    except ValueError as e:
        fail(str(e))
    if sigs & {signal.SIGKILL, signal.SIGSTOP}:
        fail("--signal cannot catch SIGKILL or SIGSTOP: the kernel acts on them without a stop a tracer sees")
    usage_trigger = cpu is not None or mem is not None
    if sum((usage_trigger, bool(sigs), on_exit)) > 1:
        fail("choose one trigger: --cpu/--mem, --signal, or --on-exit")
    if hold and not usage_trigger:
        fail("--for says how long --cpu or --mem must hold: give one of them")
    if on_exit and count > 1:
        fail("--on-exit takes one dump: a process exits once")
    if output and count > 1:
        fail("-o names one file: with -n, use --dump-dir")
    if every and count == 1:
        fail("--every spaces the dumps of -n: give -n 2 or more")
    if pid == os.getpid() or pid <= 0:
        fail(f"{pid} is not a process notmyfault can dump (give another process's pid)")
    if not os.path.exists(f"/proc/{pid}"):
        fail(f"no process {pid}")
    directory = os.path.abspath(
        os.path.dirname(os.path.abspath(output)) if output else (dump_dir or default_dump_dir())
    )
    try:
        check_directory(directory, create=not output)
        if output:
            check_destination(os.path.abspath(output))
    except WriteFailed as e:
        fail(str(e))
    progress = _Progress(as_json)
    written: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout if timeout else None
    error: str | None = None
    try:
        for i in range(count):
            if i and every:
                _sleep_until(time.monotonic() + every, pid, progress, f"next dump ({i + 1} of {count})")
            result = _one(
                pid, output, directory, count, i, cpu, mem, hold or 0.0, sigs, on_exit, progress, deadline,
                kill and i == count - 1,
            )  # fmt: skip
            progress.done()
            written.append(result)
            if not as_json:
                echo_safe(_line(result))
            if result["died_after"] is not None:
                error = _died_text(result)
                break
    except (DumpFailed, WriteFailed) as e:
        progress.done()
        error = str(e) if not written else f"{e} (after {len(written)} of {count} dumps)"
    finally:
        progress.done()
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "live-dumps", "pid": pid, "dumps": written,
                   "error": error})  # fmt: skip
        if error:
            sys.exit(EXIT_NO_DUMP)
    elif error:
        fail(error, EXIT_NO_DUMP)


def _one(
    pid: int,
    output: str | None,
    directory: str,
    count: int,
    i: int,
    cpu: float | None,
    mem: int | None,
    hold: float,
    sigs: set[int],
    on_exit: bool,
    progress: _Progress,
    deadline: float | None,
    kill: bool,
) -> dict[str, Any]:
    """Wait for the trigger, stop the process, write its core (to ``output``, else to a new name in
    ``directory``), let the process go (or kill it). The core is written under a name nobody can
    predict and put in place whole: a failed or stopped dump leaves nothing."""
    from notmyfault.capture import (
        Attached,
        DumpFailed,
        Usage,
        wait_for_exit,
        wait_for_signal,
        wait_for_usage,
        write_core,
    )

    def limited(text: str) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise DumpFailed(f"no trigger within --timeout: the last state was: {text}")
        progress(text)

    trigger, why = "live", "at once"
    signalled: int | None = None
    if cpu is not None or mem is not None:

        def describe(u: Usage, held: float) -> str:
            parts = []
            if cpu is not None:
                parts.append(f"cpu {u.cpu:.0f}% (trigger {cpu:g}%)")
            if mem is not None:
                parts.append(f"rss {format_size(u.rss)} (trigger {format_size(mem)})")
            return (
                f"process {pid}: " + ", ".join(parts) + (f"; held {held:.1f} of {hold:g} s" if hold else "")
            )

        usage = wait_for_usage(pid, cpu, mem, hold, limited, describe)
        attached = Attached(pid)
        trigger = "cpu" if cpu is not None else "mem"
        why = describe(usage, hold)
    elif sigs:
        attached, signalled, sig = wait_for_signal(pid, sigs, limited)
        trigger, why = signal_name(sig), f"thread {signalled} was about to take {signal_name(sig)}"
    elif on_exit:
        attached, status = wait_for_exit(pid, limited)
        trigger, why = "exit", f"the process was exiting ({_exit_text(status)})"
    else:
        attached = Attached(pid)
    started = time.monotonic()
    final = os.path.abspath(output) if output else _name(directory, pid, trigger, count, i)
    try:
        with SafeFile(final) as f:
            try:
                core = write_core(pid, f.file, attached, signalled)
            except OSError as e:
                raise write_error(final, e) from None
            finally:
                attached.detach(kill=kill)  # the process goes on while its core is flushed to disk
            final = f.commit(final, replace=bool(output))
    finally:
        attached.detach(kill=kill)  # whatever failed before the core was begun (a second call: no-op)
    finished = time.time()
    return {
        "path": final,
        "pid": pid,
        "trigger": trigger,
        "why": why,
        "threads": core.threads,
        "segments": core.segments,
        "size": core.size,
        "seconds": round(time.monotonic() - started, 3),
        "signal": core.signal,
        "unreadable": core.skipped,
        "killed": kill,
        "time": round(finished, 6),  # seconds since the epoch, as every time in the JSON contract
        "time_iso": dt.datetime.fromtimestamp(finished, dt.timezone.utc).isoformat(),
        "complete": core.died_after is None,
        "memory": core.memory,
        "held": core.held,
        "died_after": None if core.died_after is None else round(core.died_after, 3),
    }


def _died_text(r: dict[str, Any]) -> str:
    share = r["held"] / r["memory"] if r["memory"] else 0.0
    return (
        f"process {r['pid']} died {r['died_after']:.1f} s into the dump: {r['path']} holds its threads' "
        f"registers and {format_size(r['held'])} of its {format_size(r['memory'])} of memory ({share:.0%}); "
        "the rest is missing (the core is truncated there)"
    )


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal_name(os.WTERMSIG(status))}"
    return f"exit status {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"status {status:#x}"


def _line(r: dict[str, Any]) -> str:
    after = (
        "the process died during the dump"
        if r["died_after"] is not None
        else "the process was killed"
        if r["killed"]
        else "the process was left running"
    )
    return (
        f"Dump: {printable(r['path'])}\n      {format_size(r['size'])} ({r['size']} bytes), {r['threads']} threads, "
        f"written in {r['seconds']:.2f} s; {r['why']}; {after}"
    )


def _name(directory: str, pid: int, trigger: str, count: int, i: int) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f".{i + 1}" if count > 1 else ""
    return os.path.join(directory, f"core.dump-{trigger}.{pid}.{stamp}{suffix}")


def _sleep_until(when: float, pid: int, progress: _Progress, what: str) -> None:
    from notmyfault.capture import DumpFailed

    while (left := when - time.monotonic()) > 0:
        if not os.path.exists(f"/proc/{pid}"):
            raise DumpFailed(f"process {pid} exited")
        progress(f"{what} in {left:.0f} s")
        time.sleep(min(left, 0.25))
