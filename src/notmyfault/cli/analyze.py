"""``notmyfault analyze / stack / regs / poolused``: the WinDbg session of the seed, on Linux cores.

Unusable input (not a core, truncated, corrupt, foreign) exits 2 with one line;
an unexpected failure inside the analysis exits 3 with one line naming it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import click

import notmyfault
from notmyfault.cli.common import (
    EXIT_NO_MATCH,
    allow_quick_exit,
    echo_page,
    emit_json,
    fail,
    note,
    output_error,
    parse_size_option,
    regular_file,
)

EXIT_INTERNAL = 3


def _set_max_unpacked(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """--max-unpacked SIZE: how far a packed dump may unpack (for this process and its workers)."""
    if value is not None:
        size = parse_size_option("--max-unpacked", value)
        if size < 1:
            fail("--max-unpacked: give a size of at least 1 byte (e.g. 100GB)")
        notmyfault.limit_unpacked(size)


max_unpacked_option = click.option(
    "--max-unpacked",
    metavar="SIZE",
    expose_value=False,
    callback=_set_max_unpacked,
    help="Packed dumps (.zst, .gz, apport ...): refuse one that unpacks to more than SIZE (default "
    "32GiB; an ELF core never past the size its own headers give).",
)


def core_argument(f: Any) -> Any:
    """The CORE argument of the commands that read a dump, with --max-unpacked."""
    return click.argument("core")(max_unpacked_option(f))


exe_option = click.option(
    "--exe",
    type=click.Path(dir_okay=False),
    callback=regular_file,
    help="The executable, when it is not at the path the core records.",
)
sysroot_option = click.option(
    "--sysroot",
    type=click.Path(file_okay=False),
    help="Look up the recorded paths of the executable and libraries under this directory first.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (docs/json-schema.md)."
)


max_frames_option = click.option(
    "--max-frames",
    type=click.IntRange(0),
    default=1000,
    show_default=True,
    help="Frames of a stack shown: the innermost and outermost half, and a line for those between "
    "(0: every one).",
)


def side_options(f: Any) -> Any:
    """--native / --python: which frames a stack of a CPython process shows (default: both)."""
    f = click.option(
        "--python", "side", flag_value="python", help="Only the Python frames (a core of a CPython process)."
    )(f)
    return click.option(
        "--native", "side", flag_value="native", default="both", help="Only the native frames."
    )(f)


def symbols_option(f: Any) -> Any:
    """--symbols DIR and --symbols-url URL (repeatable): where minidumps' Breakpad symbols are."""
    f = click.option(
        "--symbols-url",
        "symbols_urls",
        multiple=True,
        metavar="URL",
        help="Minidumps: a Breakpad symbol server (repeatable); what it serves is kept in "
        "~/.cache/notmyfault/symbols.",
    )(f)
    return click.option(
        "--symbols",
        type=click.Path(file_okay=False),
        help="Minidumps: a directory of Breakpad symbol files (DIR/<debug file>/<debug id>/<name>.sym).",
    )(f)


