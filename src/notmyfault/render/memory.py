"""Render modules (lm / lmvm), vm (!vm), search (s -a) and disassembly (u)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from notmyfault.analysis.result import Instruction
from notmyfault.base.units import format_size
from notmyfault.dumps.minidump import Image, Module
from notmyfault.dumps.windump import Driver
from notmyfault.kernel.winvm import WindowsVm
from notmyfault.memory.modules import ModuleInfo
from notmyfault.memory.search import Hit
from notmyfault.memory.vm import VmSummary
from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.analysis import hexa
from notmyfault.unwind.names import short_name


def modules_text(mods: list[ModuleInfo], details: bool) -> str:
    """lm: one line a module; or, with ``details``, lmvm's page for each module given."""
    if details:
        out = []
        for m in mods:
            out += [
                "start             end                 module name",
                f"{m.start or 0:016x}  {m.end or 0:016x}    {m.name}",
                f"    Image path:   {m.path}",
                f"    Loaded file:  {m.file or 'not found'}"
                + (
                    ""
                    if m.file_matches is None
                    else " (build-id matches)"
                    if m.file_matches
                    else " (a file is there, but its build-id differs)"
                ),
                f"    Build-id:     {m.build_id or 'not in the dump'}",
                f"    SONAME:       {m.soname or '-'}",
                "    Version:      "
                + (
                    f"{m.version} (from the {m.version_source})"
                    if m.version
                    else "unknown (no package note, not in the file name)"
                ),
                "    Package:      "
                + (
                    " ".join(m.package.get(k, "?") for k in ("type", "name", "version")) if m.package else "-"
                ),
                f"    File size:    {m.file_size if m.file_size is not None else '-'}",
                "    Timestamp:    "
                + (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.file_mtime)) if m.file_mtime else "-"),
                f"    Symbols:      {'debug info' if m.debug_info else 'ELF symbols only' if m.file else 'none'}",
            ]
        return "\n".join(out)
    lines = [
        "start             end               module            build-id                                  file"
    ]
    for m in mods:
        mark = "" if m.file_matches else " (missing)" if m.file_matches is None else " (MISMATCH)"
        lines.append(
            f"{m.start or 0:016x}  {m.end or 0:016x}  {m.name:<16}  {m.build_id or '-':<40}  {m.path}{mark}"
        )
    return "\n".join(lines)


def modules_json(mods: list[ModuleInfo]) -> dict[str, Any]:
    """Modules as JSON."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "modules",
        "modules": [{**asdict(m), "start": hexa(m.start), "end": hexa(m.end)} for m in mods],
    }


def vm_text(v: VmSummary) -> str:
    """!vm."""
    rows = [
        ("Virtual size", v.virtual),
        ("Dumped", v.dumped),
        ("File-backed", v.file_backed),
        ("Anonymous", v.anonymous),
        ("  heap", v.heap),
        ("  stacks", v.stacks),
        ("Executable", v.executable),
        ("Writable", v.writable),
        ("Paged pool (tagged blocks)", v.pool_paged),
        ("NonPaged pool (tagged, locked)", v.pool_nonpaged),
    ]
    lines = [f"{k:<32} {format_size(n):>12}  ({n} bytes)" for k, n in rows]
    lines += ["", "Biggest mappings:"]
    for r in v.biggest:
        lines.append(
            f"  {r.start:016x}-{r.end:016x} {r.perms} {format_size(r.end - r.start):>10}  {r.kind:<9} {r.name or ''}"
        )
    for w in v.warnings:
        lines += ["", f"********** {w} **********"]
    return "\n".join(lines)


def vm_json(v: VmSummary) -> dict[str, Any]:
    """!vm as JSON."""
    d = asdict(v)
    d["biggest"] = [{**asdict(r), "start": hexa(r.start), "end": hexa(r.end)} for r in v.biggest]
    return {"schema_version": SCHEMA_VERSION, "kind": "vm", **d, "warnings": list(v.warnings)}


def windows_vm_text(v: WindowsVm) -> str:
    """``!vm`` for a Windows kernel dump, in WinDbg's layout: pages, then kilobytes."""
    lines = ["*** Virtual Memory Usage ***"]
    for label, pages in v.counters.items():
        if pages is None:
            lines.append(f" {label + ':':<20}{'-':>8}")
            continue
        lines.append(f" {label + ':':<20}{pages:>8} ({pages * 4:>10} Kb)")
        if label == "NonPagedPool Max":
            lines += [f" ********** {w} *****" for w in v.warnings]
    lines += [f"NOTE: {n}" for n in v.notes]
    return "\n".join(lines)


