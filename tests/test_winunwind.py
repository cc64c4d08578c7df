"""x64 Windows kernel stacks by the images' unwind data, from a real driver crashed in an emulated CPU.

The driver is built by MinGW-w64 from tests/fixtures/winfault.c and run by
unicorn (tests/winfault.py); what the CPU did at every call is the expected
answer. Our reading of the unwind data is compared with MinGW's objdump, the
version resource with pefile reading the file itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from notmyfault.dumps import open_dump
from notmyfault.dumps import pe as pe_mod
from notmyfault.dumps.windump import WindowsKernelDump
from notmyfault.kernel.windows import analyze_kernel_dump
from notmyfault.unwind.isa import disassembler
from notmyfault.unwind.pe import REGISTERS, x64_steps
from tests import winfault
from tests.conftest import run_nmf

OBJDUMP, NM = "x86_64-w64-mingw32-objdump", "x86_64-w64-mingw32-nm"
CHAIN = ["wf_write", "wf_float", "wf_pushes", "wf_level2", "wf_level1", "DriverEntry"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return winfault.build(tmp_path_factory.mktemp("winfault"))


@pytest.fixture(scope="module")
def crashed(image: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, winfault.Crash]:
    dump = tmp_path_factory.mktemp("dump") / "MEMORY.DMP"
    return dump, winfault.crash(image, dump)


def _functions(image: Path) -> dict[str, int]:
    """Function name to RVA, by MinGW's nm."""
    out = subprocess.run([NM, str(image)], capture_output=True, text=True, check=True).stdout
    base = int(
        re.search(
            r"ImageBase\s+([0-9a-f]+)", subprocess.check_output([OBJDUMP, "-p", str(image)], text=True)
        )[1],  # type: ignore[index]
        16,
    )
    return {
        name: int(addr, 16) - base
        for addr, kind, name in (line.split() for line in out.splitlines())
        if kind == "T"
    }


def test_the_stack_is_the_one_the_cpu_built(crashed: tuple[Path, winfault.Crash], image: Path) -> None:
    """Every frame's pc and sp equal the return address and the stack pointer of the call the CPU
    made; each name and offset equals nm's function and the call's place in it."""
    dump, crash = crashed
    with open_dump(str(dump)) as kd:
        assert isinstance(kd, WindowsKernelDump)
        a = analyze_kernel_dump(kd)
    funcs = _functions(image)
    assert [f.function for f in a.frames] == [*CHAIN, None]
    assert a.frames[0].pc == crash.regs["rip"] == winfault.MYFAULT + funcs["wf_write"]
    assert a.frames[0].sp == crash.regs["rsp"]
    assert [f.how for f in a.frames] == ["context"] + ["unwind data"] * 6
    for frame, call in zip(a.frames[1:], crash.calls, strict=True):
        assert (frame.pc, frame.sp) == (call.return_address, call.caller_sp)
    for frame in a.frames[1:-1]:
        assert frame.offset == frame.pc - winfault.MYFAULT - funcs[frame.function or ""]
    assert a.frames[-1].location() == "ntoskrnl+0x8b2e9"
    assert a.blamed is not None
    assert a.blamed.location() == "myfault!wf_write+0x0"
    assert a.bucket == "DRIVER_IRQL_NOT_LESS_OR_EQUAL:windows:wf_write"
    assert a.notes[0] == "the unwind stopped at ntoskrnl+0x8b2e9: its image's headers are not in the dump"


def test_each_frame_gets_back_the_nonvolatile_registers_its_caller_had(
    crashed: tuple[Path, winfault.Crash],
) -> None:
    """rbx, rbp, rsi, rdi, r12-r15 and the xmm registers saved by a prolog, frame by frame, equal the
    CPU's at the call: pushes, MOV saves of xmm6-9, the large allocation, the frame pointer."""
    dump, crash = crashed
    with open_dump(str(dump)) as kd:
        assert isinstance(kd, WindowsKernelDump)
        steps, problem = x64_steps(kd.read, kd.image_at, crash.regs)
    assert problem == "its image's headers are not in the dump"
    assert len(steps) == 7
    for step, call in zip(steps[1:], crash.calls, strict=True):
        for name in winfault.NONVOLATILE:
            assert step.regs[name] == call.caller_regs[name], (call.function, name)
        for n, value in step.xmm.items():
            assert value == call.caller_xmm[n], (call.function, f"xmm{n}")
    assert sorted(steps[2].xmm) == [6, 7, 8, 9]  # wf_float's prolog saved them for wf_pushes' frame
    assert steps[-1].regs["rbx"] == 0x1111111111111111
    assert steps[-1].regs["r15"] == 0x8888888888888888


