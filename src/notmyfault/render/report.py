"""The dump's story as headed sections, the way the seed's WinDbg session told it.

Shared by the front ends that show a whole analysis at once (``notmyfault
demo`` prints the sections, ``notmyfault ui`` shows them as tabs): it opens
the dump once, runs each analysis and formats it with the text renderers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from notmyfault.analysis.crash import CrashAnalysis

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
    """Analyse the dump at ``path``: ``!analyze -v``, ``.trap``, ``kvL``, ``!vm``, ``!poolused``, ``lmvm``.

    With ``tag`` (a pool tag such as ``Leak``), a search for it in myfault's
    module is added, as the seed did to find who owns the tag (in the whole
    dump when myfault does not hold it, the first SEARCH_SHOWN hits).  Raises
    DumpError for a dump that cannot be read.
    """
    from notmyfault.api import DumpError, open_core
    from notmyfault.render.analysis import analysis_text, pool_text, regs_text, stack_text
    from notmyfault.render.memory import modules_text, search_text, vm_text

    with open_core(path) as dump:
        result = dump.analysis()
        sections = [Section("analyze", f"!analyze -v    ({os.path.basename(path)})", "Analysis",
                            analysis_text(result))]  # fmt: skip
        tids = dump.thread_ids
        tid = result.crashed_tid if result.crashed_tid in tids else tids[0]
        try:
            regs = dump.registers(tid)
            trap = regs_text(regs.thread, regs.instruction, None)
        except DumpError as e:  # an architecture whose registers are not decoded
            trap = str(e)
        sections.append(Section("trap", ".trap", "Registers", trap))
        sections.append(
            Section(
                "stack",
                "kvL",
                "Stack",
                stack_text(
                    tid,
                    list(result.frames[:frames]),
                    None if any(f.python for f in result.frames) else result.python,
                ),
            )
        )
        pools = (
            dump.pools()
        )  # glibc's heap is walked once: !vm's heap line, and !poolused when nothing is tagged
        memory = dump.memory(top=5, pools=pools)
        sections.append(Section("vm", "!vm", "Memory", vm_text(memory.summary)))
        sections.append(
            Section(
                "poolused",
                "!poolused /t 3 2",
                "Pool",
                pool_text(pools.usage, 3, None if pools.usage else pools.heap),
            )
        )
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
        except DumpError:  # a core of another program: the section says there is no such module
            myfault = []
        mods = modules_text(myfault, details=True)
        sections.append(Section("modules", "lmvm myfault", "Module", mods))
    return DumpReport(path, result, tuple(sections))
