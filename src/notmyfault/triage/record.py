"""One dump's analysis as the row triage stores: what it is, what crashed, its program, version and
build id, the frames its signature is made from, the build ids of the modules on its stack, and the
``!analyze -v`` page itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

from notmyfault import __version__
from notmyfault.analysis.crash import CrashAnalysis
from notmyfault.unwind.names import short_name

ANALYSIS_VERSION = f"{__version__}+triage4"
"""Stored with every row: a dump analysed by another version is analysed again on the next ingest."""
TOP_FRAMES = 32
"""The frames whose modules' build ids are stored."""


def analyze_path(path: str) -> dict[str, Any]:
    """Analyse the dump at ``path`` (any format the analyzer reads) into a row's fields.

    Errors propagate (DumpError for a bad file): the worker turns them into a failure record.
    """
    from notmyfault.analysis.crash import analyze as analyze_core
    from notmyfault.analysis.minidump import analyze_minidump
    from notmyfault.dumps import ElfCore, Minidump, Vmcore, WindowsKernelDump, open_dump, report_fields
    from notmyfault.dumps.buildid import dumped_build_id, dumped_package
    from notmyfault.kernel.vmcore import analyze_vmcore
    from notmyfault.kernel.windows import analyze_kernel_dump
    from notmyfault.render.analysis import analysis_text

    with open_dump(path) as dump:
        crash_time: dt.datetime | None = None
        build_ids: dict[str, str] = {}
        exe_build_id = version = None
        if isinstance(dump, Minidump):
            a = analyze_minidump(dump)
            for m in dump.modules:
                if m.code_id:
                    build_ids.setdefault(short_name(m.name), m.code_id)
            if dump.modules:
                exe_build_id = dump.modules[0].code_id or None
                version = dump.modules[0].product_version or dump.modules[0].file_version
        elif isinstance(dump, Vmcore):
            a = analyze_vmcore(dump)
            version = dump.release or None
        elif isinstance(dump, WindowsKernelDump):
            a = analyze_kernel_dump(dump)
            crash_time = dump.system_time
            for d in dump.drivers:
                build_ids.setdefault(short_name(d.name), d.code_id)
            exe_build_id = dump.drivers[0].code_id if dump.drivers else None
        else:
            assert isinstance(dump, ElfCore)
            a = analyze_core(dump)
            for module in {f.module for f in a.frames[:TOP_FRAMES] if f.module}:
                bid = dumped_build_id(dump, module)
                if bid:
                    build_ids[short_name(module)] = bid
            if a.executable:
                exe_build_id = dumped_build_id(dump, a.executable)
                package = dumped_package(dump, a.executable)
                version = package.get("version") if package else None
            if version is None:  # apport: "Package: bash 5.2.15-2+b1"
                version = (report_fields(dump).get("Package") or "").partition(" ")[2].strip() or None
        on_stack = {short_name(f.module) for f in a.frames[:TOP_FRAMES] if f.module}
        fields = _fields(
            a, crash_time, {k: v for k, v in build_ids.items() if k in on_stack}, analysis_text(a)
        )
        fields.update(build_id=exe_build_id, version=version)
        return fields


def _fields(
    a: CrashAnalysis, crash_time: dt.datetime | None, build_ids: dict[str, str], text: str
) -> dict[str, Any]:
    return {
        "dump_kind": a.dump_kind,
        "arch": a.arch,
        "pid": a.pid,
        "executable": a.executable,
        "program": a.program,
        "crash_class": a.crash_class,
        "reason": a.signal_name or a.exception_name,
        "blamed": a.blamed_python.where() if a.blamed_python else a.blamed.location() if a.blamed else None,
        "frames": [f.as_dict() for f in a.sign_stack],
        "build_ids": build_ids,
        "crash_time": crash_time.isoformat() if crash_time else None,
        "analysis_text": text,
        "truncated": a.truncated,
    }


def file_time(mtime: float) -> str:
    """A file's modification time (UTC, ISO 8601): for a core, when the kernel wrote it."""
    return dt.datetime.fromtimestamp(mtime, dt.timezone.utc).isoformat()
