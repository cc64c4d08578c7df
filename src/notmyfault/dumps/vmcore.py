"""Linux kernel vmcores: an ELF core of physical memory that carries the kernel's VMCOREINFO note.

QEMU's ``dump-guest-memory`` and kdump (``/proc/vmcore``, makedumpfile's ELF
output) both write one.  The reader validates the ELF file and the note;
everything that needs the kernel's types (tasks, stacks, slab caches,
modules) is read through drgn by the analysis layer, with the debug
``vmlinux`` and modules found beside the dump, in the directories given, or
where distributions install them.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from notmyfault.dumps.elfcore import ElfCore, is_vmcore
from notmyfault.dumps.errors import DumpError
from notmyfault.dumps.unpack import discard, origin

NOTE = "VMCOREINFO"


class Vmcore:
    """A Linux kernel vmcore: its VMCOREINFO, its physical memory, and a drgn program on request."""

    def __init__(self, path: str | os.PathLike[str], elf: ElfCore | None = None) -> None:
        self.path = os.fspath(path)
        self.physical = elf if elf is not None else ElfCore(path)
        if not is_vmcore(self.physical):
            self.physical.close()
            raise DumpError(f"{self.path} is an ELF core without a VMCOREINFO note: not a kernel vmcore")
        self._prog: Any = None
        self.debug_problem: str | None = None
        """Why the debug information is incomplete (None when it is complete)."""
        self.extra_paths: list[str] = []

    @property
    def truncation(self) -> str | None:
        """None for a whole vmcore; else what is missing (see ElfCore.truncation)."""
        return self.physical.truncation

    def close(self) -> None:
        """Release the file."""
        self.physical.close()
        discard(self)

    def __enter__(self) -> Vmcore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def vmcoreinfo(self) -> dict[str, str]:
        """The note's KEY=VALUE lines (OSRELEASE, PAGESIZE, KERNELOFFSET, SYMBOL(...), ...)."""
        for name, _t, desc in self.physical._note_list:
            if name == NOTE:
                raw = desc if isinstance(desc, (bytes, bytearray)) else str(desc).encode("latin-1")
                text = bytes(raw).split(b"\0", 1)[0].decode("ascii", "replace")
                return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return {}

    @property
    def release(self) -> str:
        """The kernel release (uname -r) the dump records."""
        return self.vmcoreinfo.get("OSRELEASE", "unknown")

    @property
    def arch(self) -> str:
        """The machine, as the process readers name it."""
        return self.physical.arch

    def candidates(self) -> list[str]:
        """Debug files to offer drgn: the paths given, then vmlinux and *.ko beside the dump."""
        here = Path(origin(self)).resolve().parent  # a packed vmcore: beside the file the user named
        found = [str(p) for p in (here / "vmlinux", *sorted(here.glob("*.ko"))) if p.exists()]
        return [*self.extra_paths, *found]

    @property
    def prog(self) -> Any:
        """The drgn program over the dump, with what debug information could be found."""
        if self._prog is None:
            import logging

            import drgn

            logging.getLogger("drgn").setLevel(logging.ERROR)  # we say what is missing, once

            prog = drgn.Program()
            try:
                prog.set_core_dump(self.path)
            except (ValueError, OSError, drgn.FaultError) as e:
                raise DumpError(f"drgn cannot read {self.path}: {e}") from None
            try:
                prog.load_debug_info(self.candidates(), default=True)
            except drgn.MissingDebugInfoError as e:
                self.debug_problem = str(e).splitlines()[0]
            self._prog = prog
        return self._prog

    def has_types(self) -> bool:
        """Whether the kernel's own debug information (its types) was found."""
        try:
            self.prog.type("struct task_struct")
        except LookupError:
            return False
        return True

    def printk_log(self) -> str:
        """The printk ring buffer as text, read with VMCOREINFO's offsets alone (no debug vmlinux needed).

        The layout (kernel/printk/printk_ringbuffer.h, 5.10 and later): descriptors
        ``desc_ring.descs[id & mask]`` whose ``state_var`` carries the id (low 62 bits) and
        the state (top 2: 1 committed, 2 finalized), ``infos[...]`` with the sequence number,
        time stamp and text length, and text blocks in ``text_data_ring`` that start with
        the descriptor id.  This is what makedumpfile's --dump-dmesg reads.
        """
        info = self.vmcoreinfo

        def num(key: str) -> int:
            if key not in info:
                raise DumpError(
                    f"{self.path}: VMCOREINFO has no {key}: cannot read the kernel log without vmlinux"
                )
            return int(info[key], 16 if key.startswith("SYMBOL") else 10)

        def word(address: int) -> int:
            return int.from_bytes(self.read(address, 8), "little")

        rb = word(num("SYMBOL(prb)"))
        desc_ring = rb + num("OFFSET(printk_ringbuffer.desc_ring)")
        data_ring = rb + num("OFFSET(printk_ringbuffer.text_data_ring)")
        count_bits = int.from_bytes(
            self.read(desc_ring + num("OFFSET(prb_desc_ring.count_bits)"), 4), "little"
        )
        descs = word(desc_ring + num("OFFSET(prb_desc_ring.descs)"))
        infos = word(desc_ring + num("OFFSET(prb_desc_ring.infos)"))
        head = word(desc_ring + num("OFFSET(prb_desc_ring.head_id)"))
        tail = word(desc_ring + num("OFFSET(prb_desc_ring.tail_id)"))
        size_bits = int.from_bytes(self.read(data_ring + num("OFFSET(prb_data_ring.size_bits)"), 4), "little")
        data = word(data_ring + num("OFFSET(prb_data_ring.data)"))
        desc_size, info_size = num("SIZE(prb_desc)"), num("SIZE(printk_info)")
        lpos_off = num("OFFSET(prb_desc.text_blk_lpos)")
        begin_off, next_off = num("OFFSET(prb_data_blk_lpos.begin)"), num("OFFSET(prb_data_blk_lpos.next)")
        ts_off, len_off = num("OFFSET(printk_info.ts_nsec)"), num("OFFSET(printk_info.text_len)")
        mask, size = (1 << count_bits) - 1, 1 << size_bits
        id_mask = (1 << 62) - 1
        lines = []
        ident = tail
        for _ in range(1 << count_bits):
            index = ident & mask
            state_var = word(descs + index * desc_size)
            if state_var & id_mask == ident & id_mask and state_var >> 62 in (1, 2):
                base = infos + index * info_size
                ts = word(base + ts_off)
                length = int.from_bytes(self.read(base + len_off, 2), "little")
                begin = word(descs + index * desc_size + lpos_off + begin_off)
                end = word(descs + index * desc_size + lpos_off + next_off)
                start = begin % size if begin // size == end // size else 0
                text = self.read(data + start + 8, length).decode(errors="replace")
                lines.append(f"[{ts // 10**9:5d}.{ts % 10**9 // 1000:06d}] {text}")
            if ident & id_mask == head & id_mask:
                break
            ident = (ident + 1) & id_mask
        return "\n".join(lines) + "\n"

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at kernel virtual ``address`` (raises UnreadableMemory)."""
        import drgn

        from notmyfault.dumps.errors import UnreadableMemory

        try:
            data: bytes = self.prog.read(address, size)
        except drgn.FaultError as e:
            raise UnreadableMemory(f"{address:#x} is not in the dump: {e}") from None
        return data
