"""Text and JSON of the kernel memory commands on vmcores: ``vm``, ``poolused``, ``modules``."""

from __future__ import annotations

from typing import Any

from notmyfault.base.units import format_size
from notmyfault.kernel.kmem import KernelModule, KernelVm, SlabUsage, VmallocUsage
from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.analysis import hexa


def kernel_vm_text(v: KernelVm) -> str:
    """``!vm`` for a Linux kernel: the counters in kilobytes, then the warnings."""
    lines = [f"*** Kernel Memory Usage (Linux {v.release}) ***"]
    for label, value in v.counters.items():
        if value is None:
            lines.append(f" {label + ':':<22}{'-':>12}")
        else:
            lines.append(f" {label + ':':<22}{value // 1024:>12} Kb  ({format_size(value)})")
    lines += [f" ********** {w} *****" for w in v.warnings]
    return "\n".join(lines)


def kernel_vm_json(v: KernelVm) -> dict[str, Any]:
    """``!vm`` for a Linux kernel as JSON: counters in bytes (null where the kernel has none)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "vm",
        "dump_kind": "linux-kernel",
        "release": v.release,
        "counters": dict(v.counters),
        "warnings": list(v.warnings),
        "largest_slab_cache": v.top_slab,
    }


def slab_text(slabs: list[SlabUsage], vmallocs: list[VmallocUsage], top: int | None) -> str:
    """``!poolused``: slab caches (nonpaged pool, the tag is the cache) by bytes, then vmalloc (paged)."""
    lines = [
        "Nonpaged (slab caches; a cache named after a tag holds that tag's blocks):",
        f" {'Cache':<24} {'Objects':>9} {'Total':>9} {'ObjSize':>8} {'Bytes':>12} {'':>10} Kind",
    ]
    for s in slabs[:top]:
        kind = "reclaimable" if s.reclaimable else "unreclaimable"
        lines.append(
            f" {s.name:<24} {s.active_objects:>9} {s.total_objects:>9} {s.object_size:>8} {s.bytes:>12} "
            f"{format_size(s.bytes):>10} {kind}"
        )
    lines += ["", "Paged (vmalloc, by caller; myfault's blocks by tag):"]
    lines.append(f" {'Caller':<32} {'Tag':<8} {'Areas':>7} {'Bytes':>12} {'':>10}")
    for u in vmallocs[:top]:
        lines.append(
            f" {u.caller:<32} {u.tag or '-':<8} {u.areas:>7} {u.bytes:>12} {format_size(u.bytes):>10}"
        )
    return "\n".join(lines)


def slab_json(slabs: list[SlabUsage], vmallocs: list[VmallocUsage]) -> dict[str, Any]:
    """``!poolused`` of a vmcore as JSON."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "kernel-pools",
        "slab_caches": [
            {
                "name": s.name,
                "active_objects": s.active_objects,
                "total_objects": s.total_objects,
                "object_size": s.object_size,
                "slabs": s.slabs,
                "bytes": s.bytes,
                "active_bytes": s.active_bytes,
                "reclaimable": s.reclaimable,
            }
            for s in slabs
        ],
        "vmalloc": [{"caller": u.caller, "tag": u.tag, "areas": u.areas, "bytes": u.bytes} for u in vmallocs],
    }


def kernel_modules_text(mods: list[KernelModule], details: bool) -> str:
    """``lm`` / ``lmvm`` of a kernel: address range, name, version, taint."""
    lines = [f"{'start':<16} {'end':<16} {'module':<20} {'version':<8} taint"]
    for m in mods:
        lines.append(
            f"{m.base:016x} {m.base + m.size:016x} {m.name:<20} {m.version or '-':<8} {m.taints or '-'}"
        )
        if details:
            lines += [
                f"    Loaded module:  {m.name} ({m.state})",
                f"    Version:        {m.version or 'none'}",
                f"    Srcversion:     {m.srcversion or 'none'}",
                f"    Taint:          {m.taints or 'none'}",
                f"    Size:           {m.size:#x}",
                f"    Symbols from:   {m.debug_file or 'not found'}",
            ]
    return "\n".join(lines)


def kernel_modules_json(mods: list[KernelModule]) -> dict[str, Any]:
    """Kernel modules as JSON."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "modules",
        "dump_kind": "linux-kernel",
        "modules": [
            {
                "name": m.name,
                "base": hexa(m.base),
                "size": m.size,
                "version": m.version,
                "srcversion": m.srcversion,
                "taints": m.taints,
                "state": m.state,
                "debug_file": m.debug_file,
            }
            for m in mods
        ],
    }