def _set_debuginfod(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    import notmyfault

    notmyfault.debuginfod(progress=note)
    if value is not None:
        if value and not os.environ.get("DEBUGINFOD_URLS", "").strip():
            fail(
                "--debuginfod: set DEBUGINFOD_URLS to the servers to ask (e.g. https://debuginfod.debian.net)"
            )
        notmyfault.debuginfod(enabled=value)


debuginfod_option = click.option(
    "--debuginfod/--no-debuginfod",
    default=None,
    expose_value=False,
    callback=_set_debuginfod,
    help="Fetch missing executables and debug info by build-id from $DEBUGINFOD_URLS (default: when it "
    "is set, saying so), kept in ~/.cache/debuginfod_client.",
)


def _symbol_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    """The --symbols-url servers, each checked to be an http(s) URL."""
    for url in urls:
        if not url.startswith(("http://", "https://")):
            fail(f"--symbols-url {url!r}: give an http:// or https:// URL")
    return urls


debug_option = click.option(
    "--debug-file",
    "debug_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Kernel vmcores: a vmlinux or module (.ko) with debug information (repeatable); "
    "vmlinux and *.ko beside the dump are used too.",
)


def _symbol_cache() -> str:
    """Where symbol files fetched from symbol servers are kept."""
    from notmyfault.capture import cache_dir

    return os.path.join(cache_dir(), "symbols")


@contextmanager
def opened(
    path: str,
    minidumps: bool = False,
    debug_files: tuple[str, ...] = (),
    exe: str | None = None,
    sysroot: str | None = None,
    symbols: str | None = None,
    symbols_urls: tuple[str, ...] = (),
) -> Iterator[notmyfault.Dump]:
    """Open a dump (with ``minidumps``, a minidump, a Windows kernel dump or a vmcore too); turn every
    failure into a one-line error."""
    urls = _symbol_urls(symbols_urls)
    try:
        if minidumps:
            dump = notmyfault.open(
                path,
                exe=exe,
                sysroot=sysroot,
                symbols=symbols,
                symbol_urls=urls,
                symbol_cache=_symbol_cache() if urls else None,
                debug_files=debug_files,
                say=note,
            )
        else:
            dump = notmyfault.open_core(path, exe=exe, sysroot=sysroot)
    except notmyfault.DumpError as e:
        fail(str(e))
    token = _TRUNCATION.set(dump.truncation)
    allow_quick_exit()  # a page of a dump: nothing outlives the output
    try:
        yield dump
    except notmyfault.DumpError as e:
        fail(str(e))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        if output_error(e):  # stdout full or broken: main says so
            raise
        fail(
            f"analysing {path} failed: {type(e).__name__}: {e} (a bug in notmyfault: please report it)",
            EXIT_INTERNAL,
        )
    finally:
        _TRUNCATION.reset(token)
        dump.close()


_TRUNCATION: ContextVar[str | None] = ContextVar("truncation", default=None)
"""What the dump that ``opened`` holds is missing (None: it is whole): every page says so."""


def _emit(as_json: bool, obj: Callable[[], Any], text: Callable[[], str]) -> None:
    """JSON (escaped by the encoder), or the page with every control character escaped; either says
    whether the dump is truncated (``truncated``, ``truncation``; a WARNING line on top of the page)."""
    from notmyfault.render.analysis import truncation_line

    truncation = _TRUNCATION.get()
    if as_json:
        data = obj()
        if isinstance(data, dict):
            data.setdefault("truncated", truncation is not None)
            data.setdefault("truncation", truncation)
        emit_json(data)
    else:
        page = text()
        if truncation is not None and truncation_line(truncation) not in page:
            page = f"{truncation_line(truncation)}\n\n{page}"
        echo_page(page)


@click.command()
@core_argument
@exe_option
@sysroot_option
@symbols_option
@debug_option
@debuginfod_option
@click.option("-v", "--verbose", is_flag=True, help="Every frame, and the modules whose files were missing.")
@click.option(
    "--show-environment",
    "--environment",
    "show_env",
    is_flag=True,
    help="Also show the process's environment (it may hold secrets: never shown or stored unless asked). "
    "ELF cores: read from the initial stack; minidumps: Breakpad's environment stream.",
)
@side_options
@max_frames_option
@json_option
def analyze(
    core: str,
    exe: str | None,
    sysroot: str | None,
    symbols: str | None,
    debug_files: tuple[str, ...],
    verbose: bool,
    show_env: bool,
    side: str,
    as_json: bool,
    symbols_urls: tuple[str, ...] = (),
    max_frames: int = 1000,
) -> None:
    """The !analyze -v page: crash class, arguments, faulting instruction, stack, and Probably caused by.

    Reads ELF process cores, minidumps (Windows, and Breakpad's of Linux), Windows kernel dumps and
    Linux kernel vmcores.
    """
    from notmyfault.render.analysis import analysis_json, analysis_text
    from notmyfault.render.safe import printable

    with opened(core, True, debug_files, exe, sysroot, symbols, symbols_urls) as dump:
        env = dump.environment() if show_env else None
        result = dump.analysis(python_locals=verbose, python=side != "native", native_locals=verbose)
        if env is None:
            _emit(
                as_json,
                lambda: analysis_json(result, verbose, max_frames),
                lambda: analysis_text(result, verbose, side),
            )
        else:
            shown = env
            _emit(
                as_json,
                lambda: {**analysis_json(result, verbose, max_frames), "environment": shown},
                lambda: "\n".join(
                    [analysis_text(result, verbose, side), "", "ENVIRONMENT:"]
                    + [f"  {printable(v)}" for v in shown]
                ),
            )


@click.command()
@core_argument
@click.option("--thread", "tid", type=click.IntRange(1), help="This thread (default: the one that crashed).")
@click.option("--all", "all_threads", is_flag=True, help="Every thread.")
@exe_option
@sysroot_option
@symbols_option
@debug_option
@debuginfod_option
@click.option(
    "-v",
    "--verbose",
    "--locals",
    "verbose",
    is_flag=True,
    help="Each frame's arguments and locals too: native ones from DWARF as gdb's 'bt full' prints "
    "them, Python ones as their reprs.",
)
@side_options
@max_frames_option
@json_option
def stack(
    core: str,
    tid: int | None,
    all_threads: bool,
    exe: str | None,
    sysroot: str | None,
    symbols: str | None,
    debug_files: tuple[str, ...],
    verbose: bool,
    side: str,
    as_json: bool,
    symbols_urls: tuple[str, ...] = (),
    max_frames: int = 1000,
) -> None:
    """kvL: the stack of the crashing thread (or --thread TID, or --all), and how each frame was found.

    A core of a CPython process shows each thread's Python frames where the eval loop runs them
    (--python: only those; --native: none), and marks the thread that holds the GIL.
    Kernel vmcores: the crashed task's stack (or --thread PID, or --all tasks).
    """
    from notmyfault.render import SCHEMA_VERSION
    from notmyfault.render.analysis import frames_json, python_thread_json, stack_text
    from notmyfault.render.safe import terminal_safe

    with opened(core, True, debug_files, exe, sysroot, symbols, symbols_urls) as dump:
        stacks = dump.stacks(
            tid, all_threads, python=side != "native", python_locals=verbose, native_locals=verbose
        )
        if stacks.python_error and not as_json:
            click.echo(
                terminal_safe(
                    f"notmyfault: a CPython process, but its Python frames could not be read: {stacks.python_error}"
                ),
                err=True,
            )
        _emit(
            as_json,
            lambda: {
                "schema_version": SCHEMA_VERSION,
                "kind": "stacks",
                "python_error": stacks.python_error,
                "threads": [
                    {
                        "tid": s.tid,
                        **frames_json(s.frames, verbose, max_frames),
                        "walk_stopped": s.stopped,
                        "python": python_thread_json(s.python, verbose),
                    }
                    for s in stacks.threads
                ],
            },
            lambda: "\n\n".join(
                stack_text(s.tid, list(s.frames), s.python, side, verbose, s.stopped, max_frames)
                for s in stacks.threads
            ),
        )


@click.command()
@core_argument
@click.option("--thread", "tid", type=click.IntRange(1), help="This thread (default: the one that crashed).")
@click.option(
    "--all",
    "all_",
    is_flag=True,
    help="Also the floating-point and vector registers (x87, SSE, AVX; aarch64's v0-v31), as gdb's "
    "'info all-registers' and WinDbg's rM.",
)
@sysroot_option
@debug_option
@json_option
def regs(
    core: str, tid: int | None, all_: bool, sysroot: str | None, debug_files: tuple[str, ...], as_json: bool
) -> None:
    """.trap: general registers, flags decoded, and the instruction at the program counter.

    Kernel vmcores: the trap frame of the crashed task (the faulting instruction's registers).
    """
    from notmyfault.render.analysis import regs_json, regs_text

    with opened(core, True, debug_files, sysroot=sysroot) as dump:
        r = dump.registers(tid)
        extended = r.extended if all_ else None
        _emit(
            as_json,
            lambda: regs_json(r.thread, r.instruction, extended),
            lambda: regs_text(r.thread, r.instruction, r.where, extended),
        )


@click.command()
@core_argument
@click.option("--sort", type=click.Choice(["bytes", "count"]), default="bytes", show_default=True)
@click.option("--top", type=click.IntRange(1), help="Only the first N tags.")
@debug_option
@json_option
def poolused(core: str, sort: str, top: int | None, debug_files: tuple[str, ...], as_json: bool) -> None:
    """!poolused: tagged leak blocks by tag, with count and bytes, largest first; else glibc's main heap.

    Kernel vmcores: slab caches (a cache named after the tag is the tag's nonpaged pool) and vmalloc by caller.
    """
    from notmyfault.render.analysis import pool_json, pool_text
    from notmyfault.render.kernel import slab_json, slab_text

    with opened(core, True, debug_files) as dump:
        pools = dump.pools()
        if pools.kind == "kernel":
            slabs, vmallocs = pools.slabs, pools.vmallocs
            if sort == "count":
                slabs.sort(key=lambda s: (-s.active_objects, s.name))
            _emit(
                as_json,
                lambda: slab_json(slabs[:top], vmallocs[:top]),
                lambda: slab_text(slabs, vmallocs, top),
            )
            return
        usage = pools.usage
        if sort == "count":
            usage.sort(key=lambda u: (-u.blocks, u.tag))
        if top is not None:
            usage = usage[:top]
        _emit(as_json, lambda: pool_json(usage, pools.heap), lambda: pool_text(usage, top, pools.heap))


@click.command()
@core_argument
@click.option("-v", "verbose_name", metavar="NAME", help="lmvm: details of the module NAME (e.g. myfault).")
@exe_option
@sysroot_option
@debug_option
@debuginfod_option
@json_option
def modules(
    core: str,
    verbose_name: str | None,
    exe: str | None,
    sysroot: str | None,
    debug_files: tuple[str, ...],
    as_json: bool,
) -> None:
    """lm / lmvm: modules with load range, build-id, and whether the file on disk matches."""
    from notmyfault.render.kernel import kernel_modules_json, kernel_modules_text
    from notmyfault.render.memory import (
        drivers_json,
        drivers_text,
        minidump_modules_json,
        minidump_modules_text,
        modules_json,
        modules_text,
    )

    details = verbose_name is not None
    with opened(core, True, debug_files, exe, sysroot) as dump:
        found = dump.modules(verbose_name, versions=as_json)
        mods = found.modules
        if found.kind == "kernel":
            _emit(as_json, lambda: kernel_modules_json(mods), lambda: kernel_modules_text(mods, details))
        elif found.kind == "drivers":
            _emit(
                as_json,
                lambda: drivers_json(mods, found.versions),
                lambda: drivers_text(mods, details, found.versions),
            )
        elif found.kind == "minidump":
            _emit(as_json, lambda: minidump_modules_json(mods), lambda: minidump_modules_text(mods, details))
        else:
            _emit(as_json, lambda: modules_json(mods), lambda: modules_text(mods, details))


@click.command()
@core_argument
@click.option(
    "--top",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="How many of the biggest mappings to list.",
)
@debug_option
@json_option
def vm(core: str, top: int, debug_files: tuple[str, ...], as_json: bool) -> None:
    """!vm: memory by kind (file, anonymous, heap, stacks, tagged pools), the biggest mappings, warnings.

    Kernel vmcores: the kernel's memory counters, with a warning when unreclaimable slab dominates.
    """
    from notmyfault.render.kernel import kernel_vm_json, kernel_vm_text
    from notmyfault.render.memory import vm_json, vm_text, windows_vm_json, windows_vm_text

    with opened(core, True, debug_files) as dump:
        memory = dump.memory(top)
        summary = memory.summary
        if memory.kind == "linux":
            _emit(as_json, lambda: kernel_vm_json(summary), lambda: kernel_vm_text(summary))
        elif memory.kind == "windows":
            _emit(as_json, lambda: windows_vm_json(summary), lambda: windows_vm_text(summary))
        else:
            _emit(as_json, lambda: vm_json(summary), lambda: vm_text(summary))


@click.command()
@core_argument
@click.argument("pattern")
@click.option("--module", "module", metavar="M", help="Search only the mappings of module M (e.g. myfault).")
@click.option("--hex", "as_hex", is_flag=True, help="PATTERN is hex bytes (e.g. 4c65616b).")
@debug_option
@json_option
def search(
    core: str, pattern: str, module: str | None, as_hex: bool, debug_files: tuple[str, ...], as_json: bool
) -> None:
    """s -a: find a string (or --hex bytes) in the dump and in the mapped files it left out.

    Exits 1 when nothing is found (as grep does), 0 with a hit."""
    from notmyfault.render.memory import search_json, search_text

    try:
        needle = bytes.fromhex(pattern) if as_hex else pattern.encode()
    except ValueError:
        fail(f"--hex: {pattern!r} is not hex bytes (e.g. 4c65616b)")
    if not needle:
        fail("give a non-empty pattern")
    with opened(core, True, debug_files) as dump:
        hits = dump.search(needle, module)
        _emit(as_json, lambda: search_json(needle, hits), lambda: search_text(hits))
    if not hits:
        sys.exit(EXIT_NO_MATCH)


@click.command()
@core_argument
@click.argument("target", metavar="ADDRESS|SYMBOL")
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 100_000),
    default=8,
    show_default=True,
    help="How many instructions.",
)
@click.option("--att", is_flag=True, help="AT&T syntax (x86).")
@exe_option
@sysroot_option
@debug_option
@debuginfod_option
@json_option
def disasm(
    core: str,
    target: str,
    count: int,
    att: bool,
    exe: str | None,
    sysroot: str | None,
    debug_files: tuple[str, ...],
    as_json: bool,
) -> None:
    """u: disassemble at an address or a symbol (minidumps and kernel dumps: an address)."""
    from notmyfault.render.memory import disasm_json, disasm_text

    with opened(core, True, debug_files, exe, sysroot) as dump:
        found = dump.disassemble(target, count, "att" if att else "intel")
        _emit(
            as_json,
            lambda: disasm_json(found.instructions),
            lambda: disasm_text(found.instructions, found.where),
        )


COMMANDS = (analyze, stack, regs, poolused, modules, vm, search, disasm)
