"""``notmyfault analyze / stack / regs / poolused``: the WinDbg session of the seed, on Linux cores.

Unusable input (not a core, truncated, corrupt, foreign) exits 2 with one line;
an unexpected failure inside the analysis exits 3 with one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import click

from notmyfault.cli.common import emit_json, fail

EXIT_INTERNAL = 3

core_argument = click.argument("core")


def _regular_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a path that is no regular file (a FIFO would make the reader wait forever)."""
    if value is not None and not os.path.isfile(value):
        what = "does not exist" if not os.path.lexists(value) else "is not a regular file"
        raise click.BadParameter(f"{value} {what}: give the executable's file")
    return value


exe_option = click.option(
    "--exe",
    type=click.Path(dir_okay=False),
    callback=_regular_file,
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
    from notmyfault.unwind import elf as unwind

    unwind.progress = lambda m: click.echo(m, err=True)
    if value is not None:
        if value and not os.environ.get("DEBUGINFOD_URLS", "").strip():
            fail(
                "--debuginfod: set DEBUGINFOD_URLS to the servers to ask (e.g. https://debuginfod.debian.net)"
            )
        os.environ[unwind.DEBUGINFOD_ENV] = "1" if value else "0"


debuginfod_option = click.option(
    "--debuginfod/--no-debuginfod",
    default=None,
    expose_value=False,
    callback=_set_debuginfod,
    help="Fetch missing executables and debug info by build-id from $DEBUGINFOD_URLS (default: when it "
    "is set, saying so), kept in ~/.cache/debuginfod_client.",
)


def symbol_store(symbols: str | None, urls: tuple[str, ...]) -> Any:
    """Where the minidump commands look for Breakpad symbols: the --symbols directory, then the cache of
    what the --symbols-url servers gave before, then those servers."""
    from notmyfault.capture.config import cache_dir
    from notmyfault.unwind.symfile import SymbolStore

    for url in urls:
        if not url.startswith(("http://", "https://")):
            fail(f"--symbols-url {url!r}: give an http:// or https:// URL")
    if not urls:
        return symbols
    return SymbolStore(
        [symbols] if symbols else [],
        list(urls),
        os.path.join(cache_dir(), "symbols"),
        say=lambda m: click.echo(m, err=True),
    )


debug_option = click.option(
    "--debug-file",
    "debug_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Kernel vmcores: a vmlinux or module (.ko) with debug information (repeatable); "
    "vmlinux and *.ko beside the dump are used too.",
)


@contextmanager
def opened(path: str, minidumps: bool = False, debug_files: tuple[str, ...] = ()) -> Iterator[Any]:
    """Open a dump (with ``minidumps``, a minidump, a Windows kernel dump or a vmcore too); turn every
    failure into a one-line error."""
    from notmyfault.dumps import DumpError, ElfCore, Vmcore, open_dump

    try:
        core = open_dump(path) if minidumps else open_dump(path, ElfCore)
    except DumpError as e:
        fail(str(e))
    if isinstance(core, Vmcore):
        core.extra_paths = list(debug_files)
    token = _TRUNCATION.set(getattr(core, "truncation", None))
    try:
        yield core
    except DumpError as e:
        fail(str(e))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        fail(
            f"analysing {path} failed: {type(e).__name__}: {e} (a bug in notmyfault: please report it)",
            EXIT_INTERNAL,
        )
    finally:
        _TRUNCATION.reset(token)
        core.close()


_TRUNCATION: ContextVar[str | None] = ContextVar("truncation", default=None)
"""What the dump that ``opened`` holds is missing (None: it is whole): every page says so."""


def _emit(as_json: bool, obj: Callable[[], Any], text: Callable[[], str]) -> None:
    """JSON (escaped by the encoder), or the page with every control character escaped; either says
    whether the dump is truncated (``truncated``, ``truncation``; a WARNING line on top of the page)."""
    from notmyfault.render.analysis import truncation_line
    from notmyfault.render.safe import terminal_safe

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
        click.echo(terminal_safe(page))


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
) -> None:
    """The !analyze -v page: crash class, arguments, faulting instruction, stack, and Probably caused by.

    Reads ELF process cores, minidumps (Windows, and Breakpad's of Linux), Windows kernel dumps and
    Linux kernel vmcores.
    """
    from notmyfault.analysis.crash import analyze as run
    from notmyfault.analysis.minidump import analyze_minidump
    from notmyfault.dumps import Minidump, Vmcore, WindowsKernelDump
    from notmyfault.kernel.vmcore import analyze_vmcore
    from notmyfault.kernel.windows import analyze_kernel_dump
    from notmyfault.render.analysis import analysis_json, analysis_text
    from notmyfault.render.safe import printable

    with opened(core, minidumps=True, debug_files=debug_files) as c:
        env: list[str] | None = None
        if show_env:
            if isinstance(c, Vmcore | WindowsKernelDump):
                fail(f"{core}: --show-environment reads process dumps (ELF cores, minidumps) only")
            env = c.environment
            if env is None:
                fail(
                    f"{core}: the dump does not hold the process's environment (no initial stack, no environ stream)"
                )
        if isinstance(c, Vmcore):
            result = analyze_vmcore(c)
        elif isinstance(c, Minidump):
            result = analyze_minidump(c, symbol_store(symbols, symbols_urls))
        elif isinstance(c, WindowsKernelDump):
            result = analyze_kernel_dump(c)
        else:
            result = run(c, exe, sysroot, python_locals=verbose)
        if env is None:
            _emit(
                as_json, lambda: analysis_json(result, verbose), lambda: analysis_text(result, verbose, side)
            )
        else:
            shown = env
            _emit(
                as_json,
                lambda: {**analysis_json(result, verbose), "environment": shown},
                lambda: "\n".join(
                    [analysis_text(result, verbose, side), "", "ENVIRONMENT:"]
                    + [f"  {printable(v)}" for v in shown]
                ),
            )


