"""Kernel memory in a vmcore: ``!vm`` (the memory counters), ``!poolused`` (slab caches and
vmalloc by caller), and ``lm`` (the loaded modules), read through drgn.

A slab cache named after a tag plays the pool tag, as in the seed: myfault.ko
leaks nonpaged memory as objects of a cache called ``Leak``.  Object counts
are exact: drgn's ``slab_cache_usage`` counts the free objects of the
per-node partial lists and of every CPU's freelist.

The warning is the seed's picture for Linux: when unreclaimable slab holds at
least half of the memory in use, "Excessive unreclaimable slab" stands where
WinDbg said "Excessive NonPaged Pool Usage".
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.vmcore import Vmcore
from notmyfault.memory.search import Hit

EXCESSIVE = 0.5
"""Unreclaimable slab at this share of the memory in use (total - free) or more is excessive."""
PAGE = 4096

NODE_COUNTERS: tuple[tuple[str, str, int], ...] = (
    ("Slab reclaimable", "NR_SLAB_RECLAIMABLE_B", PAGE),
    ("Slab unreclaimable", "NR_SLAB_UNRECLAIMABLE_B", PAGE),
    ("File pages", "NR_FILE_PAGES", PAGE),
    ("Anonymous pages", "NR_ANON_MAPPED", PAGE),
    ("Shared memory", "NR_SHMEM", PAGE),
    ("Kernel stacks", "NR_KERNEL_STACK_KB", 1024),
    ("Page tables", "NR_PAGETABLE", PAGE),
)
"""(label, node_stat_item, bytes per unit) read from vm_node_stat."""


@dataclass(frozen=True)
class KernelVm:
    """The kernel's memory counters in bytes (None where the kernel has no such counter), and warnings."""

    release: str
    counters: dict[str, int | None]
    warnings: tuple[str, ...]
    top_slab: str | None
    """The cache holding the most memory, named in the warning."""


@dataclass(frozen=True)
class SlabUsage:
    """One slab cache (the pool of one tag)."""

    name: str
    object_size: int
    active_objects: int
    total_objects: int
    slabs: int
    bytes: int
    """Memory held by the cache's slabs."""
    active_bytes: int
    """active_objects * object_size: what its users asked for."""
    reclaimable: bool


@dataclass(frozen=True)
class VmallocUsage:
    """vmalloc areas grouped by the function that asked for them (and the tag in myfault's blocks)."""

    caller: str
    tag: str | None
    areas: int
    bytes: int


@dataclass(frozen=True)
class KernelModule:
    """A loaded kernel module."""

    name: str
    base: int
    size: int
    version: str | None
    srcversion: str | None
    taints: str
    state: str
    debug_file: str | None


def _stat(prog: object, array: str, item: str) -> int | None:
    try:
        index = prog.constant(item).value_()  # type: ignore[attr-defined]
        return int(prog[array][index].counter.value_())  # type: ignore[index]
    except (LookupError, KeyError):
        return None


def kernel_vm(vm: Vmcore) -> KernelVm:
    """The memory counters of the dump (/proc/meminfo's picture), with the excessive-slab warning."""
    from drgn.helpers.linux.mm import totalram_pages

    prog = vm.prog
    counters: dict[str, int | None] = {"Total memory": int(totalram_pages(prog)) * PAGE}
    free = _stat(prog, "vm_zone_stat", "NR_FREE_PAGES")
    counters["Free memory"] = free * PAGE if free is not None else None
    for label, item, unit in NODE_COUNTERS:
        value = _stat(prog, "vm_node_stat", item)
        counters[label] = value * unit if value is not None else None
    try:
        counters["Vmalloc"] = int(prog["nr_vmalloc_pages"].counter.value_()) * PAGE
    except KeyError:
        counters["Vmalloc"] = None
    total, free_b = counters["Total memory"], counters["Free memory"]
    unreclaimable = counters["Slab unreclaimable"]
    warnings = []
    top = max(slab_usage(vm), key=lambda s: s.bytes, default=None)
    if total and free_b is not None and unreclaimable is not None:
        used = total - free_b
        counters["In use"] = used
        if used > 0 and unreclaimable / used >= EXCESSIVE:
            who = f"; the largest cache is {top.name} ({top.bytes} bytes)" if top else ""
            warnings.append(
                f"Excessive unreclaimable slab: {unreclaimable} bytes, {unreclaimable * 100 // used}% of the "
                f"memory in use (the picture of Excessive NonPaged Pool Usage){who}"
            )
        vmalloc = counters["Vmalloc"]
        if used > 0 and vmalloc is not None and vmalloc / used >= EXCESSIVE:
            warnings.append(
                f"Excessive vmalloc: {vmalloc} bytes, {vmalloc * 100 // used}% of the memory in use "
                "(the picture of Excessive Paged Pool Usage)"
            )
    return KernelVm(vm.release, counters, tuple(warnings), top.name if top else None)


