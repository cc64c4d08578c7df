"""``u``: disassemble at an address or a symbol, with capstone."""

from __future__ import annotations

from notmyfault.analysis.result import Instruction
from notmyfault.dumps.elfcore import ElfCore
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.minidump import Minidump
from notmyfault.dumps.vmcore import Vmcore
from notmyfault.dumps.windump import WindowsKernelDump
from notmyfault.unwind.elf import Program, code_bytes
from notmyfault.unwind.isa import disassembler

MemoryDump = Minidump | WindowsKernelDump | Vmcore


class UnknownTarget(LookupError):
    """The address or symbol cannot be found."""


def resolve(program: Program, target: str) -> int:
    """An address from '0x...', a decimal, or a symbol name."""
    t = target.strip()
    try:
        return int(t, 0)
    except ValueError:
        pass
    try:
        return int(program.prog.symbol(t).address)
    except LookupError:
        raise UnknownTarget(
            f"no symbol named {t!r} in the dump's modules (give an address, or check the name)"
        ) from None


def disassemble(
    core: ElfCore, address: int, count: int = 8, syntax: str = "intel", sysroot: str | None = None
) -> list[Instruction]:
    """Up to ``count`` instructions from ``address`` (from the dump, or the mapped file)."""
    data = code_bytes(core, address, 16 * count, sysroot)
    if not data:
        raise UnknownTarget(
            f"no code at {address:#x}: the address is not in the dump nor in a mapped file on disk"
        )
    return decode_many(data, address, core.arch, count, syntax)


def disassemble_memory(
    dump: MemoryDump, address: int, count: int = 8, syntax: str = "intel"
) -> list[Instruction]:
    """Up to ``count`` instructions from ``address`` in a minidump's or a kernel dump's memory."""
    size = 16 * count
    while size >= 1:
        try:
            data = dump.read(address, size)
            break
        except UnreadableMemory:
            size //= 2
    else:
        raise UnknownTarget(f"no code at {address:#x}: the dump does not hold that memory")
    return decode_many(data, address, dump.arch, count, syntax)


def decode_many(data: bytes, address: int, arch: str, count: int, syntax: str = "intel") -> list[Instruction]:
    """Up to ``count`` instructions of ``data`` (machine code of ``arch`` at ``address``)."""
    md = disassembler(arch)
    if md is None:
        raise UnknownTarget(f"disassembly of {arch} is not supported yet")
    att = syntax == "att" and arch in ("x86_64", "x32", "i386", "x86")
    return [
        Instruction(insn.address, f"{insn.mnemonic} {insn.op_str}".strip(), insn.size, None)
        for insn in md.disasm(data, address, count, att=att)
    ]
