"""notmyfault: a fault lab for Linux.

Crash, hang and leak on purpose inside a native module named ``myfault``, make sure the fault leaves
a core dump and say where it is, and analyse the dump the way WinDbg analysed myfault.sys's crashes.

As a library (docs/api.md)::

    import notmyfault

    with notmyfault.open("core.1234") as dump:
        analysis = dump.analysis()
        print(analysis.crash_class, analysis.probably_caused_by)

The names exported here (from ``notmyfault.api``) are the public API; so are the faces of
``notmyfault.faults``, ``notmyfault.capture``, ``notmyfault.triage``, ``notmyfault.lab``,
``notmyfault.ui`` and ``notmyfault.base``. Every other module is internal.
"""

from typing import TYPE_CHECKING

from notmyfault.base.lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from notmyfault.api import (
        CrashAnalysis,
        Disassembly,
        Dump,
        DumpError,
        Frame,
        Hit,
        Instruction,
        Kind,
        Memory,
        Modules,
        Pools,
        Provenance,
        PythonFrame,
        PythonThread,
        Registers,
        Rules,
        Stacks,
        ThreadStack,
        UnreadableMemory,
        load_rules,
        open,
        open_core,
    )

_API = (
    "CrashAnalysis",
    "Disassembly",
    "Dump",
    "DumpError",
    "Frame",
    "Hit",
    "Instruction",
    "Kind",
    "Memory",
    "Modules",
    "Pools",
    "Provenance",
    "PythonFrame",
    "PythonThread",
    "Registers",
    "Rules",
    "Stacks",
    "ThreadStack",
    "UnreadableMemory",
    "debuginfod",
    "load_rules",
    "open",
    "open_core",
)

__all__ = [
    "CrashAnalysis",
    "Disassembly",
    "Dump",
    "DumpError",
    "Frame",
    "Hit",
    "Instruction",
    "Kind",
    "Memory",
    "Modules",
    "Pools",
    "Provenance",
    "PythonFrame",
    "PythonThread",
    "Registers",
    "Rules",
    "Stacks",
    "ThreadStack",
    "UnreadableMemory",
    "__version__",
    "debuginfod",
    "load_rules",
    "open",
    "open_core",
]

__getattr__, __dir__ = lazy_exports(__name__, {name: f"notmyfault.api:{name}" for name in _API})
