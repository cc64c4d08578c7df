"""A real x64 Windows driver image, crashed in an emulated CPU, written down as a kernel dump.

``tests/fixtures/winfault.c`` (and its version resource, ``winfault.rc``) is
built by MinGW-w64 into ``myfault.sys``: gcc's own prologs and unwind data,
nothing written by hand. The image is loaded by pefile at a kernel address,
and unicorn runs ``DriverEntry`` on x86_64 with paging on, through page
tables in the same physical memory the dump will hold, until the innermost
function writes through a null pointer. At the entry of every function the
CPU's state is recorded: the return address, the stack pointer of the caller
and the nonvolatile registers the caller had, which is exactly what an unwind
of that frame must give back.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.windump_synth import X64Memory, module_list, x64_full_dump

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CC, WINDRES = "x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-windres"
MYFAULT = 0xFFFFF88004E90000
NT, NT_SIZE = 0xFFFFF80002A00000, 0x5DF000
NT_RETURN = NT + 0x8B2E9
"""The return address DriverEntry is called with: in ntoskrnl.exe, whose image the dump does not hold."""
STACK, STACK_SIZE = 0xFFFFF88000100000, 0x8000
MODULES = 0xFFFFF80000005000
NONVOLATILE = ("rbx", "rbp", "rsi", "rdi", "r12", "r13", "r14", "r15")


def build(outdir: Path) -> Path:
    """Build ``myfault.sys`` from the fixture into ``outdir``."""
    if shutil.which(CC) is None:
        raise RuntimeError(f"{CC} is missing: ./dev test installs it (Debian: gcc-mingw-w64-x86-64-win32)")
    res = outdir / "winfault.res.o"
    subprocess.run([WINDRES, str(FIXTURES / "winfault.rc"), "-O", "coff", "-o", str(res)], check=True)
    out = outdir / "myfault.sys"
    subprocess.run(
        [CC, "-O2", "-nostdlib", "-shared", "-Wl,--subsystem,native", "-Wl,--entry,DriverEntry",
         "-o", str(out), str(FIXTURES / "winfault.c"), str(res), "-lgcc"],
        check=True,
    )  # fmt: skip
    return out


@dataclass
class Called:
    """The CPU at the entry of a function: what the unwind of its frame must give back."""

    function: str
    return_address: int
    caller_sp: int
    caller_regs: dict[str, int]
    caller_xmm: dict[int, bytes]


@dataclass
class Crash:
    """The crash, as the emulated CPU left it."""

    regs: dict[str, int]
    calls: list[Called]
    """Innermost first."""
    exports: dict[str, int]
    """Function name to its address."""
    fault_address: int


def crash(image: Path, dump: Path, stop_at: int | None = None, hide: tuple[int, ...] = ()) -> Crash:
    """Load ``image`` at MYFAULT, run DriverEntry until it faults, and write ``dump`` of the machine:
    a full kernel dump with BugCheck D1 {fault address, 2, 1, faulting pc}.

    With ``stop_at``, the CPU stops before that address instead (BugCheck E2, a manually initiated
    crash); the pages at the virtual addresses in ``hide`` are left out of the dump's page tables.
    """
    import pefile  # type: ignore[import-untyped]
    import unicorn  # type: ignore[import-untyped]
    from unicorn import x86_const as x

    pe = pefile.PE(str(image))
    mapped = pe.get_memory_mapped_image()
    exports = {s.name.decode(): MYFAULT + s.address for s in pe.DIRECTORY_ENTRY_EXPORT.symbols}
    memory = X64Memory()
    memory.map(MYFAULT, mapped + bytes(-len(mapped) % 0x1000))
    memory.map(STACK, bytes(STACK_SIZE))
    head = module_list(
        memory, MODULES, [("\\SystemRoot\\system32\\ntoskrnl.exe", NT, NT_SIZE),
                          ("\\??\\C:\\myfault.sys", MYFAULT, pe.OPTIONAL_HEADER.SizeOfImage)]
    )  # fmt: skip
    physical = memory.physical()

    cpu = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    cpu.mem_map(0, len(physical))
    cpu.mem_write(0, physical)
    cpu.reg_write(x.UC_X86_REG_CR3, memory.cr3)
    cpu.reg_write(x.UC_X86_REG_CR4, 1 << 5 | 1 << 9)  # PAE, OSFXSR
    cpu.reg_write(x.UC_X86_REG_MSR, (0xC0000080, 1 << 8 | 1 << 10))  # EFER: LME, LMA
    cpu.reg_write(x.UC_X86_REG_CR0, 1 << 31 | 1 << 1 | 1)  # PG, MP, PE
    reg = {name: getattr(x, f"UC_X86_REG_{name.upper()}") for name in ("rax", "rcx", "rdx", "rsp", "rip",
           "r8", "r9", "r10", "r11", "eflags", *NONVOLATILE)}  # fmt: skip
    xmm = {n: getattr(x, f"UC_X86_REG_XMM{n}") for n in range(6, 16)}
    for i, name in enumerate(NONVOLATILE):
        cpu.reg_write(reg[name], 0x1111111111111111 * (i + 1))
    for n, r in xmm.items():
        cpu.reg_write(r, int.from_bytes(bytes([n]) * 16, "little"))
    sp = STACK + STACK_SIZE - 0x100
    cpu.mem_write(memory.physical_address(sp), NT_RETURN.to_bytes(8, "little"))
    cpu.reg_write(reg["rsp"], sp)
    by_address = {a: n for n, a in exports.items()}
    calls: list[Called] = []

    def on_code(uc: object, address: int, size: int, data: object) -> None:
        name = by_address.get(address)
        if name is None:
            return
        rsp = cpu.reg_read(reg["rsp"])
        calls.insert(
            0,
            Called(
                name,
                int.from_bytes(cpu.mem_read(memory.physical_address(rsp), 8), "little"),
                rsp + 8,
                {n: cpu.reg_read(reg[n]) for n in NONVOLATILE},
                {n: cpu.reg_read(r).to_bytes(16, "little") for n, r in xmm.items()},
            ),
        )

    fault: list[int] = []

    def on_interrupt(uc: object, number: int, data: object) -> None:
        if number == 14:  # a page fault: CR2 holds the address
            fault.append(cpu.reg_read(x.UC_X86_REG_CR2))
        cpu.emu_stop()

    cpu.hook_add(unicorn.UC_HOOK_CODE, on_code, begin=MYFAULT, end=MYFAULT + len(mapped))
    cpu.hook_add(unicorn.UC_HOOK_INTR, on_interrupt)
    cpu.emu_start(exports["DriverEntry"], stop_at or NT_RETURN)
    regs = {name: cpu.reg_read(r) for name, r in reg.items()}
    after = bytearray(cpu.mem_read(0, len(physical)))
    for va in hide:
        after[memory.pte_address(va) : memory.pte_address(va) + 8] = bytes(8)
    if stop_at is not None:
        assert not fault, f"the CPU faulted at {fault[0]:#x} before {stop_at:#x}"
        assert regs["rip"] == stop_at, f"the CPU did not reach {stop_at:#x}"
        x64_full_dump(dump, bytes(after), memory.cr3, head, regs, 0xE2, (0, 0, 0, 0))
        return Crash(regs, calls, exports, 0)
    assert fault, f"DriverEntry returned instead of faulting (rip {regs['rip']:#x})"
    x64_full_dump(dump, bytes(after), memory.cr3, head, regs, 0xD1, (fault[0], 2, 1, regs["rip"]))
    return Crash(regs, calls, exports, fault[0])
