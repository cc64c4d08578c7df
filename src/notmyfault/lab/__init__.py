"""``notmyfault lab``: a disposable QEMU guest that runs a real distribution kernel with myfault.ko.

- ``kit``: the kernel, its debug symbols and headers, fetched once; ``initramfs``: the guest's;
- ``machine``: QEMU and QMP; ``run``: one run, from boot to the vmcore.

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: faults, capture, dumps, base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.lab.kit import KitError, check_host, fetch
    from notmyfault.lab.machine import LabError
    from notmyfault.lab.run import Step
    from notmyfault.lab.run import run as run_lab

_EXPORTS = {
    "KitError": "notmyfault.lab.kit:KitError",
    "LabError": "notmyfault.lab.machine:LabError",
    "Step": "notmyfault.lab.run:Step",
    "check_host": "notmyfault.lab.kit:check_host",
    "fetch": "notmyfault.lab.kit:fetch",
    "run_lab": "notmyfault.lab.run:run",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = ["KitError", "LabError", "Step", "check_host", "fetch", "run_lab"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