@click.command()
@core_argument
@click.option("--thread", "tid", type=int, help="This thread (default: the one that crashed).")
@click.option("--all", "all_threads", is_flag=True, help="Every thread.")
@exe_option
@sysroot_option
@symbols_option
@debug_option
@debuginfod_option
@click.option(
    "-v", "--verbose", is_flag=True, help="Python frames: the reprs of their arguments and locals too."
)
@side_options
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
) -> None:
    """kvL: the stack of the crashing thread (or --thread TID, or --all), and how each frame was found.

    A core of a CPython process shows each thread's Python frames where the eval loop runs them
    (--python: only those; --native: none), and marks the thread that holds the GIL.
    Kernel vmcores: the crashed task's stack (or --thread PID, or --all tasks).
    """
    from notmyfault.analysis.crash import python_stacks
    from notmyfault.dumps import Minidump, Vmcore, WindowsKernelDump
    from notmyfault.render import SCHEMA_VERSION
    from notmyfault.render.analysis import frame_json, python_thread_json, stack_text
    from notmyfault.render.safe import terminal_safe
    from notmyfault.unwind.elf import load_program, thread_frames
    from notmyfault.unwind.frames import Frame
    from notmyfault.unwind.minidump import Walker
    from notmyfault.unwind.python import PythonStacks, PythonThread, merge
    from notmyfault.unwind.windows import fp_chain_frames

    with opened(core, minidumps=True, debug_files=debug_files) as c:
        stacks: list[tuple[int, list[Frame]]]
        pystacks: PythonStacks | None = None
        if isinstance(c, Vmcore):
            from notmyfault.kernel.vmcore import task_stacks

            try:
                stacks = [(t, list(fs)) for t, fs in task_stacks(c, tid, all_threads)]
            except LookupError as e:
                fail(str(e))
        else:
            tids = [t.tid for t in c.threads]
            if not tids:
                fail(f"{core} records no threads")
            if tid is not None and tid not in tids:
                fail(f"the dump has no thread {tid}; its threads are {', '.join(map(str, tids))}")
            chosen = tids if all_threads else [tid if tid is not None else tids[0]]
            by_tid = {t.tid: t for t in c.threads}
            source = symbol_store(symbols, symbols_urls)
            if isinstance(c, Minidump):
                walker = Walker(c, source)
                # the dump writer's own thread is listed, not walked (its stack is the writer's)
                stacks = [(t, [] if t == c.dump_thread_id else walker.frames(by_tid[t])) for t in chosen]
            elif isinstance(c, WindowsKernelDump):
                stacks = [(t, fp_chain_frames(c, by_tid[t], source)) for t in chosen]
            else:
                program = load_program(c, exe, sysroot)
                stacks = [(t, thread_frames(program, c, t)) for t in chosen]
                if side != "native" or as_json:
                    pystacks = python_stacks(c, program, exe, sysroot, verbose)
        py: dict[int, PythonThread | None] = {t: pystacks.thread(t) if pystacks else None for t, _ in stacks}
        stacks = [(t, list(merge(fs, p) or fs) if (p := py[t]) else fs) for t, fs in stacks]
        if pystacks is not None and pystacks.error and not as_json:
            click.echo(
                terminal_safe(
                    f"notmyfault: a CPython process, but its Python frames could not be read: {pystacks.error}"
                ),
                err=True,
            )
        _emit(
            as_json,
            lambda: {
                "schema_version": SCHEMA_VERSION,
                "kind": "stacks",
                "python_error": pystacks.error if pystacks else None,
                "threads": [
                    {
                        "tid": t,
                        "frames": [frame_json(f, verbose) for f in fs],
                        "python": python_thread_json(py[t], verbose),
                    }
                    for t, fs in stacks
                ],
            },
            lambda: "\n\n".join(stack_text(t, fs, py[t], side, verbose) for t, fs in stacks),
        )