@pytest.mark.parametrize("function", ["wf_pushes", "wf_level1", "wf_float", "wf_level2"])
def test_a_pc_in_a_prolog_undoes_only_what_was_done(
    function: str, image: Path, crashed: tuple[Path, winfault.Crash], tmp_path: Path
) -> None:
    """Stopped before every instruction of a prolog, the caller's registers and return address come
    back whole (only the prolog operations done so far are undone)."""
    _dump, full = crashed
    begin = full.exports[function]
    with open_dump(str(_dump)) as kd:
        assert isinstance(kd, WindowsKernelDump)
        image_mem = kd.image_at(begin)
        assert image_mem is not None
        entry = image_mem.function_entry(begin - winfault.MYFAULT)
        assert entry is not None
        info = image_mem.unwind_info(entry)
        assert info is not None
    import pefile  # type: ignore[import-untyped]

    # every instruction boundary of the prolog, and the first instruction after it, by capstone
    rva = begin - winfault.MYFAULT
    text = pefile.PE(str(image)).get_memory_mapped_image()[rva : rva + 0x40]
    stops = [
        i.address for i in disassembler("x86_64").disasm(text, begin) if i.address - begin <= info.prolog_size
    ]
    expected = next(c for c in full.calls if c.function == function)
    for stop in stops:
        dump = tmp_path / f"{stop - begin}.dmp"
        crash = winfault.crash(image, dump, stop_at=stop)
        with open_dump(str(dump)) as kd:
            assert isinstance(kd, WindowsKernelDump)
            steps, _problem = x64_steps(kd.read, kd.image_at, crash.regs)
        caller = steps[1]
        assert (caller.pc, caller.sp) == (expected.return_address, expected.caller_sp), hex(stop - begin)
        for name in winfault.NONVOLATILE:
            assert caller.regs[name] == expected.caller_regs[name], (hex(stop - begin), name)
        assert [s.pc for s in steps[2:]] == [
            c.return_address for c in full.calls[full.calls.index(expected) + 1 :]
        ]


def _objdump_unwind(image: Path) -> dict[int, tuple[int, int, str, list[str]]]:
    """objdump's reading of .xdata: begin RVA -> (prolog size, frame offset, frame reg, code lines)."""
    text = subprocess.run([OBJDUMP, "-p", str(image)], capture_output=True, text=True, check=True).stdout
    base = int(re.search(r"ImageBase\s+([0-9a-f]+)", text)[1], 16)  # type: ignore[index]
    out: dict[int, tuple[int, int, str, list[str]]] = {}
    xdata = text[text.index("Dump of .xdata") :]
    for block in re.split(r"\n (?=[0-9a-f]{16} \(rva)", xdata)[1:]:
        begin = int(re.search(r"\): ([0-9a-f]+) -", block)[1], 16) - base  # type: ignore[index]
        m = re.search(r"Prologue size: 0x([0-9a-f]+), Frame offset: 0x([0-9a-f]+), Frame reg: (\w+)", block)
        assert m is not None
        codes = [line.strip() for line in block.splitlines() if line.strip().startswith("pc+")]
        out[begin] = (int(m[1], 16), int(m[2], 16), m[3], codes)
    return out


def _as_objdump(info: pe_mod.UnwindInfo) -> list[str]:
    """Our decoded codes in objdump's words."""
    out = []
    for c in info.codes:
        reg = REGISTERS[c.info]
        text = {
            pe_mod.UWOP_PUSH_NONVOL: f"push {reg}",
            pe_mod.UWOP_ALLOC_SMALL: f"alloc small area: rsp = rsp - {8 * c.info + 8:#x}",
            pe_mod.UWOP_ALLOC_LARGE: f"alloc large area: rsp = rsp - {c.operand:#x}",
            pe_mod.UWOP_SET_FPREG: f"FPReg: {REGISTERS[info.frame_register]} = rsp + {16 * info.frame_offset:#x} "
            f"(info = {c.info:#x})",
            pe_mod.UWOP_SAVE_NONVOL: f"save {reg} at rsp + {c.operand:#x}",
            pe_mod.UWOP_SAVE_XMM128: f"save xmm{c.info} at rsp + {c.operand:#x}",
        }[c.op]
        out.append(f"pc+{c.prolog_offset:#04x}: {text}")
    return out


