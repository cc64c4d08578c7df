"""A thread's floating-point and vector registers, from the notes a Linux core keeps after its
NT_PRSTATUS: NT_PRFPREG and NT_X86_XSTATE.

- x86_64: NT_PRFPREG is the FXSAVE area (struct user_fpregs_struct, 512 bytes): the x87 control,
  status and abridged tag words, the last opcode, the FPU instruction and data pointers, MXCSR,
  st0-st7 (80 bits each, in stack order) and xmm0-xmm15. NT_X86_XSTATE is the XSAVE area in its
  standard (uncompacted) form: the same 512 bytes, the XSAVE header (XSTATE_BV at 512), then the
  AVX state, the upper halves of ymm0-ymm15, at 576.
- aarch64: NT_PRFPREG is struct user_fpsimd_state: v0-v31 (128 bits each), then FPSR and FPCR.

Names are gdb's (``info all-registers``), and x87's full tag word is made from the abridged one
as gdb and the Intel manual make it (the tag of each physical register from its contents).
"""

from __future__ import annotations

import struct

FXSAVE_SIZE = 512
XSAVE_AVX = 576
"""Where the upper halves of ymm0-ymm15 lie in the standard XSAVE layout (CPUID leaf 0xd, 2)."""
XFEATURE_AVX = 1 << 2


def _full_tag(abridged: int, status: int, st: list[bytes]) -> int:
    """x87's 16-bit tag word from FXSAVE's abridged 8-bit one: empty (3) where the abridged bit is
    clear, else the physical register's class: zero (1), special (2: NaN, infinity, denormal,
    unnormal) or valid (0). Physical register r is stack slot (r - TOP) mod 8."""
    top = (status >> 11) & 7
    tag = 0
    for r in range(8):
        if not abridged & (1 << r):
            kind = 3
        else:
            raw = st[(r - top) % 8]
            fraction = int.from_bytes(raw[:8], "little")
            exponent = int.from_bytes(raw[8:10], "little") & 0x7FFF
            if exponent == 0x7FFF:
                kind = 2
            elif exponent == 0:
                kind = 1 if fraction == 0 else 2
            else:
                kind = 0 if fraction >> 63 else 2
        tag |= kind << (2 * r)
    return tag


def x86_64_registers(fxsave: bytes | None, xstate: bytes | None) -> dict[str, int]:
    """The x87, SSE and AVX registers of an x86_64 thread (st0-st7 as their 80-bit patterns,
    xmm as 128-bit and ymm as 256-bit integers); {} without the notes. XSTATE's legacy area
    stands in for a missing NT_PRFPREG."""
    legacy = fxsave if fxsave is not None and len(fxsave) >= FXSAVE_SIZE else None
    if legacy is None and xstate is not None and len(xstate) >= FXSAVE_SIZE:
        legacy = xstate[:FXSAVE_SIZE]
    if legacy is None:
        return {}
    fcw, fsw, ftw, fop, fip, fdp, mxcsr = struct.unpack_from("<HHBxHQQI", legacy, 0)
    st = [legacy[32 + 16 * i : 32 + 16 * i + 10] for i in range(8)]
    xmm = [int.from_bytes(legacy[160 + 16 * i : 176 + 16 * i], "little") for i in range(16)]
    out = {"fctrl": fcw, "fstat": fsw, "ftag": _full_tag(ftw, fsw, st), "fop": fop, "fip": fip, "fdp": fdp}
    out.update({f"st{i}": int.from_bytes(raw, "little") for i, raw in enumerate(st)})
    out["mxcsr"] = mxcsr
    out.update({f"xmm{i}": v for i, v in enumerate(xmm)})
    if xstate is not None and len(xstate) >= XSAVE_AVX + 256:
        (features,) = struct.unpack_from("<Q", xstate, 512)
        for i in range(16):
            high = int.from_bytes(xstate[XSAVE_AVX + 16 * i : XSAVE_AVX + 16 * i + 16], "little")
            out[f"ymm{i}"] = (high if features & XFEATURE_AVX else 0) << 128 | xmm[i]
    return out


def aarch64_registers(fpsimd: bytes | None, big: bool = False) -> dict[str, int]:
    """The SIMD and floating-point registers of an aarch64 thread: v0-v31 (128-bit), fpsr, fpcr;
    {} without the note."""
    if fpsimd is None or len(fpsimd) < 32 * 16 + 8:
        return {}
    out = {
        f"v{i}": int.from_bytes(fpsimd[16 * i : 16 * i + 16], "big" if big else "little") for i in range(32)
    }
    out["fpsr"], out["fpcr"] = struct.unpack_from(">II" if big else "<II", fpsimd, 512)
    return out


def extended_value(raw: int) -> float:
    """An x87 register's 80-bit pattern as a float (to double precision; inf and nan as such)."""
    fraction, exponent = raw & (2**64 - 1), (raw >> 64) & 0x7FFF
    sign = -1.0 if raw >> 79 else 1.0
    if exponent == 0x7FFF:
        return sign * float("inf") if fraction & (2**63 - 1) == 0 else float("nan")
    if exponent == 0 and fraction == 0:
        return sign * 0.0
    try:
        return sign * (fraction / 2**63) * 2.0 ** ((exponent or 1) - 16383)
    except OverflowError:
        return sign * float("inf")
