"""``notmyfault shell DUMP``: drgn's REPL on a dump, with notmyfault's pages one call away.

For the questions the pages do not answer (locals, expressions, memory, types), as ``drgn -c
core`` gives them, with ``analyze()``, ``stack()``, ``regs()``, ``modules()`` printing what the
commands print and ``analysis()`` returning the result object.
"""

from __future__ import annotations

from typing import Any

import click

from notmyfault.cli.analyze import core_argument, debug_option, debuginfod_option, exe_option, sysroot_option
from notmyfault.cli.common import fail

HELPERS = """notmyfault: analyze(), stack(tid=None), regs(tid=None), modules() print the pages;
analysis() returns the analysis (CrashAnalysis); prog is drgn's program, dump the opened dump."""


@click.command()
@core_argument
@exe_option
@sysroot_option
@debug_option
@debuginfod_option
def shell(core: str, exe: str | None, sysroot: str | None, debug_files: tuple[str, ...]) -> None:
    """drgn's interactive shell on DUMP (an ELF process core or a Linux vmcore), with notmyfault's
    helpers: analyze(), stack(), regs(), modules(), analysis()."""
    import drgn.cli

    from notmyfault.cli.analyze import opened
    from notmyfault.dumps import ElfCore, Vmcore

    with opened(core, minidumps=True, debug_files=debug_files) as dump:
        if isinstance(dump, Vmcore):
            helpers, prog = _vmcore_helpers(dump), dump.prog
        elif isinstance(dump, ElfCore):
            helpers, prog = _core_helpers(dump, exe, sysroot)
        else:
            fail(
                f"{core}: the shell is drgn's, which reads ELF process cores and Linux vmcores, not this dump"
            )

        def add(globals_: dict[str, Any]) -> dict[str, Any]:
            return {**globals_, **helpers, "dump": dump}

        drgn.cli.run_interactive(prog, banner_func=lambda banner: f"{banner}\n{HELPERS}", globals_func=add)


def _core_helpers(core: Any, exe: str | None, sysroot: str | None) -> tuple[dict[str, Any], Any]:
    from notmyfault.analysis.crash import analyze as run
    from notmyfault.memory.modules import modules as list_modules
    from notmyfault.render.analysis import analysis_text, regs_text, stack_text
    from notmyfault.render.memory import modules_text
    from notmyfault.unwind.elf import load_program, thread_frames

    program = load_program(core, exe, sysroot)
    cached: dict[str, Any] = {}

    def analysis() -> Any:
        if "a" not in cached:
            cached["a"] = run(core, exe, sysroot, program)
        return cached["a"]

    def thread(tid: int | None) -> Any:
        found = next((t for t in core.threads if tid is None or t.tid == tid), None)
        if found is None:
            raise LookupError(f"no thread {tid}: {[t.tid for t in core.threads]}")
        return found

    def analyze() -> None:
        print(analysis_text(analysis()))

    def stack(tid: int | None = None) -> None:
        t = thread(tid)
        print(stack_text(t.tid, thread_frames(program, core, t.tid)))

    def regs(tid: int | None = None) -> None:
        print(regs_text(thread(tid), None, None))

    def modules() -> None:
        print(modules_text(list_modules(program, core), False))

    return {
        "analysis": analysis,
        "analyze": analyze,
        "stack": stack,
        "regs": regs,
        "modules": modules,
    }, program.prog


def _vmcore_helpers(vm: Any) -> dict[str, Any]:
    from notmyfault.kernel.vmcore import analyze_vmcore, task_stacks
    from notmyfault.render.analysis import analysis_text, stack_text

    cached: dict[str, Any] = {}

    def analysis() -> Any:
        if "a" not in cached:
            cached["a"] = analyze_vmcore(vm)
        return cached["a"]

    def analyze() -> None:
        print(analysis_text(analysis()))

    def stack(tid: int | None = None) -> None:
        for t, frames in task_stacks(vm, tid, False):
            print(stack_text(t, list(frames)))

    return {"analysis": analysis, "analyze": analyze, "stack": stack}
