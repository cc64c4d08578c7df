"""The injector: the crash catalog and the code that commits faults through myfault.

- ``catalog``: the crash types as data; ``crash``, ``hang``: commit one in this process;
- ``leak``: paced leaks of tagged blocks (``pool``: the pool header; ``sysv``: the kernel pool's
  message queues), with ``safety``'s floor of free memory;
- ``kernel``: myfault.ko's names, its ioctl requests and its kbuild build (sources in native/kernel).

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: native, base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.faults.catalog import CATALOG, DEFAULT_SIGNAL, UnknownCrashType, lookup
    from notmyfault.faults.crash import FaultSurvived, check_signal, commit
    from notmyfault.faults.hang import HANGS, commit_hang, lookup_hang
    from notmyfault.faults.kernel import CRASHES as KERNEL_CRASHES
    from notmyfault.faults.kernel import HANGS as KERNEL_HANGS
    from notmyfault.faults.kernel import (
        OP_FREE,
        OP_STATUS,
        POOLS,
        KernelError,
        KernelHeadersMissing,
        Request,
        crash_request,
        default_kdir,
        hang_request,
        leak_request,
        send,
    )
    from notmyfault.faults.kernel import build as build_kernel_module
    from notmyfault.faults.leak import Leaker, LeakRefused, Pool, counters, memlock_allows, plan_leak
    from notmyfault.faults.safety import check_floor, floor_bytes, meminfo
    from notmyfault.faults.sysv import held, mine, remove

_EXPORTS = {
    "CATALOG": "notmyfault.faults.catalog:CATALOG",
    "DEFAULT_SIGNAL": "notmyfault.faults.catalog:DEFAULT_SIGNAL",
    "FaultSurvived": "notmyfault.faults.crash:FaultSurvived",
    "HANGS": "notmyfault.faults.hang:HANGS",
    "KERNEL_CRASHES": "notmyfault.faults.kernel:CRASHES",
    "KERNEL_HANGS": "notmyfault.faults.kernel:HANGS",
    "KernelError": "notmyfault.faults.kernel:KernelError",
    "KernelHeadersMissing": "notmyfault.faults.kernel:KernelHeadersMissing",
    "LeakRefused": "notmyfault.faults.leak:LeakRefused",
    "Leaker": "notmyfault.faults.leak:Leaker",
    "OP_FREE": "notmyfault.faults.kernel:OP_FREE",
    "OP_STATUS": "notmyfault.faults.kernel:OP_STATUS",
    "POOLS": "notmyfault.faults.kernel:POOLS",
    "Pool": "notmyfault.faults.leak:Pool",
    "Request": "notmyfault.faults.kernel:Request",
    "UnknownCrashType": "notmyfault.faults.catalog:UnknownCrashType",
    "build_kernel_module": "notmyfault.faults.kernel:build",
    "check_floor": "notmyfault.faults.safety:check_floor",
    "check_signal": "notmyfault.faults.crash:check_signal",
    "commit": "notmyfault.faults.crash:commit",
    "commit_hang": "notmyfault.faults.hang:commit_hang",
    "counters": "notmyfault.faults.leak:counters",
    "crash_request": "notmyfault.faults.kernel:crash_request",
    "default_kdir": "notmyfault.faults.kernel:default_kdir",
    "floor_bytes": "notmyfault.faults.safety:floor_bytes",
    "hang_request": "notmyfault.faults.kernel:hang_request",
    "held": "notmyfault.faults.sysv:held",
    "leak_request": "notmyfault.faults.kernel:leak_request",
    "lookup": "notmyfault.faults.catalog:lookup",
    "lookup_hang": "notmyfault.faults.hang:lookup_hang",
    "meminfo": "notmyfault.faults.safety:meminfo",
    "memlock_allows": "notmyfault.faults.leak:memlock_allows",
    "mine": "notmyfault.faults.sysv:mine",
    "plan_leak": "notmyfault.faults.leak:plan_leak",
    "remove": "notmyfault.faults.sysv:remove",
    "send": "notmyfault.faults.kernel:send",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = [
    "CATALOG",
    "DEFAULT_SIGNAL",
    "HANGS",
    "KERNEL_CRASHES",
    "KERNEL_HANGS",
    "OP_FREE",
    "OP_STATUS",
    "POOLS",
    "FaultSurvived",
    "KernelError",
    "KernelHeadersMissing",
    "LeakRefused",
    "Leaker",
    "Pool",
    "Request",
    "UnknownCrashType",
    "build_kernel_module",
    "check_floor",
    "check_signal",
    "commit",
    "commit_hang",
    "counters",
    "crash_request",
    "default_kdir",
    "floor_bytes",
    "hang_request",
    "held",
    "leak_request",
    "lookup",
    "lookup_hang",
    "meminfo",
    "memlock_allows",
    "mine",
    "plan_leak",
    "remove",
    "send",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
