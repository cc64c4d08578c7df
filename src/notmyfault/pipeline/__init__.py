"""The crash pipeline: crashes arrive (the kernel's core_pattern, uploads over HTTP), are kept whole
in a store, and are processed into the triage database.

- :mod:`.store`: the crash store: a crash whole or absent, queued, within coredump.conf-like limits;
- :mod:`.collect`: the core_pattern handler (``notmyfault collect``) and its install and uninstall;
- :mod:`.upload`: Breakpad/Crashpad uploads (multipart form data, gzip) and ELF cores, checked;
- :mod:`.process`: queued crashes through the triage workers into the database;
- :mod:`.client`: an upload as a Breakpad client sends it (``notmyfault submit``).

The names below are this package's public face (see docs/api.md); its modules are internal.

May import: triage (face), dumps, base.
"""

from notmyfault.base.lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported for it: a face stays cheap

if TYPE_CHECKING:
    from notmyfault.pipeline.client import SubmitFailed, forward, submit_dump
    from notmyfault.pipeline.collect import default_store, from_kernel, install, status, uninstall
    from notmyfault.pipeline.process import Processor
    from notmyfault.pipeline.store import CRASH_ID, Dropped, Limits, Store
    from notmyfault.pipeline.upload import (
        DUMP_FIELDS,
        Rejected,
        Upload,
        UploadLimits,
        check_annotations,
        receive,
    )

_EXPORTS = {
    "CRASH_ID": "notmyfault.pipeline.store:CRASH_ID",
    "DUMP_FIELDS": "notmyfault.pipeline.upload:DUMP_FIELDS",
    "SubmitFailed": "notmyfault.pipeline.client:SubmitFailed",
    "check_annotations": "notmyfault.pipeline.upload:check_annotations",
    "submit_dump": "notmyfault.pipeline.client:submit_dump",
    "Dropped": "notmyfault.pipeline.store:Dropped",
    "Limits": "notmyfault.pipeline.store:Limits",
    "Processor": "notmyfault.pipeline.process:Processor",
    "Rejected": "notmyfault.pipeline.upload:Rejected",
    "Store": "notmyfault.pipeline.store:Store",
    "Upload": "notmyfault.pipeline.upload:Upload",
    "UploadLimits": "notmyfault.pipeline.upload:UploadLimits",
    "default_store": "notmyfault.pipeline.collect:default_store",
    "forward": "notmyfault.pipeline.client:forward",
    "from_kernel": "notmyfault.pipeline.collect:from_kernel",
    "install": "notmyfault.pipeline.collect:install",
    "receive": "notmyfault.pipeline.upload:receive",
    "status": "notmyfault.pipeline.collect:status",
    "uninstall": "notmyfault.pipeline.collect:uninstall",
}
"""Each public name, and the module that defines it (imported on first use)."""

__all__ = [
    "CRASH_ID",
    "DUMP_FIELDS",
    "Dropped",
    "Limits",
    "Processor",
    "Rejected",
    "Store",
    "SubmitFailed",
    "Upload",
    "UploadLimits",
    "check_annotations",
    "default_store",
    "forward",
    "from_kernel",
    "install",
    "receive",
    "status",
    "submit_dump",
    "uninstall",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
