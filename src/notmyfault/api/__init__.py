"""The public library: what ``import notmyfault`` gives scripts, and what the front ends are built on.

``notmyfault.open(path)`` opens any dump and returns a :class:`Dump`, whose methods are the seed's
WinDbg session: ``analysis()``, ``stacks()`` and ``frames()``, ``registers()``, ``memory()``,
``pools()``, ``modules()``, ``read()`` and ``search()``, ``disassemble()``, ``signature()`` and
``bucket()``. docs/api.md shows it in use; its examples run in the tests.

Everything under ``notmyfault`` that this package and the faces of the other packages
(``notmyfault.faults``, ``notmyfault.capture``, ``notmyfault.triage``, ``notmyfault.lab``,
``notmyfault.ui``, ``notmyfault.base``) do not export is internal and may change any day.

May import: kernel, memory, analysis, unwind, dumps, base.
"""

from notmyfault.analysis.result import CrashAnalysis, Instruction
from notmyfault.analysis.signature import (
    DEFAULT_RULES,
    Rules,
    SignFrame,
    bucket_id,
    bucket_key,
    failure_kind,
    load_rules,
)
from notmyfault.analysis.signature import program as program_name
from notmyfault.analysis.signature import signature as signature_of
from notmyfault.api.dump import (
    Disassembly,
    Dump,
    Kind,
    Memory,
    Modules,
    Pools,
    Provenance,
    Registers,
    Stacks,
    ThreadStack,
    debuginfod,
    limit_unpacked,
    open,
    open_core,
    prefetch,
)
from notmyfault.dumps import DumpError, UnreadableMemory, is_dump
from notmyfault.memory.search import Hit
from notmyfault.unwind.frames import Frame, PythonFrame
from notmyfault.unwind.python import PythonThread

__all__ = [
    "DEFAULT_RULES",
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
    "SignFrame",
    "Stacks",
    "ThreadStack",
    "UnreadableMemory",
    "bucket_id",
    "bucket_key",
    "debuginfod",
    "failure_kind",
    "is_dump",
    "limit_unpacked",
    "load_rules",
    "open",
    "open_core",
    "prefetch",
    "program_name",
    "signature_of",
]
