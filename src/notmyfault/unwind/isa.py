"""One capstone disassembler per architecture, for every part of the analysis that decodes code."""

from __future__ import annotations

from typing import Any


def capstone_for(arch: str) -> Any | None:
    """A capstone ``Cs`` for ``arch`` (x86_64 and x32, i386 and x86, aarch64, ppc64le and ppc64, s390x,
    arm, riscv64), or None for others.

    capstone is imported here, on first use: it costs about 50 ms of start-up.
    """
    import capstone  # type: ignore[import-untyped]

    if arch in ("x86_64", "x32"):
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    if arch in ("i386", "x86"):
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    if arch == "aarch64":
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    if arch in ("ppc64le", "ppc64"):
        endian = capstone.CS_MODE_LITTLE_ENDIAN if arch == "ppc64le" else capstone.CS_MODE_BIG_ENDIAN
        return capstone.Cs(capstone.CS_ARCH_PPC, capstone.CS_MODE_64 | endian)
    if arch == "s390x":
        return capstone.Cs(capstone.CS_ARCH_SYSZ, capstone.CS_MODE_BIG_ENDIAN)
    if arch == "arm":
        return capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM)
    if arch == "thumb":  # 32-bit ARM's Thumb-2 instruction set (see code_arch)
        return capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB)
    if arch == "riscv64":
        return capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
    return None


CPSR_THUMB = 1 << 5
"""CPSR's T bit: the thread runs Thumb code."""


def code_arch(arch: str, regs: dict[str, int]) -> str:
    """The instruction set a thread runs at its pc: ``thumb`` for 32-bit ARM with CPSR's T bit set
    (Debian's armhf builds Thumb-2 code), else ``arch``."""
    if arch == "arm" and regs.get("cpsr", 0) & CPSR_THUMB:
        return "thumb"
    return arch
