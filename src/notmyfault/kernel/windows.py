"""The ``!analyze -v`` page for Windows kernel dumps: the bug check, its arguments, the stack, the blame.

The blame rule for kernel dumps (kept as data in bugcheck.py): when the bug
check says which argument is the address of the faulting instruction, the
driver that holds that address is blamed (the seed's ``myfault+579`` comes
from argument 4 of D1); otherwise the first frame of the stack outside the
kernel and the HAL; otherwise the innermost frame in a module.
"""

from __future__ import annotations

import contextlib
import ntpath
import struct
from dataclasses import replace

from notmyfault.analysis.decode import decode_bytes
from notmyfault.analysis.result import CrashAnalysis
from notmyfault.analysis.wincodes import ACCESS_KINDS
from notmyfault.dumps import origin
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.windump import Thread as KernelThread
from notmyfault.dumps.windump import WindowsKernelDump
from notmyfault.kernel.bugcheck import KERNEL_MODULES, bugcheck
from notmyfault.unwind.frames import Frame
from notmyfault.unwind.pe import x64_steps
from notmyfault.unwind.windows import Symbols, fp_chain_frames, frame_at


def _is_kernel(module: str | None) -> bool:
    return bool(module) and ntpath.basename(module or "").lower() in KERNEL_MODULES


SCAN_BYTES = 0x2000
SCAN_FRAMES = 16
TRIAGE_SCAN_BYTES = 0x6000
"""An x64 kernel stack's size (24 KiB): a triage dump's saved call stack is scanned to its end."""
TRIAGE_SCAN_FRAMES = 256


def _scan(
    kd: WindowsKernelDump, sp: int | None, size: int = SCAN_BYTES, limit: int = SCAN_FRAMES
) -> tuple[list[Frame], bool]:
    """Words on the stack above ``sp`` that point into a loaded module (frames marked ``scan``):
    inside a driver's range (as the dump's module list gives it), not its first byte (a base is
    no return address); and whether ``limit`` frames cut the scan short."""
    if sp is None:
        return [], False
    out: list[Frame] = []
    for offset in range(0, size, 8):
        try:
            (word,) = struct.unpack("<Q", kd.read(sp + offset, 8))
        except UnreadableMemory:
            break
        driver = kd.module_at(word)
        if driver is not None and word != driver.base:
            if len(out) >= limit:
                return out, True
            out.append(frame_at(kd, len(out) + 1, word, sp + offset + 8, "scan"))
    return out, False


def _triage_x64_frames(
    kd: WindowsKernelDump, first: Frame, regs: dict[str, int], notes: list[str]
) -> tuple[Frame, ...]:
    """An x64 triage dump's stack past its context: x64 kernel code keeps no frame-pointer chain, so
    by the images' unwind data where the dump holds it, else by scanning the saved call stack for
    addresses inside the drivers' ranges, as Breakpad's and rizin's walks do without unwind data."""
    steps, problem = x64_steps(kd.read, kd.image_at, regs)
    if len(steps) > 1:
        if problem:
            notes.append(f"the unwind stopped at {steps[-1].pc:#x}: {problem}")
        return tuple(frame_at(kd, i, s.pc, s.sp, s.how) for i, s in enumerate(steps))
    scanned, cut = _scan(kd, first.sp, TRIAGE_SCAN_BYTES, TRIAGE_SCAN_FRAMES)
    if scanned:
        notes.append(
            "frames after the first were found by scanning the saved call stack for addresses inside the "
            f"drivers' ranges (the dump holds no unwind data of theirs: {problem}): some may be stale"
        )
    if cut:
        notes.append(f"the scan stopped at {TRIAGE_SCAN_FRAMES} frames: the stack goes on past them")
    return (first, *scanned)


