"""The disassembler (unwind/isa.py, unwind/cslib.py): capstone's library through ctypes gives what
capstone's own Python binding gives, instruction by instruction and operand by operand, for every
architecture the analyzer decodes; the structure offsets it reads are the ones the wheel's C
headers give (compiled here); and an analysis no longer imports the binding."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from notmyfault.unwind import cslib, isa
from notmyfault.unwind.cslib import LAYOUTS, Decoded, Operand

OFFSETS_C = r"""
#include <stdio.h>
#include <stddef.h>
#include <capstone/capstone.h>
#define F(s, f) printf("%s.%s %zu\n", #s, #f, offsetof(s, f))
#define S(s) printf("sizeof.%s %zu\n", #s, sizeof(s))
#define C(c) printf("%s %lld\n", #c, (long long)(c))
int main(void) {
    F(cs_insn, address); F(cs_insn, size); F(cs_insn, mnemonic); F(cs_insn, op_str); F(cs_insn, detail);
    S(cs_insn); F(cs_detail, x86); F(cs_detail, arm64); F(cs_detail, riscv);
    F(cs_x86, op_count); F(cs_x86, operands); S(cs_x86_op); F(cs_x86_op, type); F(cs_x86_op, access);
    F(cs_x86_op, mem.segment); F(cs_x86_op, mem.base); F(cs_x86_op, mem.index); F(cs_x86_op, mem.scale);
    F(cs_x86_op, mem.disp);
    F(cs_arm64, op_count); F(cs_arm64, operands); S(cs_arm64_op); F(cs_arm64_op, type);
    F(cs_arm64_op, access); F(cs_arm64_op, mem.base); F(cs_arm64_op, mem.index); F(cs_arm64_op, mem.disp);
    F(cs_arm, op_count); F(cs_arm, operands); S(cs_arm_op); F(cs_arm_op, type); F(cs_arm_op, access);
    F(cs_arm_op, mem.base); F(cs_arm_op, mem.index); F(cs_arm_op, mem.scale); F(cs_arm_op, mem.disp);
    F(cs_ppc, op_count); F(cs_ppc, operands); S(cs_ppc_op); F(cs_ppc_op, type); F(cs_ppc_op, mem.base);
    F(cs_ppc_op, mem.disp);
    F(cs_sysz, op_count); F(cs_sysz, operands); S(cs_sysz_op); F(cs_sysz_op, type);
    F(cs_sysz_op, mem.base); F(cs_sysz_op, mem.index); F(cs_sysz_op, mem.disp);
    F(cs_riscv, op_count); F(cs_riscv, operands); S(cs_riscv_op); F(cs_riscv_op, type);
    F(cs_riscv_op, mem.base); F(cs_riscv_op, mem.disp);
    C(CS_API_MAJOR); C(CS_API_MINOR);
    C(CS_ARCH_ARM); C(CS_ARCH_ARM64); C(CS_ARCH_X86); C(CS_ARCH_PPC); C(CS_ARCH_SYSZ); C(CS_ARCH_RISCV);
    C(CS_MODE_ARM); C(CS_MODE_32); C(CS_MODE_64); C(CS_MODE_THUMB); C(CS_MODE_BIG_ENDIAN);
    C(CS_MODE_RISCV64); C(CS_MODE_RISCVC); C(CS_OPT_SYNTAX); C(CS_OPT_DETAIL); C(CS_OPT_ON);
    C(CS_OPT_SYNTAX_ATT); C(X86_OP_MEM); C(ARM64_OP_MEM); C(ARM_OP_MEM); C(PPC_OP_MEM); C(SYSZ_OP_MEM);
    C(RISCV_OP_MEM); C(CS_AC_READ); C(CS_AC_WRITE);
    return 0;
}
"""

ARCH_STRUCTS = {"x86": "x86", "arm64": "arm64", "arm": "arm", "ppc": "ppc", "sysz": "sysz", "riscv": "riscv"}


def header_facts(tmp: Path) -> dict[str, int]:
    """offsetof, sizeof and the constants, compiled from the installed capstone wheel's headers."""
    lib = cslib.library_path()
    assert lib is not None, "the capstone wheel ships libcapstone.so"
    include = Path(lib).parent.parent / "include"
    if not (include / "capstone" / "capstone.h").is_file():
        pytest.fail(f"the capstone wheel has no C headers at {include}")
    (tmp / "offsets.c").write_text(OFFSETS_C)
    exe = tmp / "offsets"
    subprocess.run(["gcc", "-I", str(include), "-o", str(exe), str(tmp / "offsets.c")], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_the_offsets_read_are_the_headers(tmp_path: Path) -> None:
    facts = header_facts(tmp_path)
    assert (facts["CS_API_MAJOR"], facts["CS_API_MINOR"]) == cslib.API
    raw = cslib._Insn
    for name in ("address", "size", "mnemonic", "op_str", "detail"):
        assert getattr(raw, name).offset == facts[f"cs_insn.{name}"], name
    assert cslib.ctypes.sizeof(raw) == facts["sizeof.cs_insn"]
    assert facts["cs_detail.x86"] == facts["cs_detail.arm64"] == facts["cs_detail.riscv"] == cslib.DETAIL_ARCH
    for name, struct in ARCH_STRUCTS.items():
        layout = LAYOUTS[cslib.ARCH[name]]
        assert layout.op_count == facts[f"cs_{struct}.op_count"], name
        assert layout.operands == facts[f"cs_{struct}.operands"], name
        assert layout.op_size == facts[f"sizeof.cs_{struct}_op"], name
        assert layout.type == facts[f"cs_{struct}_op.type"], name
        assert layout.access == facts.get(f"cs_{struct}_op.access"), name
        for fld in ("segment", "base", "index", "scale", "disp"):
            spec = getattr(layout, fld)
            key = f"cs_{struct}_op.mem.{fld}"
            assert (spec[0] if spec else None) == facts.get(key), key
        assert facts[f"{struct.upper()}_OP_MEM"] == cslib.OP_MEM
    for name, value in cslib.ARCH.items():
        assert facts[f"CS_ARCH_{name.upper()}"] == value
    assert facts["CS_MODE_ARM"] == cslib.MODE_ARM
    assert facts["CS_MODE_THUMB"] == cslib.MODE_THUMB
    assert facts["CS_MODE_32"] == cslib.MODE_32
    assert facts["CS_MODE_64"] == cslib.MODE_64
    assert facts["CS_MODE_BIG_ENDIAN"] & 0xFFFFFFFF == cslib.MODE_BIG_ENDIAN
    assert facts["CS_MODE_RISCV64"] == cslib.MODE_RISCV64
    assert facts["CS_MODE_RISCVC"] == cslib.MODE_RISCVC
    assert (facts["CS_OPT_SYNTAX"], facts["CS_OPT_DETAIL"]) == (cslib.OPT_SYNTAX, cslib.OPT_DETAIL)
    assert (facts["CS_OPT_ON"], facts["CS_OPT_SYNTAX_ATT"]) == (cslib.OPT_ON, cslib.OPT_SYNTAX_ATT)
    assert (facts["CS_AC_READ"], facts["CS_AC_WRITE"]) == (cslib.AC_READ, cslib.AC_WRITE)


def _code_samples(rng: random.Random, count: int) -> list[bytes]:
    """Half random bytes, half real machine code (this interpreter's libpython or libc text)."""
    real = Path(os.path.realpath(sys.executable)).read_bytes()
    for lib in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"):
        if os.path.exists(lib):
            real = Path(lib).read_bytes()
            break
    out = []
    for k in range(count):
        if k % 2:
            out.append(bytes(rng.getrandbits(8) for _ in range(48)))
        else:
            at = rng.randrange(len(real) // 8, len(real) - 48)
            out.append(real[at : at + 48])
    return out


@pytest.mark.parametrize("arch", sorted(isa.MODES))
def test_the_library_decodes_as_the_binding(arch: str) -> None:
    """Every instruction (address, size, text) and, with details, every operand (kind, access, the
    memory operand's registers, scale and displacement) is what capstone's binding gives."""
    lib = cslib.load()
    assert lib is not None
    cs_arch, mode = isa.ARCH[isa.MODES[arch][0]], isa.MODES[arch][1]
    rng = random.Random(arch)
    memory = insns = 0
    for code in _code_samples(rng, 320):
        address = rng.getrandbits(47) & ~3
        for detail in (False, True):
            for att in (False, True) if cs_arch == cslib.ARCH["x86"] else (False,):
                ours = lib.disasm(cs_arch, mode, code, address, 0, detail, att)
                theirs = isa._binding_disasm(cs_arch, mode, code, address, 0, detail, att)
                assert ours == theirs, (arch, code.hex(), detail, att)
                insns += len(ours)
                memory += sum(op.memory for insn in ours for op in insn.operands)
    assert insns > 100
    assert memory > 10, "the samples hold memory operands to compare"


def test_known_instructions_field_by_field() -> None:
    """Instructions whose operands are known by hand, from the library."""
    x86 = isa.disassembler("x86_64")
    assert x86 is not None
    # mov dword ptr [rax + rbx*4 - 8], 1
    (insn,) = x86.disasm(bytes.fromhex("c74498f801000000"), 0x1000, detail=True)
    assert insn == Decoded(0x1000, 8, "mov", "dword ptr [rax + rbx*4 - 8], 1", insn.operands)
    assert insn.operands[0] == Operand(True, 2, None, "rax", "rbx", 4, -8)
    assert not insn.operands[1].memory
    # mov rax, qword ptr fs:[0x28]
    (insn,) = x86.disasm(bytes.fromhex("64488b042528000000"), 0x2000, detail=True)
    assert insn.operands[1] == Operand(True, 1, "fs", None, None, 1, 0x28)
    (insn,) = x86.disasm(bytes.fromhex("c74498f801000000"), 0x1000, att=True)
    assert insn.op_str == "$1, -8(%rax, %rbx, 4)"
    arm64 = isa.disassembler("aarch64")
    assert arm64 is not None
    # str x1, [x0, #16]
    (insn,) = arm64.disasm(bytes.fromhex("010800f9"), 0x4000, detail=True)
    assert (insn.mnemonic, insn.op_str) == ("str", "x1, [x0, #0x10]")
    assert insn.operands[1] == Operand(True, 3, None, "x0", None, 1, 16)  # capstone 5 marks it read and write
    assert isa.disassembler("mips") is None


def test_without_the_library_the_binding_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A capstone whose library is not 5.0's (here: none found) is used through its binding."""
    x86 = isa.disassembler("x86_64")
    assert x86 is not None
    code = bytes.fromhex("c74498f80100000064488b042528000000c3")
    with_lib = x86.disasm(code, 0x1000, detail=True)
    monkeypatch.setattr(isa, "_library", lambda: None)
    assert x86.disasm(code, 0x1000, detail=True) == with_lib
    assert [i.mnemonic for i in with_lib] == ["mov", "mov", "ret"]


def test_an_analysis_does_not_import_the_binding(tmp_path: Path) -> None:
    """The page of a NULL write (its faulting instruction decoded with details, the walk's call
    checks) is made without capstone's Python package."""
    from tests.coretools import null_write_core

    core = null_write_core(tmp_path)
    script = (
        "import sys, notmyfault\n"
        f"a = notmyfault.open_core({str(core)!r}).analysis()\n"
        "print(a.instruction.text, a.instruction.access, 'capstone' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["write", "False"], r.stdout
