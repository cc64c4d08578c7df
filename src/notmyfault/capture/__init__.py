"""Capture: make sure a fault leaves a core dump, and find it afterwards.

- :mod:`.pattern`: what kernel.core_pattern means, and the file name it gives a crash;
- :mod:`.config`: this machine's dump settings and the verdict (``notmyfault dumpconfig``);
- :mod:`.prepare`: what a process does to itself before a fault (limits, filter, dumpable);
- :mod:`.watch`: run a crashing child, wait for it, and locate the dump it left;
- :mod:`.livecore`: a core of a live process written by our own code (``notmyfault dump PID``),
  and :mod:`.triggers`: when to write it (CPU, memory, a signal, exit);
- :mod:`.inventory`: the dumps that other collectors kept (``notmyfault list``).

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: dumps, base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.capture.config import (
        DumpSettings,
        Verdict,
        assess,
        cache_dir,
        default_dump_dir,
        probe,
        read_kernel_dump,
        state_dir,
        with_pattern,
    )
    from notmyfault.capture.inventory import inventory as dump_inventory
    from notmyfault.capture.livecore import Attached, DumpFailed, write_core
    from notmyfault.capture.prepare import prepare_current_process
    from notmyfault.capture.triggers import Usage, wait_for_exit, wait_for_signal, wait_for_usage
    from notmyfault.capture.watch import (
        CHILD_COMM,
        CrashInterrupted,
        CrashRun,
        crash_facts,
        crash_in_child,
        expected_dump_glob,
    )

_EXPORTS = {
    "Attached": "notmyfault.capture.livecore:Attached",
    "CHILD_COMM": "notmyfault.capture.watch:CHILD_COMM",
    "CrashInterrupted": "notmyfault.capture.watch:CrashInterrupted",
    "CrashRun": "notmyfault.capture.watch:CrashRun",
    "DumpFailed": "notmyfault.capture.livecore:DumpFailed",
    "DumpSettings": "notmyfault.capture.config:DumpSettings",
    "Usage": "notmyfault.capture.triggers:Usage",
    "Verdict": "notmyfault.capture.config:Verdict",
    "assess": "notmyfault.capture.config:assess",
    "cache_dir": "notmyfault.capture.config:cache_dir",
    "crash_facts": "notmyfault.capture.watch:crash_facts",
    "crash_in_child": "notmyfault.capture.watch:crash_in_child",
    "default_dump_dir": "notmyfault.capture.config:default_dump_dir",
    "dump_inventory": "notmyfault.capture.inventory:inventory",
    "expected_dump_glob": "notmyfault.capture.watch:expected_dump_glob",
    "prepare_current_process": "notmyfault.capture.prepare:prepare_current_process",
    "probe": "notmyfault.capture.config:probe",
    "read_kernel_dump": "notmyfault.capture.config:read_kernel_dump",
    "state_dir": "notmyfault.capture.config:state_dir",
    "wait_for_exit": "notmyfault.capture.triggers:wait_for_exit",
    "wait_for_signal": "notmyfault.capture.triggers:wait_for_signal",
    "wait_for_usage": "notmyfault.capture.triggers:wait_for_usage",
    "with_pattern": "notmyfault.capture.config:with_pattern",
    "write_core": "notmyfault.capture.livecore:write_core",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = [
    "CHILD_COMM",
    "Attached",
    "CrashInterrupted",
    "CrashRun",
    "DumpFailed",
    "DumpSettings",
    "Usage",
    "Verdict",
    "assess",
    "cache_dir",
    "crash_facts",
    "crash_in_child",
    "default_dump_dir",
    "dump_inventory",
    "expected_dump_glob",
    "prepare_current_process",
    "probe",
    "read_kernel_dump",
    "state_dir",
    "wait_for_exit",
    "wait_for_signal",
    "wait_for_usage",
    "with_pattern",
    "write_core",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
