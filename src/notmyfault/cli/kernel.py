"""``notmyfault kernel``: myfault.ko on this machine (host mode), for a real Linux host with headers.

Everything here acts on the running kernel, so it says so: building is
harmless; loading needs root; leaking, hanging and crashing need root and an
explicit flag, and a crash first shows whether kdump would keep a vmcore.
Use ``notmyfault lab`` to do the same in a disposable guest instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import click

from notmyfault.cli.common import echo_safe, emit_json, fail, note, parse_size_option
from notmyfault.faults import KERNEL_CRASHES as CRASHES
from notmyfault.faults import KERNEL_HANGS as HANGS
from notmyfault.faults import POOLS, Request
from notmyfault.render import SCHEMA_VERSION

YES = "--yes-crash-this-machine"


def _build_dir() -> Path:
    """Where myfault.ko is built for the running kernel: the cache's kmod/<release>."""
    from notmyfault.capture import cache_dir

    return Path(cache_dir()) / "kmod" / os.uname().release


def _kdump_line() -> str:
    from notmyfault.capture import read_kernel_dump

    k = read_kernel_dump()
    if k.ready:
        return f"kdump is ready: a crash kernel is loaded ({k.crash_kernel_size or 0} bytes reserved)"
    if k.crash_kernel_loaded is None:
        return "kdump: this kernel has no kexec crash support: a panic leaves no vmcore"
    reserved = "crashkernel= reserves memory" if k.crash_kernel_size else "no crashkernel= reservation"
    return f"kdump is NOT ready (no crash kernel loaded; {reserved}): a panic now leaves no vmcore"


def _loaded() -> bool:
    return Path("/sys/module/myfault").exists()


json_option = click.option("--json", "as_json", is_flag=True, help="JSON output (docs/json-schema.md).")


def _say(as_json: bool, kind: str, text: str, **fields: object) -> None:
    """One result: a line for people, or a JSON object of ``kind`` with ``fields``."""
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": kind, **fields})
    else:
        echo_safe(text)


def _kdump_json() -> dict[str, object]:
    from notmyfault.capture import read_kernel_dump

    k = read_kernel_dump()
    return {
        "ready": k.ready,
        "crash_kernel_loaded": k.crash_kernel_loaded,
        "crash_kernel_size": k.crash_kernel_size,
    }


@click.group()
def kernel() -> None:
    """myfault.ko on this machine: build, load, unload, status, and (with --yes-crash-this-machine) faults."""


@kernel.command()
@click.option(
    "--kdir", type=click.Path(file_okay=False), help="kbuild directory (default: the running kernel's)."
)
@json_option
def build(kdir: str | None, as_json: bool) -> None:
    """Build myfault.ko against the headers of the running kernel (or --kdir)."""
    from notmyfault.faults import KernelError, KernelHeadersMissing, default_kdir
    from notmyfault.faults import build_kernel_module as kbuild

    try:
        ko = kbuild(Path(kdir) if kdir else default_kdir(), _build_dir())
    except KernelHeadersMissing as e:
        fail(str(e))  # a missing prerequisite: exit 2, as for every other
    except KernelError as e:
        fail(str(e), 1)
    _say(as_json, "kernel-build", str(ko), module=str(ko))


@kernel.command()
@json_option
def load(as_json: bool) -> None:
    """insmod the built myfault.ko (root): /dev/myfault appears."""
    ko = _build_dir() / "myfault.ko"
    if not ko.exists():
        fail("myfault.ko is not built for this kernel: run 'notmyfault kernel build' first")
    if os.geteuid() != 0:
        fail("loading a kernel module needs root: run this as root (sudo)")
    if _loaded():
        fail("myfault is already loaded ('notmyfault kernel unload' first)")
    _run(["insmod", str(ko)], "insmod")
    _say(as_json, "kernel-load", "myfault loaded: /dev/myfault", device="/dev/myfault", module=str(ko))


@kernel.command()
@json_option
def unload(as_json: bool) -> None:
    """rmmod myfault (its leaked blocks are freed; persistent ones keep it loaded: see 'free')."""
    if not _loaded():
        fail("myfault is not loaded")
    _run(["rmmod", "myfault"], "rmmod")
    _say(as_json, "kernel-unload", "myfault unloaded")


@kernel.command()
@json_option
def status(as_json: bool) -> None:
    """Whether myfault is loaded, what it has leaked, and whether kdump is ready."""
    from notmyfault.faults import OP_STATUS, KernelError, Request, send

    leaked = blocks = None
    if _loaded():
        try:
            leaked, blocks = send(Request(OP_STATUS))
        except KernelError as e:
            fail(str(e))
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "kernel-status", "kdump": _kdump_json(), "loaded": _loaded(),
                   "leaked_bytes": leaked, "blocks": blocks})  # fmt: skip
        return
    echo_safe(_kdump_line())
    if leaked is None:
        echo_safe("myfault: not loaded")
        return
    echo_safe(f"myfault: loaded; leaked {leaked} bytes in {blocks} blocks")


