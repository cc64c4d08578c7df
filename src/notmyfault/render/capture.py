"""Render capture results: the crash report and the dump configuration page."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from notmyfault.base.sigcodes import signal_name
from notmyfault.base.units import format_size
from notmyfault.capture.config import Assessment, DumpSettings, decode_filter
from notmyfault.capture.watch import CrashRun
from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.common import limit_json, limit_text


def crash_text(run: CrashRun) -> str:
    """The report printed after a crash in a child: how it died, and where the dump is."""
    c = run.child
    lines: list[str] = []
    if c.signal is not None:
        dumped = "core dumped" if c.core_dumped else "no core dumped"
        lines.append(
            f"myfault crashed: {run.label} killed pid {c.pid} with {signal_name(c.signal)} "
            f"(signal {c.signal}), {dumped}"
        )
    else:
        lines.append(f"the child (pid {c.pid}) did not crash: it exited with code {c.exit_code}")
    for line in run.myfault_lines:
        lines.append(f"  {line}")
    for line in run.other_lines:
        lines.append(f"  child stderr: {line}")
    if run.dump is not None:
        d = run.dump
        lines.append(f"Dump: {d.path}")
        lines.append(
            f"      {format_size(d.size)} ({d.size} bytes, {format_size(d.allocated)} on disk), from {d.source}"
        )
        if d.problem:
            lines.append(f"Incomplete dump: {d.problem}")
    else:
        lines.append(f"No dump: {run.reason}")
    for note in run.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def crash_json(run: CrashRun) -> dict[str, Any]:
    """The crash report as the JSON contract's ``crash`` object."""
    c = run.child
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "crash",
        "crash_type": run.label,
        "pid": c.pid,
        "signal": c.signal,
        "signal_name": signal_name(c.signal) if c.signal is not None else None,
        "exit_code": c.exit_code,
        "core_dumped": c.core_dumped,
        "timed_out": c.timed_out,
        "dump": None if run.dump is None else asdict(run.dump),
        "reason": run.reason,
        "myfault_said": list(run.myfault_lines),
        "stderr": list(run.other_lines),
        "notes": list(run.notes),
        "verdict": run.assessment.verdict.value,
        "timings": {
            "child_s": round(c.elapsed_s, 6),
            "spawn_to_fault_s": None if c.fault_at_s is None else round(c.fault_at_s, 6),
            "fault_to_exit_s": None if c.fault_at_s is None else round(c.elapsed_s - c.fault_at_s, 6),
            "locate_s": round(run.locate_s, 6),
        },
    }


def _assessment_json(a: Assessment) -> dict[str, Any]:
    return {
        "verdict": a.verdict.value,
        "where": a.where,
        "summary": a.summary,
        "problems": list(a.problems),
        "notes": list(a.notes),
    }


def dumpconfig_json(s: DumpSettings, a: Assessment) -> dict[str, Any]:
    """The dump configuration as the JSON contract's ``dumpconfig`` object."""
    p = s.core_pattern
    soft, hard = s.rlimit_core
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "dumpconfig",
        "core_pattern": {
            "raw": p.raw,
            "kind": p.kind.value,
            "handler": p.handler.value,
            "program": p.program,
            "args": list(p.args),
            "specifiers": list(p.specifiers),
            "relative": p.relative,
            "meaning": p.meaning(s.core_uses_pid),
        },
        "core_uses_pid": s.core_uses_pid,
        "core_pipe_limit": s.core_pipe_limit,
        "suid_dumpable": s.suid_dumpable,
        "rlimit_core": {"soft": limit_json(soft), "hard": limit_json(hard)},
        "can_raise_hard_limit": s.can_raise_hard_limit,
        "coredump_filter": None if s.coredump_filter is None else f"{s.coredump_filter:#x}",
        "coredump_filter_kinds": [] if s.coredump_filter is None else list(decode_filter(s.coredump_filter)),
        "dump_dir": s.dump_dir,
        "dump_dir_writable": s.dump_dir_writable,
        "free_bytes": s.free_bytes,
        "systemd_coredump": None if s.systemd is None else asdict(s.systemd),
        "kernel_dump": None if s.kernel is None else {"ready": s.kernel.ready, **asdict(s.kernel)},
        "assessment": _assessment_json(a),
    }


def dumpconfig_text(s: DumpSettings, a: Assessment) -> str:
    """The Dump Configuration page, for people."""
    p = s.core_pattern
    soft, hard = s.rlimit_core
    rows: list[tuple[str, str]] = [
        ("core_pattern", repr(p.raw)),
        ("  meaning", p.meaning(s.core_uses_pid)),
        ("core_uses_pid", str(int(s.core_uses_pid))),
        (
            "core_pipe_limit",
            f"{s.core_pipe_limit}"
            + (" (the kernel does not wait for the pipe helper)" if s.core_pipe_limit == 0 else ""),
        ),
        ("suid_dumpable", "unknown" if s.suid_dumpable is None else str(s.suid_dumpable)),
        (
            "core size limit",
            f"soft {limit_text(soft)}, hard {limit_text(hard)}"
            + (
                " (notmyfault raises both: this user may)"
                if s.can_raise_hard_limit
                else " (notmyfault raises soft to hard)"
            ),
        ),
        (
            "coredump_filter",
            "unknown"
            if s.coredump_filter is None
            else f"{s.coredump_filter:#x}: " + ", ".join(decode_filter(s.coredump_filter)),
        ),
        ("dump directory", f"{s.dump_dir}" + ("" if s.dump_dir_writable else " (NOT writable)")),
        ("free space there", "unknown" if s.free_bytes is None else format_size(s.free_bytes)),
    ]
    if s.systemd is not None:
        sd = s.systemd
        rows.append(
            (
                "systemd-coredump",
                f"Storage={sd.storage} Compress={sd.compress} ProcessSizeMax={sd.process_size_max} "
                f"ExternalSizeMax={sd.external_size_max}; store {sd.directory}; "
                f"coredumpctl {'at ' + sd.coredumpctl if sd.coredumpctl else 'not installed'}",
            )
        )
    if s.kernel is not None:
        k = s.kernel
        loaded = {None: "unknown (no /sys/kernel/kexec_crash_loaded)", True: "loaded", False: "not loaded"}[
            k.crash_kernel_loaded
        ]
        size = "unknown" if k.crash_kernel_size is None else format_size(k.crash_kernel_size)
        rows.append(
            (
                "kernel crash dump",
                f"crash kernel {loaded}, reserved {size}, crashkernel= {k.crashkernel_cmdline or 'not given'}"
                + ("" if k.ready else " (a kernel panic would not be dumped)"),
            )
        )
    width = max(len(k) for k, _ in rows)
    out = ["Dump Configuration", ""]
    out += [f"{k.ljust(width)}  {v}" for k, v in rows]
    out.append("")
    out.append(f"Verdict: {a.summary}")
    for prob in a.problems:
        out.append(f"  problem: {prob}")
    for note in a.notes:
        out.append(f"  note: {note}")
    return "\n".join(out)
