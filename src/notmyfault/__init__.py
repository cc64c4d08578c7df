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

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: `import notmyfault` stays cheap

__version__ = "0.1.0"

if TYPE_CHECKING:
    from notmyfault.api import (
        DEFAULT_RULES,
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
        SignFrame,
        Stacks,
        ThreadStack,
        UnreadableMemory,
        bucket_id,
        bucket_key,
        debuginfod,
        failure_kind,
        is_dump,
        limit_unpacked,
        load_rules,
        open,
        open_core,
        prefetch,
        program_name,
        signature_of,
    )

_API = (
    "CrashAnalysis",
    "DEFAULT_RULES",
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
)

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
    "__version__",
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

__getattr__, __dir__ = lazy_exports(__name__, {name: f"notmyfault.api:{name}" for name in _API})