def windows_vm_json(v: WindowsVm) -> dict[str, Any]:
    """``!vm`` for a Windows kernel dump as JSON: counters in pages (4 KiB; null where not given)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "vm",
        "dump_kind": "windows-kernel",
        "page_size": 4096,
        "counters": dict(v.counters),
        "warnings": list(v.warnings),
        "notes": list(v.notes),
    }


def search_text(hits: list[Hit]) -> str:
    """s -a."""
    if not hits:
        return "no hits"
    return "\n".join(f"{h.address:016x}  {h.where:<40} ({h.source})" for h in hits)


def search_json(pattern: bytes, hits: list[Hit]) -> dict[str, Any]:
    """Search hits as JSON."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "search",
        "pattern": pattern.hex(),
        "hits": [
            {"address": hexa(h.address), "where": h.where, "source": h.source, "module": h.module}
            for h in hits
        ],
    }


def disasm_text(insns: list[Instruction], where: dict[int, str]) -> str:
    """u."""
    out = []
    for i in insns:
        if i.address in where:
            out.append(f"{where[i.address]}:")
        out.append(f"{i.address:016x} {i.text}")
    return "\n".join(out)


def disasm_json(insns: list[Instruction]) -> dict[str, Any]:
    """Instructions as JSON."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "disassembly",
        "instructions": [{"address": hexa(i.address), "text": i.text, "size": i.size} for i in insns],
    }


def _image_lines(m: Image) -> list[str]:
    """The lmvm lines every Windows image has: range, path, timestamp, checksum, size."""
    stamp = f" ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(m.timestamp))} UTC)" if m.timestamp else ""
    return [
        "start             end                 module name",
        f"{m.base:016x}  {m.end:016x}    {short_name(m.name)}",
        f"    Image path:   {m.name}",
        f"    Timestamp:    {m.timestamp:#010x}{stamp}",
        f"    CheckSum:     {m.checksum:#010x}",
        f"    ImageSize:    {m.size:#x}",
    ]


def _image_json(m: Image) -> dict[str, Any]:
    """The JSON fields every Windows image has."""
    return {
        "path": m.name,
        "name": short_name(m.name),
        "start": hexa(m.base),
        "end": hexa(m.end),
        "size": m.size,
        "timestamp": m.timestamp,
        "checksum": m.checksum,
        "code_id": m.code_id,
    }


def minidump_modules_text(mods: Sequence[Module], details: bool = False) -> str:
    """``lm`` / ``lmvm`` for a minidump's module list."""
    if details:
        out = []
        for m in mods:
            out += [
                *_image_lines(m),
                f"    File version: {m.file_version or '-'}",
                f"    Product version: {m.product_version or '-'}",
                f"    Debug file:   {m.debug_file or '-'}",
                f"    Debug id:     {m.debug_id or '-'}",
                f"    Build-id:     {m.build_id or '-'}",
            ]
        return "\n".join(out)
    lines = ["start             end               module            version          debug id"]
    for m in mods:
        lines.append(
            f"{m.base:016x}  {m.end - 1:016x}  {short_name(m.name):<16}  {m.file_version or '-':<15}  "
            f"{m.debug_id or '-'}  {m.name}"
        )
    return "\n".join(lines)


def minidump_modules_json(mods: Sequence[Module]) -> dict[str, Any]:
    """A minidump's modules as JSON (the ``modules`` object, minidump flavour)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "modules",
        "modules": [
            {
                **_image_json(m),
                "file_version": m.file_version,
                "product_version": m.product_version,
                "debug_file": m.debug_file,
                "debug_id": m.debug_id,
                "build_id": m.build_id,
            }
            for m in mods
        ],
    }


def drivers_text(
    drivers: Sequence[Driver], details: bool = False, versions: Mapping[int, Mapping[str, str]] | None = None
) -> str:
    """``lm`` / ``lmvm`` for a Windows kernel dump's driver list; ``versions`` (by base) are the
    version resources read from the images the dump holds."""
    if details:
        out = []
        for d in drivers:
            out += [
                *_image_lines(d),
                f"    Symbol key:   {short_name(d.name)}.{d.name.rsplit('.', 1)[-1]}/{d.code_id}",
            ]
            version = (versions or {}).get(d.base)
            if version:
                width = max(len(k) for k in version) + 2
                out += [f"    {k + ':':<{width}}{v}" for k, v in version.items()]
            else:
                out.append("    Version:      not in the dump (the image's resources are not in its memory)")
        return "\n".join(out)
    lines = ["start             end               module            timestamp   path"]
    for d in drivers:
        lines.append(
            f"{d.base:016x}  {d.end - 1:016x}  {short_name(d.name):<16}  {d.timestamp:08x}    {d.name}"
        )
    return "\n".join(lines)


def drivers_json(
    drivers: Sequence[Driver], versions: Mapping[int, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """A kernel dump's drivers as JSON (the ``modules`` object, kernel flavour): ``version_info`` is
    the image's version resource (empty where the dump does not hold it)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "modules",
        "modules": [
            {**_image_json(d), "version_info": dict((versions or {}).get(d.base, {}))} for d in drivers
        ],
    }
