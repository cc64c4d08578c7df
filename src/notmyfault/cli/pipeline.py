"""``notmyfault collect``, ``serve`` and ``submit``: the crash pipeline's commands."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import click

from notmyfault.cli.common import EXIT_BAD_INPUT, emit_json, fail, note, parse_size_option
from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.safe import printable

store_option = click.option(
    "--store",
    "store_root",
    metavar="DIR",
    default=None,
    show_default="$NOTMYFAULT_STORE, /var/lib/notmyfault/crashes for root, else ~/.local/state/notmyfault/crashes",
    help="The crash store: where collected and uploaded crashes are kept and queued.",
)


def _store_root(store_root: str | None) -> str:
    from notmyfault.pipeline import default_store

    return os.path.abspath(store_root or default_store())


def _rate(text: str | None) -> tuple[int, float] | None:
    if text is None:
        return None
    count, _, seconds = text.partition("/")
    try:
        n, s = int(count), float(seconds or "60")
    except ValueError:
        fail(f"--rate {text!r}: write CRASHES/SECONDS, e.g. 20/60")
    if n < 1 or s <= 0:
        fail(f"--rate {text!r}: at least 1 crash per a positive number of seconds")
    return n, s


def _program() -> str:
    """The notmyfault program the kernel is to run: this one, else the one beside this Python
    (``python -m notmyfault`` runs from a venv), else the one on PATH."""
    for candidate in (
        sys.argv[0],
        os.path.join(os.path.dirname(sys.executable), "notmyfault"),
        shutil.which("notmyfault"),
    ):
        if not candidate or os.path.basename(candidate) != "notmyfault":
            continue
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    fail(
        "cannot find the notmyfault program to name in core_pattern: install notmyfault (pip) so that it is on PATH"
    )


def _limits(
    store_root: str, max_use: str | None, keep_free: str | None, max_core: str | None, rate: str | None
) -> Any:
    """The store's limits with the options given applied (None if none was)."""
    from dataclasses import replace

    from notmyfault.pipeline import Store

    if not any((max_use, keep_free, max_core, rate)):
        return None
    limits = Store(store_root).limits()
    if max_use:
        limits = replace(limits, max_use=parse_size_option("--max-use", max_use))
    if keep_free:
        limits = replace(limits, keep_free=parse_size_option("--keep-free", keep_free))
    if max_core:
        size = parse_size_option("--max-core", max_core)
        limits = replace(limits, max_core=size, max_raw=max(size, limits.max_raw))
    if r := _rate(rate):
        limits = replace(limits, rate=r[0], interval=r[1])
    return limits


