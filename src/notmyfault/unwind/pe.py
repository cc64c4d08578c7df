"""x64 Windows stacks by the images' own unwind data, as RtlVirtualUnwind and WinDbg walk them.

Every x64 function that sets up a frame has a RUNTIME_FUNCTION in its image's
``.pdata``, and an UNWIND_INFO that lists its prolog's operations (pushes of
nonvolatile registers, allocations, a frame pointer, registers saved by MOV).
Undoing them from the frame's registers gives the caller's: its stack
pointer, its return address, and the nonvolatile registers it had.  A
function without an entry is a leaf: its return address is at rsp.

Where the code is in its prolog, only the operations done so far are
undone.  A pc in an epilog is unwound as if in the body (WinDbg decodes the
epilog's instructions; this walk does not): only the innermost frame can be
there.  When an image, or its ``.pdata``, is not in the dump, the walk stops
and says so.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from notmyfault.dumps import pe
from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.pe import PeImage, UnwindInfo

REGISTERS = (
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip
"""The unwind codes' register numbers."""
MAX_FRAMES = 64
MAX_CHAIN = 32


@dataclass(frozen=True)
class Step:
    """One frame of the walk: its registers (pc and sp among them) and how it was found."""

    regs: dict[str, int]
    xmm: dict[int, bytes]
    """xmm registers restored from the stack so far (number to 16 bytes)."""
    how: str

    @property
    def pc(self) -> int:
        """The frame's instruction pointer."""
        return self.regs["rip"]

    @property
    def sp(self) -> int:
        """The frame's stack pointer."""
        return self.regs["rsp"]


class UnwindError(Exception):
    """The frame cannot be unwound by the unwind data (the reason is the message)."""


def _word(read: pe.Reader, at: int) -> int:
    try:
        return int(struct.unpack("<Q", read(at, 8))[0])
    except UnreadableMemory as e:
        raise UnwindError(f"the stack at {at:#x} is not in the dump") from e


def unwind_once(read: pe.Reader, image: PeImage, step: Step, innermost: bool) -> Step:
    """The caller of ``step``, by ``image``'s unwind data (UnwindError if it cannot be done)."""
    regs, xmm = dict(step.regs), dict(step.xmm)
    rip = regs["rip"]
    # a return address may be the byte after a call that ends its function: look up the call
    rva = rip - image.base - (0 if innermost else 1)
    if not image.has_unwind_table:
        raise UnwindError(image.problem or "its image's unwind data is not in the dump")
    try:
        entry = image.function_entry(rva)
    except UnreadableMemory as e:
        raise UnwindError(f"a page of its image's .pdata is not in the dump ({e})") from e
    if entry is None:  # a leaf function: nothing pushed, the return address is at rsp
        regs["rip"] = _word(read, regs["rsp"])
        regs["rsp"] += 8
        return Step(regs, xmm, "unwind data (leaf)")
    info = image.unwind_info(entry)
    if info is None:
        raise UnwindError(f"the unwind info of the function at {image.base + entry[0]:#x} is not readable")
    offset = rip - image.base - info.begin
    primary = True
    for _ in range(MAX_CHAIN):
        done = _undo_prolog(read, info, regs, xmm, offset if primary else None)
        if done:  # a machine frame: the interrupted context is restored, no return address to pop
            return Step(regs, xmm, "unwind data (machine frame)")
        if info.chained is None:
            break
        chained = image.unwind_info(info.chained)
        if chained is None:
            raise UnwindError(f"a chained unwind info at {image.base + info.chained[2]:#x} is not readable")
        info, primary = chained, False
    else:
        raise UnwindError("the chain of unwind infos does not end")
    regs["rip"] = _word(read, regs["rsp"])
    regs["rsp"] += 8
    return Step(regs, xmm, "unwind data")


def _undo_prolog(
    read: pe.Reader, info: UnwindInfo, regs: dict[str, int], xmm: dict[int, bytes], offset: int | None
) -> bool:
    """Undo the prolog operations done at prolog ``offset`` (None: all, for a chained info).
    True if a machine frame ended the walk of this frame."""

    def done(code: pe.UnwindCode) -> bool:
        return offset is None or offset >= info.prolog_size or code.prolog_offset <= offset

    frame = regs["rsp"]
    fp_set = next((c for c in info.codes if c.op == pe.UWOP_SET_FPREG), None)
    if info.frame_register and fp_set is not None and done(fp_set):
        frame = regs[REGISTERS[info.frame_register]] - 16 * info.frame_offset
    for code in info.codes:
        if not done(code):
            continue
        if code.op == pe.UWOP_PUSH_NONVOL:
            regs[REGISTERS[code.info]] = _word(read, regs["rsp"])
            regs["rsp"] += 8
        elif code.op == pe.UWOP_ALLOC_LARGE:
            regs["rsp"] += code.operand
        elif code.op == pe.UWOP_ALLOC_SMALL:
            regs["rsp"] += 8 * code.info + 8
        elif code.op == pe.UWOP_SET_FPREG:
            regs["rsp"] = frame
        elif code.op in (pe.UWOP_SAVE_NONVOL, pe.UWOP_SAVE_NONVOL_FAR):
            regs[REGISTERS[code.info]] = _word(read, frame + code.operand)
        elif code.op in (pe.UWOP_SAVE_XMM128, pe.UWOP_SAVE_XMM128_FAR):
            try:
                xmm[code.info] = read(frame + code.operand, 16)
            except UnreadableMemory as e:
                raise UnwindError(
                    f"a saved xmm{code.info} at {frame + code.operand:#x} is not in the dump"
                ) from e
        elif code.op == pe.UWOP_PUSH_MACHFRAME:
            at = regs["rsp"] + (8 if code.info else 0)  # info 1: an error code was pushed first
            regs["rip"] = _word(read, at)
            regs["rsp"] = _word(read, at + 24)
            return True
    return False


def x64_steps(
    read: pe.Reader, image_at: Callable[[int], PeImage | None], regs: dict[str, int]
) -> tuple[list[Step], str | None]:
    """The frames from the context ``regs`` outwards, and why the walk ended early (None if it
    reached a frame whose return address lies in no loaded image, or stack memory ran out)."""
    steps = [Step(dict(regs), {}, "context")]
    image = image_at(regs["rip"])
    if image is None:
        return steps, f"{regs['rip']:#x} is in no loaded image"
    while len(steps) < MAX_FRAMES:
        step = steps[-1]
        try:
            caller = unwind_once(read, image, step, innermost=len(steps) == 1)
        except UnwindError as e:
            return steps, str(e)
        if caller.sp <= step.sp:
            return steps, f"the unwound stack pointer {caller.sp:#x} does not climb the stack"
        image = image_at(caller.pc)
        if image is None:  # the outermost frame (or a return address the dump cannot place)
            return steps, None
        steps.append(caller)
    return steps, f"the walk stopped at {MAX_FRAMES} frames"