def slab_usage(vm: Vmcore) -> list[SlabUsage]:
    """Every slab cache with exact object counts, most memory first."""
    from drgn.helpers.linux.slab import for_each_slab_cache, slab_cache_usage

    prog = vm.prog
    reclaim = (
        prog.constant("SLAB_RECLAIM_ACCOUNT").value_()
        if _has_constant(prog, "SLAB_RECLAIM_ACCOUNT")
        else 0x20000
    )
    out = []
    for cache in for_each_slab_cache(prog):
        usage = slab_cache_usage(cache)
        order = int(cache.oo.x.value_()) >> 16
        objsize = int(cache.object_size.value_())
        out.append(
            SlabUsage(
                cache.name.string_().decode(errors="replace"),
                objsize,
                usage.active_objs,
                usage.num_objs,
                usage.num_slabs,
                usage.num_slabs * (PAGE << order),
                usage.active_objs * objsize,
                bool(int(cache.flags.value_()) & reclaim),
            )
        )
    return sorted(out, key=lambda s: (-s.bytes, s.name))


def _has_constant(prog: object, name: str) -> bool:
    try:
        prog.constant(name)  # type: ignore[attr-defined]
    except LookupError:
        return False
    return True


TAG_OFFSET = 16
"""Where myfault.ko's block header keeps the tag (after its list_head): see myfault.c, struct leak_block."""


def vmalloc_usage(vm: Vmcore) -> list[VmallocUsage]:
    """vmalloc areas by caller (myfault's by tag too), most bytes first."""
    from drgn import FaultError
    from drgn.helpers.linux.mm import for_each_vmap_area

    prog = vm.prog
    groups: dict[tuple[str, str | None], list[int]] = {}
    for va in for_each_vmap_area(prog):
        area = va.vm
        if not area:
            continue
        caller = int(area.caller.value_())
        try:
            sym = prog.symbol(caller)
            name = sym.name
        except LookupError:
            name = f"{caller:#x}"
        tag = None
        if name.startswith("myfault_leak"):
            try:
                raw = prog.read(int(area.addr.value_()) + TAG_OFFSET, 16)
                tag = raw.split(b"\0", 1)[0].decode("ascii") or None
            except (FaultError, UnicodeDecodeError):
                tag = None
        groups.setdefault((name, tag), []).append(int(area.nr_pages.value_()) * PAGE)
    out = [VmallocUsage(c, t, len(s), sum(s)) for (c, t), s in groups.items()]
    return sorted(out, key=lambda u: (-u.bytes, u.caller))


def _module_text(mod: object, field: str) -> str | None:
    """A string field of struct module (version, srcversion), or None when unset or absent."""
    try:
        ptr = getattr(mod, field)
    except AttributeError:
        return None
    return ptr.string_().decode() if ptr else None


def kernel_modules(vm: Vmcore) -> list[KernelModule]:
    """The loaded modules, in load order (the kernel's list is newest first)."""
    from drgn.helpers.linux.module import for_each_module, module_address_regions, module_taints

    prog = vm.prog
    files = {}
    for m in prog.modules():
        files[str(m.name)] = m.debug_file_path
    out = []
    for mod in for_each_module(prog):
        name = mod.name.string_().decode()
        regions = [r for r in module_address_regions(mod) if r[1]]
        base = min((r[0] for r in regions), default=0)
        end = max((r[0] + r[1] for r in regions), default=0)

        state = mod.state.format_(type_name=False).removeprefix("MODULE_STATE_").lower()
        out.append(
            KernelModule(
                name,
                base,
                end - base,
                _module_text(mod, "version"),
                _module_text(mod, "srcversion"),
                module_taints(mod),
                state,
                files.get(name.replace("-", "_")),
            )
        )
    return list(reversed(out))


def kernel_search(vm: Vmcore, pattern: bytes, module: str | None = None, limit: int = 1000) -> list[Hit]:
    """Where ``pattern`` is in the dump: its physical memory, each hit named by the direct map's
    address and, when it lies in a slab object, by its cache; with ``module``, only that module's memory."""
    from drgn.helpers.linux.slab import slab_object_info

    prog = vm.prog
    hits: list[Hit] = []
    if module is not None:
        chosen = [m for m in kernel_modules(vm) if m.name.replace("-", "_") == module.replace("-", "_")]
        if not chosen:
            raise LookupError(f"no module named {module!r} is loaded in the dump")
        m = chosen[0]
        data = b""
        with contextlib.suppress(UnreadableMemory):
            data = vm.read(m.base, m.size)
        at = data.find(pattern)
        while at != -1 and len(hits) < limit:
            hits.append(Hit(m.base + at, f"{m.name}+{at:#x}", "dump", m.name))
            at = data.find(pattern, at + 1)
        return hits
    try:
        page_offset = int(prog["page_offset_base"].value_())
    except KeyError:
        page_offset = None
    for phys in vm.physical.find_all(pattern):
        if len(hits) >= limit:
            break
        where = f"physical {phys:#x}"
        address = phys
        if page_offset is not None:
            address = page_offset + phys
            info = slab_object_info(prog, address)
            if info is not None and info.slab_cache:
                cache = info.slab_cache.name.string_().decode(errors="replace")
                state = "" if info.allocated else ", free"
                where = f"slab {cache} object {info.address:#x}+{address - info.address:#x}{state}"
        hits.append(Hit(address, where, "dump", None))
    return hits
