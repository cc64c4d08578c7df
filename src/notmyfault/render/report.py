"""The dump's story as headed sections, the way the seed's WinDbg session told it.

Shared by the front ends that show a whole analysis at once (``notmyfault
demo`` prints the sections, ``notmyfault ui`` shows them as tabs): it opens
the dump once, runs each analysis and formats it with the text renderers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from notmyfault.analysis.result import CrashAnalysis

SEARCH_SHOWN = 20
"""How many search hits a report lists."""


@dataclass(frozen=True)
class Section:
    """One part of the report."""

    key: str
    """A short stable name: analyze, trap, stack, vm, poolused, search, modules."""
    command: str
    """The WinDbg command of the seed that this section answers."""
    title: str
    """What a tab or heading calls it."""
    text: str


@dataclass(frozen=True)
class DumpReport:
    """The analysis of one dump and its sections, in the seed's order."""

    path: str
    analysis: CrashAnalysis
    sections: tuple[Section, ...]

    def section(self, key: str) -> Section:
        """The section named ``key``; KeyError if there is none."""
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(key)


def dump_report(path: str, tag: str | None = None, frames: int = 12) -> DumpReport:
    """Analyse the dump at ``path`` (any format the analyzer reads: an ELF core, a minidump, a
    Windows kernel dump, a vmcore): ``!analyze -v``, ``.trap``, ``kvL``, ``!vm``, ``!poolused``,
    ``lmvm``. A section the dump's format cannot give says why, in its place.

    With ``tag`` (a pool tag such as ``Leak``), a search for it in myfault's
    module is added, as the seed did to find who owns the tag (in the whole
    dump when myfault does not hold it, the first SEARCH_SHOWN hits).  Raises
    DumpError for a dump that cannot be read.
    """
    from notmyfault.api import DumpError
    from notmyfault.api import open as open_dump
    from notmyfault.render.analysis import analysis_text, pool_text, regs_text, stack_text
    from notmyfault.render.kernel import kernel_vm_text, slab_text
    from notmyfault.render.memory import modules_text, search_text, vm_text, windows_vm_text

    def attempt(make: Callable[[], str]) -> str:
        try:
            return make()
        except DumpError as e:  # what this format does not hold, or an architecture not decoded
            return str(e)

    with open_dump(path) as dump:
        result = dump.analysis(native_locals=True)  # the stack shows each frame's arguments and locals
        sections = [Section("analyze", f"!analyze -v    ({os.path.basename(path)})", "Analysis",
                            analysis_text(result))]  # fmt: skip
        tids = dump.thread_ids
        tid = result.crashed_tid if result.crashed_tid in tids or not tids else tids[0]

        def trap() -> str:
            regs = dump.registers(tid)
            return regs_text(regs.thread, regs.instruction, None)

        sections.append(Section("trap", ".trap", "Registers", attempt(trap)))
        python = None if any(f.python for f in result.frames) else result.python
        stack = stack_text(tid or 0, list(result.frames[:frames]), python, verbose=True)
        sections.append(Section("stack", "kvL", "Stack", stack))
        pools: Any = None
        try:  # glibc's heap is walked once: !vm's heap line, and !poolused when nothing is tagged
            pools = dump.pools()
        except DumpError as e:
            no_pools = str(e)

        def memory() -> str:
            m = (
                dump.memory(top=5, pools=pools)
                if pools is not None and pools.kind == "process"
                else dump.memory(5)
            )
            if m.kind == "linux":
                return kernel_vm_text(m.summary)
            return windows_vm_text(m.summary) if m.kind == "windows" else vm_text(m.summary)

        sections.append(Section("vm", "!vm", "Memory", attempt(memory)))
        if pools is None:
            pooled = no_pools
        elif pools.kind == "kernel":
            pooled = slab_text(pools.slabs, pools.vmallocs, 3)
        else:
            pooled = pool_text(pools.usage, 3, None if pools.usage else pools.heap)
        sections.append(Section("poolused", "!poolused /t 3 2", "Pool", pooled))
        if tag:
            command = f's -a myfault "{tag}"'
            try:
                hits = dump.search(tag.encode(), "myfault")
            except DumpError:  # no myfault in this process
                hits = []
            if not hits:  # a tag of the user's own: where it lies in the whole dump
                hits, command = dump.search(tag.encode()), f's -a (the whole dump) "{tag}"'
            text = f"{len(hits)} hits\n{search_text(hits[:SEARCH_SHOWN])}" if hits else search_text(hits)
            if len(hits) > SEARCH_SHOWN:
                text += f"\n... and {len(hits) - SEARCH_SHOWN} more ('notmyfault search' lists them all)"
            sections.append(Section("search", command, "Search", text))
        try:
            myfault = dump.modules("myfault").modules
        except DumpError:  # a dump of another program: the section says there is no such module
            myfault = []
        mods = (
            modules_text(myfault, details=True)
            if myfault
            else f"no module named myfault in this dump ('notmyfault modules {path}' lists its modules)"
        )
        sections.append(Section("modules", "lmvm myfault", "Module", mods))
    return DumpReport(path, result, tuple(sections))