@click.command()
@click.option("--install", is_flag=True, help="Make collect the machine's core_pattern handler (root).")
@click.option("--uninstall", is_flag=True, help="Put back the dump settings of before --install (root).")
@store_option
@click.option(
    "--max-use",
    metavar="SIZE",
    help="The most the store's dumps may take (default: 10%% of its file system, at most 4 GiB).",
)
@click.option(
    "--keep-free",
    metavar="SIZE",
    help="The least free space a new dump may leave (default: 15%%, at most 4 GiB).",
)
@click.option("--max-core", metavar="SIZE", help="The largest dump kept (default: 1 GiB compressed).")
@click.option(
    "--rate", metavar="N/SECONDS", help="At most N crashes of one program kept per SECONDS (default: 20/60)."
)
@click.option(
    "--pipe-limit",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="With --install: kernel.core_pipe_limit, how many handlers run at once (crashes past it keep no dump).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def collect(
    install: bool,
    uninstall: bool,
    store_root: str | None,
    max_use: str | None,
    keep_free: str | None,
    max_core: str | None,
    rate: str | None,
    pipe_limit: int,
    as_json: bool,
) -> None:
    """Collect every crash of this machine: the kernel pipes each core dump to notmyfault, which
    keeps it zstd-compressed in the store with its metadata (pid, signal, time, executable, command
    line, build id), within limits like coredump.conf's, and queues it for 'serve' to process.

    With no action, says how the store and the installation stand. The handler itself is run by the
    kernel as 'notmyfault collect --from-kernel STORE %P %p %I %i %s %t %u %g'.
    """
    from notmyfault.pipeline import install as do_install
    from notmyfault.pipeline import status
    from notmyfault.pipeline import uninstall as do_uninstall

    if install and uninstall:
        fail("give --install or --uninstall, not both")
    root = _store_root(store_root)
    limits = _limits(root, max_use, keep_free, max_core, rate)
    try:
        if install:
            done = do_install(root, _program(), limits, pipe_limit)
            action = "install"
        elif uninstall:
            done = do_uninstall(store_root and root)
            action = "uninstall"
        else:
            if limits is not None:
                from notmyfault.pipeline import Store

                Store(root).set_limits(limits)
            action = "status"
            done = None
        state = status(done.store if done else root)
    except (OSError, ValueError) as e:
        fail(str(e))
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "collect", "action": action,
                   "previous": done.previous if done else None, **state})  # fmt: skip
        return
    if action == "install":
        note(f"installed: core_pattern is now {printable(state['core_pattern'])}")
        note(f"the previous settings are kept in {printable(state['store'])}/installed.json for --uninstall")
    elif action == "uninstall":
        note(f"uninstalled: core_pattern is {printable(state['core_pattern'] or '')} again")
    click.echo(f"store:      {printable(state['store'])}")
    click.echo(
        f"installed:  {'yes' if state['installed'] else 'no'} (core_pattern {printable(state['core_pattern'] or '?')})"
    )
    click.echo(
        f"crashes:    {state['crashes']} ({state['bytes']} bytes), {state['queued']} waiting to be processed"
    )
    why = ", ".join(f"{k}: {n}" for k, n in sorted(state["dropped_by_reason"].items()))
    click.echo(f"dropped:    {state['dropped']}{f' ({why})' if why else ''}")
    lim = state["limits"]
    click.echo(
        f"limits:     max use {lim['max_use']} B, keep free {lim['keep_free']} B, max core {lim['max_core']} B,"
        f" {lim['rate']} crashes of a program per {lim['interval']:g} s"
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@store_option
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    show_default="$NOTMYFAULT_TRIAGE_DB or ~/.local/state/notmyfault/triage.db",
    help="The triage database: a SQLite file or postgresql://...",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="The address to listen on (loopback by default)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="The port (0: any free one, printed).",
)
@click.option(
    "--token",
    envvar="NOTMYFAULT_UPLOAD_TOKEN",
    help="Uploads must carry this token (Authorization: Bearer TOKEN, or ?token=TOKEN). Default: $NOTMYFAULT_UPLOAD_TOKEN.",
)
@click.option(
    "--anonymous", is_flag=True, help="Take uploads without a token on an address that is not loopback."
)
@click.option(
    "--workers", type=click.IntRange(1, 256), default=1, show_default=True, help="Local analysis processes."
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Analyse on a Dask cluster (tcp://host:8786) instead; its workers must see the store.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds one dump's analysis may take.",
)
@click.option(
    "--max-body", metavar="SIZE", default="256MiB", show_default=True, help="The largest upload body."
)
@click.option(
    "--max-decompressed",
    metavar="SIZE",
    default="1GiB",
    show_default=True,
    help="The largest body after gzip, and core after zstd.",
)
@click.option(
    "--rate",
    metavar="N/SECONDS",
    default="600/60",
    show_default=True,
    help="At most N uploads of one product kept per SECONDS (429 past it).",
)
@click.option(
    "--no-process", is_flag=True, help="Only receive and serve; another server processes the store."
)
def serve(
    store_root: str | None,
    db_url: str | None,
    host: str,
    port: int,
    token: str | None,
    anonymous: bool,
    workers: int,
    scheduler: str | None,
    timeout: float,
    max_body: str,
    max_decompressed: str,
    rate: str,
    no_process: bool,
) -> None:
    """Receive crashes and browse them: a collector for Breakpad/Crashpad uploads (POST /submit)
    and a live web UI of the buckets, on the triage database. Collected and uploaded crashes are
    processed by the triage workers as they arrive. Stop with Ctrl-C or SIGTERM."""
    try:
        from notmyfault.web import Settings, serve_forever
    except ImportError as e:
        fail(f"serve needs the web stack ({e.name} is missing): pip install 'notmyfault[serve]'")
    from notmyfault.cli.triage import _default_db
    from notmyfault.pipeline import Processor, Store, UploadLimits

    if not _is_loopback(host) and not token and not anonymous:
        fail(
            f"--host {host} takes uploads from the network: give --token (or --anonymous to take them from anyone)"
        )
    root = _store_root(store_root)
    store = Store(root)
    url = db_url or _default_db()
    per = _rate(rate) or (600, 60.0)
    limits = UploadLimits(
        max_body=parse_size_option("--max-body", max_body),
        max_decompressed=parse_size_option("--max-decompressed", max_decompressed),
        rate=per[0],
        interval=per[1],
    )
    try:
        store.create()
        from notmyfault.triage import Database

        Database(url).close()  # reachable, migrated: say so now rather than in the processor's thread
    except (OSError, ValueError) as e:
        fail(str(e))
    processor = None if no_process else Processor(store, url, workers, scheduler, timeout)
    settings = Settings(store, url, token, limits, processor)

    def ready(bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        click.echo(
            f"serving http://{shown}:{bound}/ (store {printable(root)}, database {printable(url)})", err=False
        )
        sys.stdout.flush()

    try:
        serve_forever(settings, host, port, ready)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")


@click.command()
@click.argument("dump", type=click.Path(dir_okay=False), required=False)
@click.option("--url", required=True, help="The collector's submit URL (http://host:8765/submit).")
@click.option(
    "--annotation",
    "-a",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="An annotation (prod=, ver=, guid= ...); repeatable.",
)
@click.option(
    "--store",
    "store_root",
    metavar="DIR",
    help="Instead of DUMP: forward every crash 'collect' kept in this store and has not forwarded yet.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="With --store: keep forwarding new crashes (every 5 s) until Ctrl-C or SIGTERM.",
)
@click.option(
    "--token", envvar="NOTMYFAULT_UPLOAD_TOKEN", help="The upload token (default: $NOTMYFAULT_UPLOAD_TOKEN)."
)
@click.option(
    "--gzip/--no-gzip",
    "gzipped",
    default=True,
    show_default=True,
    help="Compress the body (Content-Encoding: gzip), as Crashpad does.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the collector.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def submit(
    dump: str | None,
    url: str,
    annotations: tuple[str, ...],
    store_root: str | None,
    follow: bool,
    token: str | None,
    gzipped: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Upload DUMP (a minidump, or an ELF core, plain or zstd) to a collector ('notmyfault serve',
    or any Breakpad/Socorro collector), as a Breakpad or Crashpad client does; prints the crash id it
    answers. With --store, forward the crashes 'collect' kept on this host instead (each taken off
    the store's queue once the collector has it)."""
    from notmyfault.pipeline import SubmitFailed, submit_dump

    if (dump is None) == (store_root is None):
        fail("give a DUMP to upload, or --store DIR to forward a store's crashes")
    if follow and store_root is None:
        fail("--follow goes with --store")
    if store_root is not None:
        _forward(store_root, url, token, gzipped, timeout, follow, as_json)
        return
    assert dump is not None
    pairs = []
    for a in annotations:
        key, sep, value = a.partition("=")
        if not sep or not key:
            fail(f"--annotation {a!r}: write KEY=VALUE")
        pairs.append((key, value))
    try:
        crash_id = submit_dump(dump, url, pairs, token, gzipped, timeout)
    except SubmitFailed as e:
        fail(str(e), EXIT_BAD_INPUT if e.status is None or e.status < 500 else 1)
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "submit", "crash_id": crash_id, "url": url})
    else:
        click.echo(f"CrashID=bp-{crash_id}")


def _forward(
    store_root: str, url: str, token: str | None, gzipped: bool, timeout: float, follow: bool, as_json: bool
) -> None:
    """submit --store: forward, once or until stopped."""
    import time

    from notmyfault.cli.common import interruptible
    from notmyfault.pipeline import Store, forward

    store = Store(os.path.abspath(store_root))
    if not os.path.isdir(store.crashes):
        fail(f"--store {store_root}: no crash store there (collect --install makes one)")
    total_sent, last_failed = 0, []
    with interruptible():
        while True:
            sent, failed = forward(store, url, token, gzipped, timeout)
            total_sent += len(sent)
            last_failed = failed
            for local, remote in sent:
                if not as_json:
                    click.echo(f"{local} -> CrashID=bp-{remote}")
            for local, why in failed:
                note(f"{local} not forwarded: {printable(why)}")
            if not follow:
                break
            time.sleep(5)
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "submit-forward", "url": url, "sent": total_sent,
                   "failed": [{"id": i, "error": e} for i, e in last_failed], "queued": len(store.queued())})  # fmt: skip
    if last_failed:
        sys.exit(1)
