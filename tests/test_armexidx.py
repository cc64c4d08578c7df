"""The EHABI reader (unwind/armexidx.py) against the ABI's opcode table and against binutils.

- Every entry of a static ARM program's ``.ARM.exidx`` (glibc's functions among them) decodes to
  the opcode bytes ``readelf -u`` lists for it, and the same functions are cantunwind.
- Each opcode family of Arm IHI 0038 section 10.3 moves the virtual stack pointer and restores the
  registers the table says, on hand-made frames.
- Random opcode strings never raise: they give registers or None.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from notmyfault.unwind import armexidx
from tests.coretools import build_frames

SP, LR, PC = armexidx.SP, armexidx.LR, armexidx.PC


def _memory(base: int, words: list[int]) -> armexidx.ReadWord:
    def read(addr: int) -> int | None:
        k, rem = divmod(addr - base, 4)
        return words[k] if not rem and 0 <= k < len(words) else None

    return read


STACK = 0x1000
WORDS = [0x100 + i for i in range(64)]  # the word at STACK + 4k is 0x100 + k
READ = _memory(STACK, WORDS)


def _run(ops: list[int], **regs: int) -> tuple[dict[int, int], bool] | None:
    start = {SP: STACK, LR: 0xBEEF, 7: STACK + 16}
    start.update({int(k[1:]): v for k, v in regs.items()})
    return armexidx.unwind(ops, start, READ)


@pytest.mark.parametrize(
    ("ops", "sp", "restored", "pc"),
    [
        ([0x04, 0xB0], STACK + 20, {}, 0xBEEF),  # vsp += (4 << 2) + 4
        ([0x3F], STACK + 256, {}, 0xBEEF),
        ([0x04, 0x41], STACK + 20 - 8, {}, 0xBEEF),  # vsp -= (1 << 2) + 4
        ([0xA8 | 2], STACK + 16, {4: 0x100, 5: 0x101, 6: 0x102, LR: 0x103}, 0x103),  # pop r4-r6, lr
        ([0xA0 | 1], STACK + 8, {4: 0x100, 5: 0x101}, 0xBEEF),  # pop r4-r5
        ([0x80 | 0x4, 0x88], STACK + 12, {7: 0x100, 11: 0x101, LR: 0x102}, 0x102),  # pop {r7, r11, r14}
        ([0x80 | 0x8, 0x00], STACK + 4, {PC: 0x100}, 0x100),  # pop {r15}: the pc itself
        ([0xB1, 0x05], STACK + 8, {0: 0x100, 2: 0x101}, 0xBEEF),  # pop {r0, r2}
        ([0xB2, 0x01], STACK + 0x204 + 4, {}, 0xBEEF),  # vsp += 0x204 + (1 << 2)
        ([0xB2, 0x81, 0x01], STACK + 0x204 + (0x81 & 0x7F | 1 << 7) * 4, {}, 0xBEEF),  # a two-byte uleb128
        ([0xB3, 0x12], STACK + 3 * 8 + 4, {}, 0xBEEF),  # FSTMFDX D1-D3
        ([0xB8 | 1], STACK + 2 * 8 + 4, {}, 0xBEEF),  # FSTMFDX D8-D9
        ([0xC8, 0x01], STACK + 2 * 8, {}, 0xBEEF),  # VPUSH D16-D17
        ([0xC9, 0x21], STACK + 2 * 8, {}, 0xBEEF),  # VPUSH D2-D3
        ([0xD0 | 3], STACK + 4 * 8, {}, 0xBEEF),  # VPUSH D8-D11
        ([0x97, 0xA8], STACK + 16 + 8, {4: 0x104, LR: 0x105}, 0x105),  # vsp = r7, then pop r4, lr
        ([0xB0, 0x04], STACK, {}, 0xBEEF),  # finish: what follows is not run
    ],
)
def test_each_opcode_family(ops: list[int], sp: int, restored: dict[int, int], pc: int) -> None:
    found = _run(ops)
    assert found is not None
    regs, whole = found
    assert regs[SP] == sp
    assert regs[PC] == pc
    assert whole == (PC in restored)
    for reg, value in restored.items():
        assert regs[reg] == value


@pytest.mark.parametrize(
    "ops",
    [
        [0x80, 0x00],  # "refuse to unwind"
        [0xB1, 0x00],  # spare
        [0xB1, 0x10],  # spare
        [0x9D],  # vsp = sp: reserved
        [0x9F],  # vsp = pc: reserved
        [0xB4],  # spare
        [0xE0],  # spare
        [0x80],  # cut short
        [0xAF, 0xAF, 0xAF] * 6,  # pops past the memory the dump holds
    ],
)
def test_refused_or_unreadable_frames_give_none(ops: list[int]) -> None:
    assert _run(ops) is None


def test_entry_forms_and_prel31() -> None:
    assert armexidx._prel31(0x1000, 0x7FFFFFFC) == 0x0FFC  # -4
    assert armexidx._prel31(0x1000, 0x00000010) == 0x1010
    assert armexidx._compact(0x80A8B0B0, []) == [0xA8, 0xB0, 0xB0]  # routine 0: three bytes
    assert armexidx._compact(0x81020A3F, [0x84008F00]) == [0x0A, 0x3F, 0x84, 0x00, 0x8F, 0x00]  # routine 1
    assert armexidx._compact(0x83000000, []) is None  # routines 3-15 are reserved


def test_random_opcodes_never_raise() -> None:
    rng = random.Random(28)
    for _ in range(5000):
        ops = [rng.randrange(256) for _ in range(rng.randrange(1, 12))]
        found = armexidx.unwind(ops, {SP: STACK, LR: 2, 7: STACK + 8, 11: STACK}, READ)
        assert found is None or (found[0][SP] >= 0 and PC in found[0])


@pytest.mark.skipif(not shutil.which("arm-linux-gnueabihf-gcc"), reason="needs the ARM cross compiler")
def test_every_entry_decodes_as_readelf_lists_it(tmp_path: Path) -> None:
    exe = tmp_path / "frames"
    build_frames("arm-linux-gnueabihf-gcc", exe)
    listing = subprocess.run(["readelf", "-u", str(exe)], capture_output=True, text=True, check=True).stdout
    table = armexidx.read_table(str(exe))
    assert table is not None
    entries = re.split(r"\n\n(?=0x[0-9a-f]+ <)", listing.split("entries:", 1)[1].strip())
    assert len(entries) == len(table.starts) > 100
    checked = cantunwind = 0
    for block in entries:
        start = int(block.split()[0], 16)
        assert start in table.starts
        want = [
            int(b, 16)
            for line in block.splitlines()
            if (m := re.match(r"^  ((?:0x[0-9a-f]{2} ?)+)", line))
            for b in m.group(1).split()
        ]
        ops = table.opcodes(start)
        if "[cantunwind]" in block:
            assert ops is None
            cantunwind += 1
            continue
        assert ops is not None, block
        # readelf lists the opcodes up to the word's end; trailing "finish" (0xb0) pads it
        assert ops[: len(want)] == want, (hex(start), ops, want)
        assert all(op == 0xB0 for op in ops[len(want) :]), (hex(start), ops, want)
        checked += 1
    assert checked > 100
    assert cantunwind > 5
    # and a word read from the file through the PT_LOADs is the file's own
    first_load = table.loads[0]
    assert table.word(first_load[0]) == struct.unpack_from("<I", exe.read_bytes(), first_load[1])[0]


# glibc's __libc_message: push {r1, r2, r3}; ldr r1, [pc, #404]; stmdb sp!, {r4-sl, lr}; mov.w r8, #0;
# ldr r2, [pc, #396]; sub sp, #28; add r7, sp, #8 (its body moves sp again: the CFA is r7's)
LIBC_MESSAGE = bytes.fromhex("0eb465492de9f0474ff00008634a87b002af")


def test_the_prologue_gives_the_cfa_from_the_frame_pointer_it_set_up() -> None:
    found = armexidx.thumb_prologue(LIBC_MESSAGE, 0x1000, 0x1000 + len(LIBC_MESSAGE))
    assert found is not None
    depth, saved, frame = found
    assert depth == 12 + 32 + 28
    assert frame == (7, depth - 8)  # r7 = sp + 8 once everything was pushed: the CFA is r7 + 64
    assert (saved[14], saved[4], saved[1]) == (16, 44, 12)  # distances below the CFA
    cfa = STACK + 0x100
    regs = armexidx.prologue_caller(
        found, {SP: STACK - 0x40, 7: cfa - 64, LR: 1}, _memory(cfa - 64, list(range(64)))
    )
    assert regs is not None
    assert regs[SP] == cfa
    assert regs[PC] == regs[LR] == (64 - 16) // 4  # the word 16 bytes below the CFA
    # before the frame pointer is set up, sp decides
    early = armexidx.thumb_prologue(LIBC_MESSAGE, 0x1000, 0x1000 + 10)
    assert early is not None
    assert (early[0], early[2]) == (12 + 32, None)


def test_a_leaf_returns_through_lr_only_as_the_innermost_frame() -> None:
    found = armexidx.thumb_prologue(bytes.fromhex("01200122"), 0x2000, 0x2004)  # movs r0, #1; movs r2, #1
    assert found == (0, {}, None)
    assert armexidx.prologue_caller(found, {SP: STACK, LR: 0x4321}, READ) is None
    leaf = armexidx.prologue_caller(found, {SP: STACK, LR: 0x4321}, READ, leaf=True)
    assert leaf is not None
    assert (leaf[PC], leaf[SP]) == (0x4321, STACK)