@click.command()
@core_argument
@click.option("--thread", "tid", type=int, help="This thread (default: the one that crashed).")
@sysroot_option
@debug_option
@json_option
def regs(
    core: str, tid: int | None, sysroot: str | None, debug_files: tuple[str, ...], as_json: bool
) -> None:
    """.trap: general registers, flags decoded, and the instruction at the program counter.

    Kernel vmcores: the trap frame of the crashed task (the faulting instruction's registers).
    """
    from notmyfault.analysis.crash import decode, decode_bytes
    from notmyfault.dumps import Minidump, UnreadableMemory, Vmcore, WindowsKernelDump
    from notmyfault.render.analysis import regs_json, regs_text

    with opened(core, minidumps=True, debug_files=debug_files) as c:
        if isinstance(c, Vmcore):
            from notmyfault.kernel.vmcore import trap_frame

            try:
                trap = trap_frame(c, tid)
            except LookupError as e:
                fail(str(e))
            if trap is None:
                fail(f"{core}: no registers: the crashed task's stack cannot be read and the log holds none")
            _emit(
                as_json,
                lambda: regs_json(trap, trap.instruction),
                lambda: regs_text(trap, trap.instruction, trap.where),
            )
            return
        threads = {t.tid: t for t in c.threads}
        if not threads:
            fail(f"{core} records no threads")
        if tid is not None and tid not in threads:
            fail(f"the dump has no thread {tid}; its threads are {', '.join(map(str, threads))}")
        t = threads[tid] if tid is not None else c.threads[0]
        if not t.regs:
            fail(f"registers of {c.arch} dumps are not decoded yet")
        insn, where = None, None
        if isinstance(c, (Minidump, WindowsKernelDump)):
            module = c.module_at(t.pc) if t.pc is not None else None
            where = f"in {module.name}" if module else None
            if t.pc is not None:
                try:
                    insn = decode_bytes(c.read(t.pc, 16), t.pc, c.arch)
                except UnreadableMemory:
                    insn = None
        else:
            insn = decode(c, t.pc, sysroot) if t.pc is not None else None
            mapping = c.file_at(t.pc) if t.pc is not None else None
            where = f"in {mapping.path}" if mapping else None
        _emit(as_json, lambda: regs_json(t, insn), lambda: regs_text(t, insn, where))


