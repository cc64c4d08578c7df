"""The faulting instruction, decoded with capstone: its text, the memory it touches, and the address
its memory operand computes (the analyzers of every kind of dump share these)."""

from __future__ import annotations

import re

from notmyfault.analysis.result import Instruction
from notmyfault.unwind.cslib import AC_READ, AC_WRITE, Decoded
from notmyfault.unwind.isa import code_arch, disassembler


def decode_bytes(data: bytes, pc: int, arch: str) -> Instruction | None:
    """Decode the first instruction of ``data`` (machine code at ``pc`` for ``arch``) with capstone,
    with the memory access it makes."""
    md = disassembler(arch)
    if md is None:
        return None
    for insn in md.disasm(data, pc, 1, detail=True):
        access = None
        for op in insn.operands:
            if op.memory and op.access is not None:
                if op.access & AC_WRITE:
                    access = "write"
                elif op.access & AC_READ and access is None:
                    access = "read"
        if arch in ("x86_64", "x32", "i386", "x86") and _x86_store(insn):
            access = "write"
        if access is None and arch in ("x86_64", "x32", "i386", "x86"):
            # implicit stack accesses have no memory operand: a stack overflow often faults on a
            # push or a call (the return address), which write; pop, ret and leave read
            mnemonic = insn.mnemonic
            if mnemonic.startswith(("push", "call", "enter")):
                access = "write"
            elif mnemonic.startswith(("pop", "ret", "leave")):
                access = "read"
        if access is None and arch in ("aarch64", "arm", "thumb"):
            # their loads and stores: ld*/st* (and 32-bit ARM's push and pop)
            access = (
                "write"
                if insn.mnemonic.startswith(("st", "push"))
                else "read"
                if insn.mnemonic.startswith(("ld", "pop"))
                else None
            )
        if access is None and arch in ("ppc64le", "ppc64", "s390x") and insn.op_str.count("(") == 1:
            # a load or store: their mnemonics start with st (stores) or l (loads) on both
            access = (
                "write"
                if insn.mnemonic.startswith("st")
                else "read"
                if insn.mnemonic.startswith("l")
                else None
            )
        return Instruction(insn.address, f"{insn.mnemonic} {insn.op_str}".strip(), insn.size, access)
    return None


X86_STORES = re.compile(
    r"v?(p?mov|movnt|extract|pextr|maskmov|p?scatter|p?compress)\w*|fn?st\w*|fistt?p?|fbstp|stmxcsr|vstmxcsr"
)
"""x86 instructions that write their first operand when it is memory: capstone 5 marks the memory
operand of SSE, AVX and AVX-512 stores (``movups xmmword ptr [rdi], xmm0``, ``vmovups zmmword ptr
[rax], zmm2``, as glibc's memset runs them) as read."""


def _x86_store(insn: Decoded) -> bool:
    """True if ``insn`` (x86, with details) stores to a memory first operand."""
    ops = insn.operands
    return bool(ops) and ops[0].memory and X86_STORES.fullmatch(insn.mnemonic.split()[-1]) is not None


def operand_address(data: bytes, pc: int, arch: str, regs: dict[str, int]) -> int | None:
    """The address the first memory operand of the instruction at ``pc`` refers to, computed from the
    registers (base + index * scale + displacement; pc-relative on x86_64); None when the instruction
    has no memory operand or a register it needs is not known (a segment base such as fs)."""
    arch = code_arch(arch, regs)
    md = disassembler(arch) if arch in OPERAND_ARCHES else None
    if md is None:
        return None
    mask = (1 << (32 if arch in ("x32", "i386", "x86", "arm", "thumb") else 64)) - 1
    for insn in md.disasm(data, pc, 1, detail=True):
        for op in insn.operands:
            if not op.memory:
                continue
            if op.segment:
                return None  # fs:/gs: relative: the segment base is not in the registers
            total = op.disp
            for name, scale in ((op.base, 1), (op.index, op.scale or 1)):
                if not name:
                    continue
                if name in ("rip", "eip"):
                    value: int | None = insn.address + insn.size
                elif name == "pc" and arch in ("arm", "thumb"):  # reads as the instruction's + 8 (+ 4)
                    value = (insn.address + (4 if arch == "thumb" else 8)) & ~3
                else:
                    value = _register(name, regs, arch)
                if value is None:
                    return None
                total += value * scale
            return int(total) & mask
        return None
    return None


OPERAND_ARCHES = ("x86_64", "x32", "i386", "x86", "aarch64", "arm", "thumb", "ppc64le", "ppc64", "s390x")
"""The instruction sets whose memory operands ``operand_address`` computes (capstone's base, index,
scale and displacement)."""


def _register(name: str, regs: dict[str, int], arch: str) -> int | None:
    """A register's value by capstone's name (32-bit views of 64-bit registers included)."""
    if name in regs:
        return regs[name]
    if arch == "x86_64" and name.startswith("e") and "r" + name[1:] in regs:
        return regs["r" + name[1:]] & 0xFFFFFFFF
    if arch == "x86_64" and name.endswith("d") and name[:-1] in regs:  # r8d
        return regs[name[:-1]] & 0xFFFFFFFF
    if arch == "aarch64":
        if name in ("xzr", "wzr"):
            return 0
        alias = {"fp": "x29", "lr": "x30"}.get(name, name)
        if alias in regs:
            return regs[alias]
        if name.startswith("w") and "x" + name[1:] in regs:
            return regs["x" + name[1:]] & 0xFFFFFFFF
    if arch in ("arm", "thumb"):
        alias = {"sb": "r9", "sl": "r10", "r11": "fp", "r12": "ip", "r13": "sp", "r14": "lr"}.get(name, name)
        return regs.get(alias)
    if arch == "s390x" and name.isdigit():  # capstone names s390x's general registers by number
        return regs.get(f"r{name}")
    return None
