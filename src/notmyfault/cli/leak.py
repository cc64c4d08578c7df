"""``notmyfault leak`` and ``notmyfault cleanup``: NotMyfault's Leak tab."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from notmyfault.cli.common import (
    DUMP_DIR_HELP,
    EXIT_INTERRUPTED,
    EXIT_NO_DUMP,
    FiniteRange,
    SignalFlag,
    dump_settings,
    echo_safe,
    emit_json,
    fail,
    note,
    parse_size_option,
    report_crash,
    run_watched,
)
from notmyfault.render import SCHEMA_VERSION

HOLD_TICK = 1.0


@click.command()
@click.option(
    "--pool",
    type=click.Choice(["paged", "nonpaged", "kernel"]),
    default="nonpaged",
    show_default=True,
    help="paged: committed anonymous memory; nonpaged: mlocked; kernel: System V message queues (SUnreclaim).",
)
@click.option(
    "--rate", default="1000KB", show_default=True, help="Leak per second (KB = 1000 bytes, KiB = 1024)."
)
@click.option("--stop-at", default="200MB", show_default=True, help="Stop leaking at this many bytes.")
@click.option(
    "--tag", default="Leak", show_default=True, help="The 4-character pool tag in every block's header."
)
@click.option(
    "--block", metavar="SIZE", help="Bytes per block (default 64KiB; kernel pool: one 4048-byte message)."
)
@click.option(
    "--then-crash",
    metavar="TYPE",
    help="After the leak, crash (in a watched child) so the dump holds the leak.",
)
@click.option("--hold", is_flag=True, help="After the leak stops, hold the memory until interrupted again.")
@click.option(
    "--persist",
    is_flag=True,
    help="Let the leak outlive the process (paged: System V shm; kernel: message queues).",
)
@click.option("--force", is_flag=True, help="Leak even past the safety floor of available memory.")
@click.option("--list", "list_", is_flag=True, help="List the persistent leaks held on this machine, by tag.")
@click.option("--dump-dir", type=click.Path(file_okay=False), help=DUMP_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Events and progress as JSON Lines.")
@click.option(
    "--interval",
    type=FiniteRange(0.05, 60.0),
    metavar="SECONDS",
    help="Seconds between progress updates (default: 0.25 on a terminal, 1 otherwise).",
)
@click.option("--child", is_flag=True, hidden=True)
@click.option("--crash-on-usr1", metavar="TYPE", hidden=True)
def leak(
    pool: str,
    rate: str,
    stop_at: str,
    tag: str,
    block: str | None,
    then_crash: str | None,
    hold: bool,
    persist: bool,
    force: bool,
    list_: bool,
    dump_dir: str | None,
    as_json: bool,
    interval: float | None,
    child: bool,
    crash_on_usr1: str | None,
) -> None:
    """Leak memory at a set rate in blocks tagged like pool allocations (NotMyfault's Leak Paged / Nonpaged).

    Ctrl-C stops the leak at once; then the memory is freed and the process
    exits (130), unless --hold (hold until Ctrl-C again), --persist (the leak
    stays: see --list and 'notmyfault cleanup') or --then-crash TYPE (crash with
    the leak in memory: NotMyfault's walkthrough is
    'leak --pool nonpaged --rate 1000KB --stop-at 200MB --then-crash high-irql').
    SIGTERM or SIGHUP ends it whatever it does: freed (or kept, with --persist), exit 130.
    """
    from notmyfault.faults import LeakRefused, Pool, plan_leak

    if list_:
        _list_held(as_json)
        return
    if then_crash and hold:
        fail("--then-crash and --hold exclude each other: the crash ends the process")
    if crash_on_usr1 and not child:
        fail("--crash-on-usr1 is for the window's leak child (with --child)")
    crash_name = _crash_option("--then-crash", then_crash)
    usr1_crash = _crash_option("--crash-on-usr1", crash_on_usr1)
    try:
        plan = plan_leak(
            Pool(pool),
            parse_size_option("--rate", rate),
            parse_size_option("--stop-at", stop_at),
            tag,
            None if block is None else parse_size_option("--block", block),
            persist,
            force,
        )
    except LeakRefused as e:
        fail(str(e))
    if crash_name and not child:
        _leak_then_crash_in_child(crash_name, dump_dir, as_json)
        return
    _leak_here(plan, hold, crash_name, as_json, child, interval, usr1_crash)


def _crash_option(option: str, value: str | None) -> str | None:
    """The crash type named by ``option``, or fail with a one-line error."""
    if not value:
        return None
    from notmyfault.faults import UnknownCrashType, lookup

    try:
        entry = lookup(value)
    except UnknownCrashType as e:
        fail(f"{option}: {e}")
    if entry.takes_signal:
        fail(f"{option} takes a crash type, not 'signal'")
    return entry.name


def _view_mode(as_json: bool) -> str:
    if as_json:
        return "json"
    return "rich" if sys.stdout.isatty() else "lines"


def _leak_here(
    plan: Any,
    hold: bool,
    crash_name: str | None,
    as_json: bool,
    child: bool,
    interval: float | None = None,
    usr1_crash: str | None = None,
) -> None:
    """Run the leak in this process; then free, hold, keep or crash.

    With ``usr1_crash``, SIGUSR1 (the window's Do Bug) stops the leak or the
    hold and crashes with that type, the leak still in memory.
    """
    from notmyfault.base import format_size
    from notmyfault.faults import Leaker, Pool, counters
    from notmyfault.render.leakview import LeakView, status_fields

    if child:
        from notmyfault.capture import CHILD_COMM, prepare_current_process

        prepare_current_process(name=CHILD_COMM)
    interrupts = [0]
    interrupted = SignalFlag()
    ending = SignalFlag()
    """SIGTERM or SIGHUP: end now (free, no hold, no crash); Ctrl-C only stops the leaking first."""

    def on_signal(signum: int, frame: object) -> None:
        interrupts[0] += 1
        if signum != signal.SIGINT:
            ending.set()
        interrupted.set()

    bug = SignalFlag()

    def on_usr1(signum: int, frame: object) -> None:
        bug.set()
        interrupted.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)  # a closed terminal or a dropped ssh: end, and free
    if usr1_crash:
        signal.signal(signal.SIGUSR1, on_usr1)
    if plan.pool is Pool.KERNEL or plan.persist:
        _say_what_outlives(plan)
    view = LeakView(plan, _view_mode(as_json))
    if interval is not None:
        view.tick = interval
    leaker = Leaker(plan)
    view.start(os.getpid())
    st = leaker.run(interrupted, view.update, view.tick)
    summary = (
        f"{'reached its limit' if st.reached_limit else 'stopped'}: {format_size(st.leaked)} in "
        f"{st.blocks} blocks tagged '{plan.tag}' ({plan.pool.value}) in {st.elapsed_s:.2f} s"
    )
    if st.error:
        view.event("error", message=f"leak failed: {st.error}", **status_fields(st))
    else:
        view.event(
            "limit" if st.reached_limit else "stopped",
            message=f"leak {summary}",
            **status_fields(st),
            counters=counters(plan),
        )
    crash_now = crash_name or (usr1_crash if bug.is_set() else None)
    if crash_now and st.error is None and not ending.is_set():
        view.close()
        _crash_with_leak(plan, st, crash_now)
    if hold and st.error is None and not ending.is_set():
        seen = interrupts[0]
        view.event("holding", message="holding the leak; Ctrl-C (or SIGTERM) frees it", **status_fields(st))
        interrupted.clear()
        while interrupts[0] == seen and not bug.is_set():
            interrupted.wait(HOLD_TICK)
            if interrupts[0] == seen and not bug.is_set():
                view.update(st, state="holding")
        if bug.is_set() and usr1_crash:
            view.close()
            _crash_with_leak(plan, st, usr1_crash)
    if plan.persist and st.error is None:  # kept as asked, even when a signal ended the leaking
        leaker.release_ownership()
        view.event(
            "kept",
            message=f"the leak outlives this process: 'notmyfault leak --list' shows it, "
            f"'notmyfault cleanup --tag {plan.tag.strip()}' frees it",
            **status_fields(st),
        )
        if interrupts[0]:
            sys.exit(EXIT_INTERRUPTED)
        return
    freed = leaker.free()
    view.event("freed", message=f"freed {format_size(freed)}", freed=freed)
    if st.error:
        sys.exit(EXIT_NO_DUMP)
    if interrupts[0]:  # ended by Ctrl-C, SIGTERM or SIGHUP: what was leaked is freed
        sys.exit(EXIT_INTERRUPTED)


def _say_what_outlives(plan: Any) -> None:
    """Kernel-pool (and --persist) blocks are System V objects: they outlive a process killed with
    SIGKILL, which frees nothing. Say so at the start, and name what ended runs left."""
    from notmyfault.base import ended, format_size
    from notmyfault.faults import Pool, held, mine

    left = [o for o in mine(held()) if ended(o.header.pid)]
    if left:
        note(
            f"notmyfault: note: {len(left)} System V objects ({format_size(sum(o.bytes for o in left))}) "
            "that ended runs left are still held: 'notmyfault leak --list' shows them, "
            "'notmyfault cleanup' frees them"
        )
    if plan.pool is Pool.KERNEL and not plan.persist:
        note(
            "notmyfault: note: kernel-pool blocks are System V message queues: this run frees them when "
            "it ends, but a SIGKILL leaves them; 'notmyfault cleanup --tag "
            f"{plan.tag.strip()}' then frees them"
        )


def _crash_with_leak(plan: Any, st: Any, crash_name: str) -> None:
    """Commit the crash in this process, with the leak still in memory."""
    from notmyfault.faults import FaultSurvived, Pool, commit, lookup

    if plan.pool is Pool.KERNEL or plan.persist:
        print(
            "notmyfault: note: these blocks are kernel or shared memory, not in this process's dump; "
            f"they stay after the crash: 'notmyfault cleanup --tag {plan.tag.strip()}' frees them",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"notmyfault: leaked {st.leaked} bytes in {st.blocks} blocks tagged '{plan.tag}' "
        f"({plan.code.name.lower()} pool); crashing with {crash_name}",
        file=sys.stderr,
        flush=True,
    )
    try:
        commit(lookup(crash_name))
    except FaultSurvived as e:
        fail(str(e), EXIT_NO_DUMP)


def _leak_then_crash_in_child(crash_name: str, dump_dir: str | None, as_json: bool) -> None:
    """Leak, then crash with the leak in memory, in a watched child; report the dump it left."""
    from notmyfault.capture import CrashInterrupted

    settings = dump_settings(dump_dir)
    argv = [sys.executable, "-m", "notmyfault", "leak", *_child_args(), "--child"]
    try:
        run = run_watched(
            argv,
            settings,
            f"leak-then-{crash_name}",
            None,
            on_interrupt="forward",
            new_session=True,
            echo_stderr=not as_json,
        )
    except CrashInterrupted as e:
        fail(str(e), EXIT_INTERRUPTED)
    report_crash(run, as_json, lines=True)


def _child_args() -> list[str]:
    """This command's own arguments, for the child that runs the leak."""
    args = sys.argv[1:]
    if args and args[0] == "leak":
        return args[1:]
    return args[args.index("leak") + 1 :] if "leak" in args else args


def _list_held(as_json: bool) -> None:
    from notmyfault.base import format_size
    from notmyfault.faults import held

    objs = held()
    by_tag: dict[tuple[str, str], list[Any]] = {}
    for o in objs:
        by_tag.setdefault((o.header.tag, o.header.pool.pool_option), []).append(o)
    rows = [
        {
            "tag": t,
            "pool": pool,
            "objects": len(group),
            "blocks": sum(o.blocks for o in group),
            "bytes": sum(o.bytes for o in group),
            "oldest_age_s": round(max(o.age_s for o in group), 1),
            "kind": group[0].kind,
        }
        for (t, pool), group in sorted(by_tag.items())
    ]
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "held", "leaks": rows})
        return
    if not rows:
        echo_safe("no persistent leaks are held")
        return
    echo_safe(f"{'tag':<6} {'pool':<8} {'objects':>8} {'blocks':>8} {'bytes':>12}  age")
    for r in rows:
        echo_safe(
            f"{r['tag']:<6} {r['pool']:<8} {r['objects']:>8} {r['blocks']:>8} {format_size(r['bytes']):>12}  "
            f"{r['oldest_age_s']:.0f} s ({r['kind']})"
        )


@click.command()
@click.option("--tag", help="Free only the leaks with this tag.")
@click.option("--json", "as_json", is_flag=True, help="Print what was freed as JSON.")
def cleanup(tag: str | None, as_json: bool) -> None:
    """Free persistent leaks (System V shm segments and message queues that notmyfault made)."""
    from notmyfault.base import format_size
    from notmyfault.faults import held, mine, remove

    objs = mine(held(tag))
    removed = [o for o in objs if remove(o)]
    total = sum(o.bytes for o in removed)
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "cleanup",
                "tag": tag,
                "removed": [
                    {"kind": o.kind, "id": o.ident, "tag": o.header.tag, "bytes": o.bytes} for o in removed
                ],
                "bytes": total,
            }
        )
        return
    what = f" tagged '{tag}'" if tag else ""
    echo_safe(f"freed {len(removed)} persistent objects{what}, {format_size(total)}")