@click.command()
@core_argument
@click.option("--sort", type=click.Choice(["bytes", "count"]), default="bytes", show_default=True)
@click.option("--top", type=int, help="Only the first N tags.")
@debug_option
@json_option
def poolused(core: str, sort: str, top: int | None, debug_files: tuple[str, ...], as_json: bool) -> None:
    """!poolused: tagged leak blocks by tag, with count and bytes, largest first; else glibc's main heap.

    Kernel vmcores: slab caches (a cache named after the tag is the tag's nonpaged pool) and vmalloc by caller.
    """
    from notmyfault.dumps import Minidump, Vmcore, WindowsKernelDump
    from notmyfault.memory.heap import heap_summary
    from notmyfault.memory.pool import pool_usage
    from notmyfault.render.analysis import pool_json, pool_text

    with opened(core, minidumps=True, debug_files=debug_files) as c:
        if isinstance(c, Vmcore):
            from notmyfault.kernel.kmem import slab_usage, vmalloc_usage
            from notmyfault.render.kernel import slab_json, slab_text

            _need_types(c, "poolused")
            slabs, vmallocs = slab_usage(c), vmalloc_usage(c)
            if sort == "count":
                slabs.sort(key=lambda s: (-s.active_objects, s.name))
            _emit(
                as_json,
                lambda: slab_json(slabs[:top], vmallocs[:top]),
                lambda: slab_text(slabs, vmallocs, top),
            )
            return
        if isinstance(c, (Minidump, WindowsKernelDump)):
            from notmyfault.dumps import KERNEL_DUMP_COMMANDS, MINIDUMP_COMMANDS

            what = (
                f"a minidump: {MINIDUMP_COMMANDS} read minidumps"
                if isinstance(c, Minidump)
                else f"a Windows kernel crash dump: {KERNEL_DUMP_COMMANDS} read those"
            )
            fail(f"{core} is {what}; poolused reads Linux process cores and vmcores")
        usage = pool_usage(c)
        heap = heap_summary(c)
        if sort == "count":
            usage.sort(key=lambda u: (-u.blocks, u.tag))
        if top is not None:
            usage = usage[:top]
        _emit(as_json, lambda: pool_json(usage, heap), lambda: pool_text(usage, top, heap))


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
    from notmyfault.dumps import Minidump, Vmcore, WindowsKernelDump
    from notmyfault.memory.modules import modules as list_modules
    from notmyfault.memory.modules import select_modules
    from notmyfault.render.memory import (
        drivers_json,
        drivers_text,
        minidump_modules_json,
        minidump_modules_text,
        modules_json,
        modules_text,
    )
    from notmyfault.unwind.elf import load_program
    from notmyfault.unwind.names import module_matches

    with opened(core, minidumps=True, debug_files=debug_files) as c:
        if isinstance(c, Vmcore):
            from notmyfault.kernel.kmem import kernel_modules
            from notmyfault.render.kernel import kernel_modules_json, kernel_modules_text

            _need_types(c, "modules")
            kmods = [
                m for m in kernel_modules(c) if verbose_name is None or module_matches(m.name, verbose_name)
            ]
            if verbose_name is not None and not kmods:
                fail(f"no module named {verbose_name!r} is loaded in the dump")
            _emit(
                as_json,
                lambda: kernel_modules_json(kmods),
                lambda: kernel_modules_text(kmods, verbose_name is not None),
            )
            return
        if isinstance(c, WindowsKernelDump):
            drivers = [d for d in c.drivers if verbose_name is None or module_matches(d.name, verbose_name)]
            if not c.drivers:
                why = c.module_list_problem or "its memory is not read (see 'notmyfault analyze')"
                fail(f"{core} is a {c.dump_type} dump and no module list could be read: {why}")
            if verbose_name is not None and not drivers:
                fail(f"no module named {verbose_name!r} in the dump")
            details = verbose_name is not None or as_json
            versions = {d.base: c.image(d).version for d in drivers} if details else {}
            _emit(
                as_json,
                lambda: drivers_json(drivers, versions),
                lambda: drivers_text(drivers, verbose_name is not None, versions),
            )
            return
        if isinstance(c, Minidump):
            mini = list(c.modules)
            if verbose_name is not None:
                mini = [m for m in mini if module_matches(m.name, verbose_name)]
                if not mini:
                    names = ", ".join(sorted({m.name for m in c.modules}))
                    fail(f"no module named {verbose_name!r} in the dump; modules: {names}")
            _emit(
                as_json,
                lambda: minidump_modules_json(mini),
                lambda: minidump_modules_text(mini, verbose_name is not None),
            )
            return
        mods = list_modules(load_program(c, exe, sysroot), c)
        if verbose_name is not None:
            chosen = select_modules(mods, verbose_name)
            if not chosen:
                names = ", ".join(sorted({m.name for m in mods}))
                fail(f"no module named {verbose_name!r} in the dump; modules: {names}")
            mods = chosen
        _emit(as_json, lambda: modules_json(mods), lambda: modules_text(mods, verbose_name is not None))


