"""One disassembler per architecture, for every part of the analysis that decodes code.

It decodes with capstone's library through ``unwind.cslib`` (capstone's Python binding costs 20 to 30
ms of start-up to import); where that library is not capstone 5.0's, through the binding, which
gives the same :class:`~notmyfault.unwind.cslib.Decoded` instructions.
"""

from __future__ import annotations

import functools
from typing import Any

from notmyfault.unwind.cslib import (
    ARCH,
    MODE_32,
    MODE_64,
    MODE_ARM,
    MODE_BIG_ENDIAN,
    MODE_RISCV64,
    MODE_RISCVC,
    MODE_THUMB,
    OP_MEM,
    Decoded,
    Library,
    Operand,
    load,
)

MODES = {
    "x86_64": ("x86", MODE_64),
    "x32": ("x86", MODE_64),
    "i386": ("x86", MODE_32),
    "x86": ("x86", MODE_32),
    "aarch64": ("arm64", MODE_ARM),
    "ppc64le": ("ppc", MODE_64),
    "ppc64": ("ppc", MODE_64 | MODE_BIG_ENDIAN),
    "s390x": ("sysz", MODE_BIG_ENDIAN),
    "arm": ("arm", MODE_ARM),
    "thumb": ("arm", MODE_THUMB),  # 32-bit ARM's Thumb-2 instruction set (see code_arch)
    "riscv64": ("riscv", MODE_RISCV64 | MODE_RISCVC),
}
"""The architectures decoded (x86_64 and x32, i386 and x86, aarch64, ppc64le and ppc64, s390x, arm
and thumb, riscv64): capstone's architecture and mode for each."""


class Disassembler:
    """capstone for one architecture."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.cs_arch, self.mode = ARCH[MODES[arch][0]], MODES[arch][1]

    def disasm(
        self, code: bytes, address: int, count: int = 0, *, detail: bool = False, att: bool = False
    ) -> list[Decoded]:
        """Up to ``count`` instructions of ``code`` at ``address`` (0: every one it decodes, up to
        the first it cannot); ``detail``: with their operands; ``att``: x86 in AT&T syntax."""
        lib = _library()
        if lib is not None:
            return lib.disasm(self.cs_arch, self.mode, code, address, count, detail, att)
        return _binding_disasm(self.cs_arch, self.mode, code, address, count, detail, att)


@functools.cache
def disassembler(arch: str) -> Disassembler | None:
    """The disassembler of ``arch`` (see :data:`MODES`), or None for another."""
    return Disassembler(arch) if arch in MODES else None


@functools.cache
def _library() -> Library | None:
    return load()


def _binding_disasm(
    arch: int, mode: int, code: bytes, address: int, count: int, detail: bool, att: bool
) -> list[Decoded]:
    """What ``Library.disasm`` gives, through capstone's Python binding."""
    import capstone  # type: ignore[import-untyped]

    md = capstone.Cs(arch, mode)
    md.detail = detail
    if att:
        md.syntax = capstone.CS_OPT_SYNTAX_ATT
    out = []
    for insn in md.disasm(code, address, count):
        ops: tuple[Operand, ...] = ()
        if detail:
            try:
                ops = tuple(_binding_operand(insn, op) for op in insn.operands)
            except (capstone.CsError, AttributeError):  # operands capstone gives not for every arch
                ops = ()
        out.append(Decoded(insn.address, insn.size, insn.mnemonic, insn.op_str, ops))
    return out


def _binding_operand(insn: Any, op: Any) -> Operand:
    access = getattr(op, "access", None)
    if op.type != OP_MEM:
        return Operand(False, access)
    mem = op.mem

    def name(reg: int) -> str | None:
        return str(insn.reg_name(reg)) if reg else None

    return Operand(
        True,
        access,
        name(getattr(mem, "segment", 0)),
        name(mem.base),
        name(getattr(mem, "index", 0)),
        getattr(mem, "scale", 1),
        mem.disp,
    )


CPSR_THUMB = 1 << 5
"""CPSR's T bit: the thread runs Thumb code."""


def code_arch(arch: str, regs: dict[str, int]) -> str:
    """The instruction set a thread runs at its pc: ``thumb`` for 32-bit ARM with CPSR's T bit set
    (Debian's armhf builds Thumb-2 code), else ``arch``."""
    if arch == "arm" and regs.get("cpsr", 0) & CPSR_THUMB:
        return "thumb"
    return arch
