"""32-bit ARM unwinding by the EHABI tables (``.ARM.exidx`` and ``.ARM.extab``).

On ARM, GCC and Clang describe how to unwind every function in the index table that the
``PT_ARM_EXIDX`` program header locates, not in ``.eh_frame``; drgn reads only DWARF CFI, so its
walks end at the first function without ``.debug_frame`` (all of libc's). The rules here are those
of "Exception Handling ABI for the Arm Architecture" (Arm IHI 0038), sections 5 to 10:

- the index is sorted by function start; each entry is two words: a prel31 offset to the function,
  then ``EXIDX_CANTUNWIND`` (1), an inline compact entry (bit 31 set), or a prel31 offset to the
  function's entry in ``.ARM.extab``;
- a compact entry (bit 31 set) names personality routine 0 (three opcode bytes in the word), or 1
  or 2 (bits 16-23: how many more words of opcodes follow); a generic entry starts with a prel31
  offset to its personality routine, and GCC's routines keep the same opcode layout as routine 1
  in the words after it;
- the opcodes (section 10.3) rebuild the caller's registers from a virtual stack pointer that starts
  at the frame's sp; where no opcode sets the pc, the caller resumes at the link register.

Only what the opcodes restore is known of the caller: the core registers popped, sp and pc.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass

PT_LOAD, PT_ARM_EXIDX = 1, 0x70000001
EXIDX_CANTUNWIND = 1
MAX_FILE = 256 << 20
"""Larger files are not read whole for their tables (no ARM executable comes near)."""
MAX_OPCODES = 1024
SP, LR, PC = 13, 14, 15

ReadWord = Callable[[int], int | None]
"""A 32-bit little-endian word of the process at an address (None where the dump holds none)."""


@dataclass(frozen=True)
class Table:
    """The EHABI index of one ELF file, as linked (add the load bias for the process's addresses)."""

    starts: list[int]
    """Each entry's function start, in order."""
    entries: list[tuple[int, int]]
    """Each entry's (address of its second word, second word)."""
    data: bytes
    loads: list[tuple[int, int, int]]
    """(vaddr, file offset, file size) of each PT_LOAD, to read .ARM.extab from the file."""

    def word(self, vaddr: int) -> int | None:
        """The file's 32-bit word at link address ``vaddr``."""
        for start, offset, size in self.loads:
            if start <= vaddr and vaddr + 4 <= start + size:
                at = offset + vaddr - start
                return int(struct.unpack_from("<I", self.data, at)[0]) if at + 4 <= len(self.data) else None
        return None

    def read(self, vaddr: int, size: int) -> bytes | None:
        """``size`` bytes of the file at link address ``vaddr`` (None past its PT_LOAD contents)."""
        for start, offset, filesz in self.loads:
            if start <= vaddr and vaddr + size <= start + filesz:
                at = offset + vaddr - start
                return self.data[at : at + size] if at + size <= len(self.data) else None
        return None

    def opcodes(self, pc: int) -> list[int] | None:
        """The unwind opcodes of the function holding link address ``pc``; None where the table has
        no entry for it or says it cannot be unwound."""
        i = bisect.bisect_right(self.starts, pc) - 1
        if i < 0:
            return None
        at, second = self.entries[i]
        if second == EXIDX_CANTUNWIND:
            return None
        if second & 0x80000000:
            return _compact(second, [], inline=True)
        where = _prel31(at, second)
        first = self.word(where)
        if first is None:
            return None
        if first & 0x80000000:
            count = (first >> 16) & 0xFF if (first >> 24) & 0x0F in (1, 2) else 0
            more = [self.word(where + 4 * (k + 1)) for k in range(count)]
            return None if None in more else _compact(first, [w for w in more if w is not None])
        data = self.word(where + 4)  # a generic entry: GCC's routines read routine 1's layout after it
        if data is None:
            return None
        count = data >> 24
        more = [self.word(where + 8 + 4 * k) for k in range(count)]
        if None in more:
            return None
        ops = [(data >> 16) & 0xFF, (data >> 8) & 0xFF, data & 0xFF]
        for w in more:
            assert w is not None
            ops += [(w >> 24) & 0xFF, (w >> 16) & 0xFF, (w >> 8) & 0xFF, w & 0xFF]
        return ops


def _prel31(at: int, word: int) -> int:
    """The address a prel31 field at ``at`` points to (31 bits, signed, relative to ``at``)."""
    offset = word & 0x7FFFFFFF
    if offset & 0x40000000:
        offset -= 0x80000000
    return (at + offset) & 0xFFFFFFFF


def _compact(first: int, more: list[int], inline: bool = False) -> list[int] | None:
    """The opcodes of a compact entry: routine 0 keeps three bytes, routines 1 and 2 two, then the
    bytes of the words that follow, most significant first."""
    index = (first >> 24) & 0x0F
    if index == 0:
        ops = [(first >> 16) & 0xFF, (first >> 8) & 0xFF, first & 0xFF]
    elif index in (1, 2) and not inline:
        ops = [(first >> 8) & 0xFF, first & 0xFF]
    else:
        return None  # routines 3-15 are reserved
    for w in more:
        ops += [(w >> 24) & 0xFF, (w >> 16) & 0xFF, (w >> 8) & 0xFF, w & 0xFF]
    return ops


def read_table(path: str) -> Table | None:
    """The EHABI index of the 32-bit little-endian ARM ELF file at ``path`` (None without one)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE or data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        return None
    try:
        (phoff,) = struct.unpack_from("<I", data, 28)
        phentsize, phnum = struct.unpack_from("<HH", data, 42)
        loads, exidx = [], None
        for k in range(phnum):
            p_type, off, vaddr, _pa, filesz, _memsz, _fl, _al = struct.unpack_from(
                "<8I", data, phoff + k * phentsize
            )
            if p_type == PT_LOAD:
                loads.append((vaddr, off, filesz))
            elif p_type == PT_ARM_EXIDX:
                exidx = (off, vaddr, filesz)
    except struct.error:
        return None
    if exidx is None:
        return None
    off, vaddr, size = exidx
    starts, entries = [], []
    for k in range(min(size, len(data) - off) // 8):
        first, second = struct.unpack_from("<II", data, off + 8 * k)
        at = vaddr + 8 * k
        starts.append(_prel31(at, first))
        entries.append((at + 4, second))
    order = sorted(range(len(starts)), key=starts.__getitem__)  # the linker sorts it; be sure
    return Table([starts[i] for i in order], [entries[i] for i in order], data, loads)


def unwind(ops: list[int], regs: dict[int, int], read: ReadWord) -> tuple[dict[int, int], bool] | None:
    """The caller's registers (by number: 13 sp, 14 lr, 15 pc) from the frame's ``regs`` by the
    opcodes ``ops``, and whether they restored the pc itself (a signal return's table pops every
    register of the interrupted context: its pc is where it stopped, not a return address); None
    where an opcode needs a register or memory the dump does not hold, or is one the ABI reserves or
    that says the frame cannot be unwound."""
    if SP not in regs:
        return None
    out = dict(regs)
    vsp = regs[SP]
    popped_pc = False

    def pop(numbers: list[int]) -> bool:
        nonlocal vsp, popped_pc
        for n in numbers:
            value = read(vsp)
            if value is None:
                return False
            out[n] = value
            vsp += 4
            popped_pc |= n == PC
        return True

    i = 0
    while i < len(ops) and i < MAX_OPCODES:
        op = ops[i]
        i += 1
        nxt = ops[i] if i < len(ops) else None
        if op & 0xC0 == 0x00:
            vsp += ((op & 0x3F) << 2) + 4
        elif op & 0xC0 == 0x40:
            vsp -= ((op & 0x3F) << 2) + 4
        elif op & 0xF0 == 0x80:
            if nxt is None:
                return None
            i += 1
            mask = ((op & 0x0F) << 8) | nxt
            if not mask:
                return None  # "refuse to unwind"
            if not pop([4 + b for b in range(12) if mask & (1 << b)]):
                return None
            if mask & (1 << (SP - 4)):
                vsp = out[SP]  # sp itself was popped: the stack goes on from its value
        elif op & 0xF0 == 0x90:
            n = op & 0x0F
            if n in (SP, PC) or n not in out:
                return None
            vsp = out[n]
        elif op & 0xF8 == 0xA0:
            if not pop(list(range(4, 5 + (op & 0x07)))):
                return None
        elif op & 0xF8 == 0xA8:
            if not pop([*range(4, 5 + (op & 0x07)), LR]):
                return None
        elif op == 0xB0:
            break
        elif op == 0xB1:
            if nxt is None or nxt == 0 or nxt & 0xF0:
                return None
            i += 1
            if not pop([b for b in range(4) if nxt & (1 << b)]):
                return None
        elif op == 0xB2:
            value, shift = 0, 0
            while i < len(ops):
                byte = ops[i]
                i += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            vsp += 0x204 + (value << 2)
        elif op == 0xB3 or op == 0xC8 or op == 0xC9:  # VFP D[s]..D[s+c]: FSTMFDX adds a word
            if nxt is None:
                return None
            i += 1
            vsp += ((nxt & 0x0F) + 1) * 8 + (4 if op == 0xB3 else 0)
        elif op & 0xF8 == 0xB8:
            vsp += ((op & 0x07) + 1) * 8 + 4
        elif op & 0xF8 == 0xD0:
            vsp += ((op & 0x07) + 1) * 8
        elif op & 0xF8 == 0xC0 and op not in (0xC6, 0xC7):
            vsp += ((op & 0x07) + 1) * 8  # iWMMXt wR[10]..
        elif op == 0xC6:
            if nxt is None:
                return None
            i += 1
            vsp += ((nxt & 0x0F) + 1) * 8
        elif op == 0xC7:
            if nxt is None or nxt == 0 or nxt & 0xF0:
                return None
            i += 1
            vsp += 4 * bin(nxt).count("1")
        else:
            return None  # spare and reserved opcodes
    out[SP] = vsp & 0xFFFFFFFF
    if not popped_pc:
        if LR not in out:
            return None
        out[PC] = out[LR]
    return out, popped_pc


PROLOGUE_INSNS = 48
"""How many instructions from a function's start the prologue analysis reads at most."""


def thumb_prologue(
    code: bytes, start: int, pc: int
) -> tuple[int, dict[int, int], tuple[int, int] | None] | None:
    """What a Thumb-2 function that starts at ``start`` (its ``code`` from there) has done to its
    stack by ``pc``, as gdb's prologue analysis reads it for a function the index does not cover:
    the bytes its stack pointer went down, where each register it saved lies (its distance below
    the caller's stack pointer, the CFA), and, where it set up a frame pointer (``add r7, sp, #n``
    or ``mov r7, sp``: the body may move sp again), that register and the CFA's distance above it.
    Reads ``push``/``stmdb sp!``, ``vpush`` and ``sub sp, #imm`` up to ``pc`` or the first branch;
    None where capstone decodes nothing."""
    from notmyfault.unwind.isa import disassembler

    md = disassembler("thumb")
    if md is None:
        return None
    depth = 0
    saved: dict[int, int] = {}
    frame: tuple[int, int] | None = None
    for count, insn in enumerate(md.disasm(code, start)):
        if insn.address >= pc or count >= PROLOGUE_INSNS:
            break
        mnemonic, ops = insn.mnemonic.split(".")[0], insn.op_str
        if mnemonic in ("push", "stmdb") and (mnemonic == "push" or ops.startswith("sp!")):
            regs = _register_list(ops)
            if regs is None:
                return None
            depth += 4 * len(regs)
            for k, reg in enumerate(sorted(regs)):
                saved[reg] = depth - 4 * k
        elif mnemonic == "vpush":
            regs = _register_list(ops, prefix="d")
            if regs is None:
                return None
            depth += 8 * len(regs)
        elif mnemonic in ("sub", "subw") and (ops.startswith("sp, #") or ops.startswith("sp, sp, #")):
            try:
                depth += int(ops.rsplit("#", 1)[1], 0)
            except ValueError:
                return None
        elif mnemonic in ("add", "addw", "mov") and (ops.startswith("r7, sp, #") or ops == "r7, sp"):
            try:
                frame = (7, depth - (int(ops.rsplit("#", 1)[1], 0) if "#" in ops else 0))
            except ValueError:
                return None
        elif (
            _is_branch(mnemonic)
            or mnemonic in ("pop", "ldm")
            or (mnemonic in ("mov", "add") and ops.startswith("sp"))
        ):
            break  # a branch, an epilogue, or sp set from elsewhere: the prologue is over
    return depth, saved, frame


_CONDITIONS = (
    "eq",
    "ne",
    "cs",
    "hs",
    "cc",
    "lo",
    "mi",
    "pl",
    "vs",
    "vc",
    "hi",
    "ls",
    "ge",
    "lt",
    "gt",
    "le",
    "al",
)


def _is_branch(mnemonic: str) -> bool:
    """Whether a Thumb-2 mnemonic (capstone's, without its width suffix) is a branch."""
    if mnemonic in ("b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh"):
        return True
    return mnemonic[:1] == "b" and mnemonic[1:] in _CONDITIONS


_NAMED = {"sb": 9, "sl": 10, "fp": 11, "ip": 12, "sp": 13, "lr": 14, "pc": 15}


def _register_list(ops: str, prefix: str = "r") -> list[int] | None:
    """The registers of ``{r4, r5, lr}`` (or ``{d8, d9}``) in capstone's text, by number."""
    if "{" not in ops or "}" not in ops:
        return None
    out = []
    for name in ops[ops.index("{") + 1 : ops.index("}")].split(","):
        name = name.strip()
        if name in _NAMED and prefix == "r":
            out.append(_NAMED[name])
        elif name.startswith(prefix) and name[1:].isdigit():
            out.append(int(name[1:]))
        else:
            return None
    return out


def prologue_caller(
    found: tuple[int, dict[int, int], tuple[int, int] | None],
    regs: dict[int, int],
    read: ReadWord,
    leaf: bool = False,
) -> dict[int, int] | None:
    """The caller's registers from a frame's ``regs`` by what ``thumb_prologue`` found: the CFA from
    the frame pointer it set up, else from sp; the saved registers read below it. A function that
    saved no link register returns through lr itself: taken only for a ``leaf`` frame (the
    innermost, whose lr nothing has overwritten since the call)."""
    depth, saved, frame = found
    if frame is not None and frame[0] in regs:
        cfa = regs[frame[0]] + frame[1]
    elif SP in regs:
        cfa = regs[SP] + depth
    else:
        return None
    out = dict(regs)
    for reg, below in saved.items():
        value = read(cfa - below)
        if value is None:
            return None
        out[reg] = value
    if LR not in saved and not leaf:
        return None
    out[SP] = cfa & 0xFFFFFFFF
    out[PC] = out[LR]
    return out