@click.command()
@core_argument
@click.option(
    "--top", type=int, default=10, show_default=True, help="How many of the biggest mappings to list."
)
@debug_option
@json_option
def vm(core: str, top: int, debug_files: tuple[str, ...], as_json: bool) -> None:
    """!vm: memory by kind (file, anonymous, heap, stacks, tagged pools), the biggest mappings, warnings.

    Kernel vmcores: the kernel's memory counters, with a warning when unreclaimable slab dominates.
    """
    from notmyfault.dumps import Minidump, Vmcore, WindowsKernelDump
    from notmyfault.kernel.winvm import windows_vm
    from notmyfault.memory.pool import pool_usage
    from notmyfault.memory.vm import vm_summary
    from notmyfault.render.memory import vm_json, vm_text, windows_vm_json, windows_vm_text

    with opened(core, minidumps=True, debug_files=debug_files) as c:
        if isinstance(c, Vmcore):
            from notmyfault.kernel.kmem import kernel_vm
            from notmyfault.render.kernel import kernel_vm_json, kernel_vm_text

            _need_types(c, "vm")
            counters = kernel_vm(c)
            _emit(as_json, lambda: kernel_vm_json(counters), lambda: kernel_vm_text(counters))
            return
        if isinstance(c, WindowsKernelDump):
            kv = windows_vm(c)
            _emit(as_json, lambda: windows_vm_json(kv), lambda: windows_vm_text(kv))
            return
        if isinstance(c, Minidump):
            fail(f"{core} is a minidump: it holds no system memory counters for !vm")
        summary = vm_summary(c, pool_usage(c), top)
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
    """s -a: find a string (or --hex bytes) in the dump and in the mapped files it left out."""
    from notmyfault.dumps import Minidump, Vmcore, WindowsKernelDump
    from notmyfault.memory.search import has_module, search_memory
    from notmyfault.memory.search import search as run
    from notmyfault.render.memory import search_json, search_text

    try:
        needle = bytes.fromhex(pattern) if as_hex else pattern.encode()
    except ValueError:
        fail(f"--hex: {pattern!r} is not hex bytes (e.g. 4c65616b)")
    if not needle:
        fail("give a non-empty pattern")
    with opened(core, minidumps=True, debug_files=debug_files) as c:
        if module is not None and not isinstance(c, Vmcore) and not has_module(c, module):
            fail(
                f"--module {module!r}: the dump holds no such module ('notmyfault modules {core}' lists them)"
            )
        if isinstance(c, Vmcore):
            from notmyfault.kernel.kmem import kernel_search

            _need_types(c, "search")
            try:
                khits = kernel_search(c, needle, module)
            except LookupError as e:
                fail(str(e))
            _emit(as_json, lambda: search_json(needle, khits), lambda: search_text(khits))
            return
        hits = (
            search_memory(c, needle, module)
            if isinstance(c, (Minidump, WindowsKernelDump))
            else run(c, needle, module)
        )
        _emit(as_json, lambda: search_json(needle, hits), lambda: search_text(hits))


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
    from notmyfault.dumps import Minidump, Vmcore, WindowsKernelDump
    from notmyfault.memory.disasm import UnknownTarget, disassemble, disassemble_memory, resolve
    from notmyfault.render.memory import disasm_json, disasm_text
    from notmyfault.unwind.elf import load_program
    from notmyfault.unwind.names import demangle, short_name

    with opened(core, minidumps=True, debug_files=debug_files) as c:
        if isinstance(c, Vmcore):
            from notmyfault.kernel.vmcore import kernel_disasm

            try:
                kinsns, kwhere = kernel_disasm(c, target, count, "att" if att else "intel")
            except UnknownTarget as e:
                fail(str(e))
            _emit(as_json, lambda: disasm_json(kinsns), lambda: disasm_text(kinsns, kwhere))
            return
        if isinstance(c, (Minidump, WindowsKernelDump)):
            try:
                address = int(target, 0)
            except ValueError:
                fail(
                    f"{target!r}: give an address (0x...): symbols of minidumps and kernel dumps are not read"
                )
            try:
                insns = disassemble_memory(c, address, count, "att" if att else "intel")
            except UnknownTarget as e:
                fail(str(e))
            mod = c.module_at(address)
            where = {address: f"{short_name(mod.name)}+{address - mod.base:#x}"} if mod else {}
            _emit(as_json, lambda: disasm_json(insns), lambda: disasm_text(insns, where))
            return
        program = load_program(c, exe, sysroot)
        try:
            address = resolve(program, target)
            insns = disassemble(c, address, count, "att" if att else "intel", sysroot)
        except UnknownTarget as e:
            fail(str(e))
        where = {}
        try:
            sym = program.prog.symbol(address)
            where[address] = f"{demangle(sym.name)}+{address - sym.address:#x}"
        except LookupError:
            pass
        _emit(as_json, lambda: disasm_json(insns), lambda: disasm_text(insns, where))


def _need_types(c: Any, command: str) -> None:
    """Fail with one line when a vmcore's kernel types (the debug vmlinux) were not found."""
    if not c.has_types():
        fail(
            f"{command} on a vmcore needs the kernel's debug information: give --debug-file vmlinux "
            f"(Debian: linux-image-{c.release}-dbg; the lab keeps it beside its vmcores); "
            "'notmyfault analyze' works without it from the kernel log"
        )


COMMANDS = (analyze, stack, regs, poolused, modules, vm, search, disasm)