def test_the_unwind_data_reads_as_objdump_reads_it(crashed: tuple[Path, winfault.Crash], image: Path) -> None:
    """Every RUNTIME_FUNCTION of the image, read from the dump's memory, decodes to objdump's
    prolog size, frame register and codes."""
    expected = _objdump_unwind(image)
    assert len(expected) >= 6
    with open_dump(str(crashed[0])) as kd:
        assert isinstance(kd, WindowsKernelDump)
        img = kd.image_at(winfault.MYFAULT)
        assert img is not None
        for begin, (prolog, frame_offset, frame_reg, codes) in expected.items():
            entry = img.function_entry(begin)
            assert entry is not None
            assert entry[0] == begin
            info = img.unwind_info(entry)
            assert info is not None
            assert info.prolog_size == prolog
            assert info.frame_offset * 16 == frame_offset
            assert (REGISTERS[info.frame_register] if info.frame_register else "none") == frame_reg
            assert _as_objdump(info) == codes


def test_modules_v_reads_the_version_resource_from_memory(
    crashed: tuple[Path, winfault.Crash], image: Path
) -> None:
    """lmvm's version lines come from the image in the dump and equal pefile's reading of the file."""
    import pefile

    pe = pefile.PE(str(image))
    strings = {
        k.decode(): v.decode()
        for fi in pe.FileInfo[0]
        for st in getattr(fi, "StringTable", [])
        for k, v in st.entries.items()
    }
    assert strings["FileDescription"] == "Crash Test Driver"
    r = run_nmf("modules", "-v", "myfault", str(crashed[0]))
    assert r.returncode == 0, r.stderr
    assert "    File version:     4.1.2009.1124" in r.stdout
    assert "    Product version:  4.1.0.0" in r.stdout
    for key, value in strings.items():
        assert re.search(rf"^    {key}: +{re.escape(value)}$", r.stdout, re.M), key
    r = run_nmf("modules", "-v", "ntoskrnl", str(crashed[0]))
    assert "Version:      not in the dump" in r.stdout


def test_without_the_pdata_the_stack_is_scanned_and_says_why(image: Path, tmp_path: Path) -> None:
    """With the .pdata page left out of the dump, the walk cannot unwind: it scans, and says why."""
    import pefile

    pe = pefile.PE(str(image))
    pdata = next(s for s in pe.sections if s.Name.rstrip(b"\0") == b".pdata")
    dump = tmp_path / "nopdata.dmp"
    winfault.crash(image, dump, hide=(winfault.MYFAULT + pdata.VirtualAddress,))
    with open_dump(str(dump)) as kd:
        assert isinstance(kd, WindowsKernelDump)
        a = analyze_kernel_dump(kd)
    assert a.frames[0].function == "wf_write"
    assert {f.how for f in a.frames[1:]} == {"scan"}
    assert "myfault!wf_pushes+0x37" in [f.location() for f in a.frames]
    assert "since the unwind data could not be used (its image's .pdata is not in the dump)" in a.notes[0]


def test_corrupt_unwind_info_is_refused() -> None:
    """Bad versions, codes running past the data and unknown operations raise ValueError."""
    with pytest.raises(ValueError, match="version"):
        pe_mod.parse_unwind_info(bytes([0x03, 0, 0, 0]), 0, 1)
    with pytest.raises(ValueError, match="past"):
        pe_mod.parse_unwind_info(bytes([0x01, 4, 9, 0, 4, 0x32]), 0, 1)
    with pytest.raises(ValueError, match="not valid"):
        pe_mod.parse_unwind_info(bytes([0x01, 4, 1, 0, 4, 0x07]), 0, 1)
    with pytest.raises(ValueError, match="chained"):
        pe_mod.parse_unwind_info(bytes([0x21, 4, 0, 0]), 0, 1)
