"""``notmyfault shell DUMP``: drgn's REPL on a dump, with notmyfault's pages one call away.

For the questions the pages do not answer (locals, expressions, memory, types), as ``drgn -c
core`` gives them, with ``analyze()``, ``stack()``, ``regs()``, ``modules()`` printing what the
commands print and ``analysis()`` returning the result object.
"""

from __future__ import annotations

from typing import Any

import click

import notmyfault
from notmyfault.cli.analyze import core_argument, debug_option, debuginfod_option, exe_option, sysroot_option
from notmyfault.cli.common import fail

HELPERS = """notmyfault: analyze(), stack(tid=None), regs(tid=None), modules() print the pages;
analysis() returns the analysis (CrashAnalysis); prog is drgn's program, dump the opened notmyfault.Dump."""


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

    with opened(core, True, debug_files, exe, sysroot) as dump:
        if dump.kind not in ("elf-core", "vmcore"):
            fail(
                f"{core}: the shell is drgn's, which reads ELF process cores and Linux vmcores, not this dump"
            )
        helpers = _helpers(dump)

        def add(globals_: dict[str, Any]) -> dict[str, Any]:
            return {**globals_, **helpers, "dump": dump}

        drgn.cli.run_interactive(
            dump.drgn_program(), banner_func=lambda banner: f"{banner}\n{HELPERS}", globals_func=add
        )


def _helpers(dump: notmyfault.Dump) -> dict[str, Any]:
    """The pages one call away: analyze(), stack(), and for process cores regs() and modules()."""
    from notmyfault.render.analysis import analysis_text, regs_text, stack_text
    from notmyfault.render.memory import modules_text

    def analyze() -> None:
        print(analysis_text(dump.analysis()))

    def stack(tid: int | None = None) -> None:
        for s in dump.stacks(tid, python=False).threads:
            print(stack_text(s.tid, list(s.frames)))

    helpers: dict[str, Any] = {"analysis": dump.analysis, "analyze": analyze, "stack": stack}
    if dump.kind == "elf-core":

        def regs(tid: int | None = None) -> None:
            print(regs_text(dump.registers(tid).thread, None, None))

        def modules() -> None:
            print(modules_text(dump.modules().modules, False))

        helpers.update(regs=regs, modules=modules)
    return helpers
