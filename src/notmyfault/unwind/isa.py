"""One capstone disassembler per architecture, for every part of the analysis that decodes code."""

from __future__ import annotations

from typing import Any


def capstone_for(arch: str) -> Any | None:
    """A capstone ``Cs`` for ``arch`` (x86_64 and x32, i386 and x86, aarch64), or None for others.

    capstone is imported here, on first use: it costs about 50 ms of start-up.
    """
    import capstone  # type: ignore[import-untyped]

    if arch in ("x86_64", "x32"):
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    if arch in ("i386", "x86"):
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    if arch == "aarch64":
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    return None