def kernel_frames(
    kd: WindowsKernelDump, thread: KernelThread, notes: list[str], symbols: Symbols = None
) -> tuple[Frame, ...]:
    """A thread's frames in a Windows kernel dump, innermost first, as ``analyze`` and ``stack``
    show them (what limits the walk is added to ``notes``): frame-pointer chains for x86 and
    aarch64 kernels and triage dumps (an x64 triage dump's saved stack is scanned where it holds no
    chain), the images' unwind data for x64 (else a scan of the stack for addresses in drivers)."""
    if kd.is_triage or (kd.reads_memory and kd.arch != "x86_64"):  # x86 kernels keep EBP chains
        frames = tuple(fp_chain_frames(kd, thread, symbols))
        if kd.is_triage and kd.arch == "x86_64" and len(frames) == 1:
            frames = _triage_x64_frames(kd, frames[0], thread.regs, notes)
        return frames
    if not kd.reads_memory:
        why = (
            f"the page-table walk is written for x86_64, aarch64 and x86, not {kd.arch}"
            if kd.arch not in ("x86_64", "aarch64", "x86")
            else "it records no physical memory (or its dump type keeps none)"
        )
        notes.append(
            f"this is a {kd.dump_type} dump: its bug check and context are read, its memory (the stack "
            f"beyond the context, the module list) is not: {why}"
        )
        return tuple(fp_chain_frames(kd, thread, symbols))[:1]
    steps, problem = x64_steps(kd.read, kd.image_at, thread.regs)
    frames = tuple(frame_at(kd, i, s.pc, s.sp, s.how, symbols) for i, s in enumerate(steps))
    if len(steps) == 1:
        frames += tuple(_scan(kd, thread.sp)[0])
        if len(frames) > 1:
            notes.append(
                f"frames after the first were found by scanning the stack for addresses in loaded "
                f"modules, since the unwind data could not be used ({problem}): some may be stale"
            )
    elif problem:
        notes.append(f"the unwind stopped at {frames[-1].location()}: {problem}")
    return frames


def analyze_kernel_dump(kd: WindowsKernelDump) -> CrashAnalysis:
    """Analyse a Windows kernel dump: the same result object as for process cores and minidumps."""
    code, params = kd.bugcheck
    bc = bugcheck(code)
    thread = kd.threads[0] if kd.threads else None
    notes: list[str] = []
    frames: tuple[Frame, ...] = ()
    if thread is not None:
        frames = kernel_frames(kd, thread, notes)
    if kd.module_list_problem:
        notes.append(kd.module_list_problem)
    if frames and all(f.function is None for f in frames):
        notes.append("frames are module+offset: names need the modules' PDB symbols, which are not read")
    elif any(f.function for f in frames):
        notes.append(
            "names are the drivers' exports (PDB symbols are not read): a function that is not exported "
            "shows as the nearest export before it"
        )
    blamed, reason = None, "no frame lies in a known module"
    if bc.code_arg is not None:
        addr = params[bc.code_arg]
        driver = kd.module_at(addr)
        if driver is not None:
            # named as a pc, not a return address: the argument is the faulting instruction itself
            blamed = replace(frame_at(kd, -1, addr, None, "context"), how="bug check argument")
            reason = f"argument {bc.code_arg + 1} of the bug check is the address of the faulting instruction"
    if blamed is None:
        outside = next((f for f in frames if f.module and not _is_kernel(f.module)), None)
        inside = next((f for f in frames if f.module), None)
        if outside is not None:
            blamed, reason = outside, "first frame outside the kernel and the HAL"
        elif inside is not None:
            blamed, reason = inside, "every frame is in the kernel or the HAL: the innermost one is blamed"
    insn = None
    if thread is not None and thread.pc is not None:
        with contextlib.suppress(UnreadableMemory):  # triage dumps often keep the code around the pc
            insn = decode_bytes(kd.read(thread.pc, 16), thread.pc, kd.arch)
    access = None
    if bc.args[2].startswith("0: read"):
        access = ACCESS_KINDS.get(params[2])
    memory = bc.args[0] == "memory referenced"
    return CrashAnalysis(
        path=origin(kd),
        arch=kd.arch,
        executable=kd.drivers[0].name if kd.drivers else None,
        fault_address=params[0] if memory else None,
        access=access,
        access_source="argument 3 of the bug check" if access else "not known",
        fault_pc=thread.pc if thread else None,
        instruction=insn,
        crash_class=bc.name,
        description=bc.meaning or "A bug check this table does not describe.",
        blamed=blamed,
        blame_reason=reason,
        frames=frames,
        notes=tuple(notes),
        dump_kind="windows-kernel",
        truncated=kd.truncation,
        exception_code=code,
        exception_name=bc.name,
        exception_parameters=params,
        argument_notes=bc.args,
    )