@kernel.command()
@json_option
def free(as_json: bool) -> None:
    """Free every block myfault.ko leaked, persistent ones too."""
    from notmyfault.faults import OP_FREE, KernelError, Request, send

    try:
        send(Request(OP_FREE))
    except KernelError as e:
        fail(str(e))
    _say(as_json, "kernel-free", "myfault: leaked blocks freed")


def _guard(what: str, yes: bool) -> None:
    """Refuse to hurt this machine unless asked explicitly; say whether a vmcore would be kept."""
    note(_kdump_line())
    if not yes:
        fail(f"{what} would take down this machine's kernel: add {YES} to mean it (or use 'notmyfault lab')")
    if not _loaded():
        fail("myfault is not loaded: notmyfault kernel build && notmyfault kernel load")


def crash_host(name: str, code: int, yes: bool) -> None:
    """Crash the running kernel in myfault.ko (after the guard)."""
    from notmyfault.faults import KernelError, crash_request, send

    _guard(f"crash {name}", yes)
    try:
        send(crash_request(name, code))
    except KernelError as e:
        fail(f"{e} (the kernel survived)", 1)
    fail("the kernel survived the crash request", 1)


code_option = click.option(
    "--code", default="0xe2", show_default=True, help="For 'panic': the bug check code."
)


def parse_code(text: str) -> int:
    """The --code of a panic (decimal or 0x hex), or a one-line failure."""
    try:
        return int(text, 0)
    except ValueError:
        fail(f"--code: {text!r} is not a number (e.g. 0xd1)")


@kernel.command("crash")
@click.argument("crash_type", type=click.Choice(list(CRASHES)))
@code_option
@click.option(YES, "yes", is_flag=True, help="Really crash this machine.")
def crash_cmd(crash_type: str, code: str, yes: bool) -> None:
    """Crash this machine's kernel in myfault.ko (needs --yes-crash-this-machine)."""
    crash_host(crash_type, parse_code(code), yes)


@kernel.command("hang")
@click.argument("hang_type", type=click.Choice(list(HANGS)))
@click.option(YES, "yes", is_flag=True, help="Really hang this machine.")
def hang_cmd(hang_type: str, yes: bool) -> None:
    """Hang this machine's kernel in myfault.ko (needs --yes-crash-this-machine)."""
    from notmyfault.faults import KernelError, hang_request, send

    _guard(f"hang {hang_type}", yes)
    try:
        send(hang_request(hang_type))
    except KernelError as e:
        fail(str(e), 1)


def leak_options(rate: str, stop_at: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The options of a kernel leak (host mode and the lab's scenario share them)."""

    def wrap(f: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(
            [
                click.option("--pool", type=click.Choice(list(POOLS)), default="nonpaged", show_default=True),
                click.option("--rate", default=rate, show_default=True, help="Bytes per second."),
                click.option(
                    "--stop-at", default=stop_at, show_default=True, help="Stop after this many bytes."
                ),
                click.option(
                    "--block",
                    default="4096",
                    show_default=True,
                    help="Bytes per block (slab object or vmalloc).",
                ),
                click.option(
                    "--tag",
                    default="Leak",
                    show_default=True,
                    help="Nonpaged blocks go to a slab cache of this name.",
                ),
            ]
        ):
            f = option(f)
        return f

    return wrap


def leak_request_from(
    pool: str, rate: str, stop_at: str, block: str, tag: str, persist: bool = False
) -> Request:
    """The request of the leak options, or a one-line failure naming the bad option."""
    from notmyfault.faults import leak_request

    rate_b = parse_size_option("--rate", rate)
    stop_b = parse_size_option("--stop-at", stop_at)
    block_b = parse_size_option("--block", block)
    try:
        return leak_request(pool, rate_b, stop_b, block_b, tag, persist)
    except ValueError as e:
        fail(f"--tag: {e}")


@kernel.command("leak")
@leak_options("1MB", "20MB")
@click.option(
    "--persist", is_flag=True, help="Keep the blocks after this command (myfault then refuses rmmod)."
)
@click.option(YES, "yes", is_flag=True, help="Really leak this machine's kernel memory.")
@json_option
def leak_cmd(
    pool: str, rate: str, stop_at: str, block: str, tag: str, persist: bool, yes: bool, as_json: bool
) -> None:
    """Leak kernel memory in myfault.ko at a rate with a tag (Ctrl-C stops it; unload frees it).

    The leak must leave MemAvailable above the safety floor (the larger of 512 MiB and 10%).
    """
    from notmyfault.faults import KernelError, check_floor, send

    req = leak_request_from(pool, rate, stop_at, block, tag, persist)
    try:
        check_floor(req.limit)
    except ValueError as e:
        fail(str(e))
    _guard("a kernel memory leak", yes)
    try:
        leaked, blocks = send(req)
    except KernelError as e:
        fail(str(e), 1)
    _say(
        as_json,
        "kernel-leak",
        f"myfault: {leaked} bytes in {blocks} blocks leaked with tag {tag}",
        bytes=leaked,
        blocks=blocks,
        tag=tag,
        pool=pool,
        persistent=persist,
    )


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        fail(f"{argv[0]} is missing: install kmod")
    if proc.returncode:
        fail(f"{what} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no message']}", 1)
