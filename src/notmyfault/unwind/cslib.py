"""capstone's C library, called through ctypes for the few things the analyzer asks of it.

capstone's Python binding defines the ctypes structures of every architecture's operands when it is
imported: 20 to 30 ms of every analysis, which decodes a few x86 or arm64 instructions. This module
loads the same library (the one the ``capstone`` wheel ships; the package itself is not imported)
and reads only what a :class:`Decoded` instruction carries: each instruction's address, size and text, and with
details its operands' kinds, accesses and memory fields. The offsets of those fields are capstone
5.0's (``include/capstone/*.h``; tests/test_isa.py compiles them from the wheel's headers and
compares); a library of another version is not used (``load`` returns None, and ``unwind.isa`` falls
back on the binding).

May import: base.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import struct
from dataclasses import dataclass
from typing import NamedTuple

API = (5, 0)
"""The capstone API (CS_API_MAJOR, CS_API_MINOR) whose structure layouts this module knows."""

ARCH = {"arm": 0, "arm64": 1, "x86": 3, "ppc": 4, "sysz": 6, "riscv": 15}
"""cs_arch values."""
MODE_ARM, MODE_32, MODE_64, MODE_THUMB = 0, 4, 8, 16
MODE_BIG_ENDIAN = 1 << 31
MODE_RISCV64, MODE_RISCVC = 2, 4
OPT_SYNTAX, OPT_DETAIL = 1, 2
OPT_ON, OPT_SYNTAX_ATT = 3, 2
OP_MEM = 3
"""The memory operand's type in every architecture's enum (X86_OP_MEM, ARM64_OP_MEM, ...)."""
AC_READ, AC_WRITE = 1, 2
"""An operand's access bits (CS_AC_READ, CS_AC_WRITE)."""
DETAIL_ARCH = 96
"""offsetof(cs_detail, x86): where the architecture's part of the details starts."""


@dataclass(frozen=True)
class Layout:
    """Where one architecture's details keep what is read of them (offsets in bytes; each memory
    field as (offset, struct format) or None where the architecture has no such field)."""

    op_count: int
    operands: int
    op_size: int
    type: int
    access: int | None
    segment: tuple[int, str] | None
    base: tuple[int, str]
    index: tuple[int, str] | None
    scale: tuple[int, str] | None
    disp: tuple[int, str]


LAYOUTS = {
    # cs_x86: op_count, operands[8]; cs_x86_op: type, mem {segment, base, index, scale, disp}, access
    ARCH["x86"]: Layout(64, 72, 48, 0, 33, (8, "I"), (12, "I"), (16, "I"), (20, "i"), (24, "q")),
    # cs_arm64_op: type after vector_index, vas, shift, ext; mem {base, index, disp}; access last
    ARCH["arm64"]: Layout(7, 8, 56, 20, 48, None, (32, "I"), (36, "I"), None, (40, "i")),
    # cs_arm_op: type after vector_index and shift; mem {base, index, scale, disp, lshift}
    ARCH["arm"]: Layout(32, 40, 48, 12, 41, None, (16, "I"), (20, "I"), (24, "i"), (28, "i")),
    # cs_ppc_op: type, mem {base, disp}; no access
    ARCH["ppc"]: Layout(9, 16, 24, 0, None, None, (8, "I"), None, None, (12, "i")),
    # cs_sysz_op: type, mem {uint8 base, uint8 index, length, disp}; no access
    ARCH["sysz"]: Layout(4, 8, 32, 0, None, None, (8, "B"), (9, "B"), None, (24, "q")),
    # cs_riscv_op: type, mem {base, disp}; no access
    ARCH["riscv"]: Layout(1, 8, 24, 0, None, None, (8, "I"), None, None, (16, "q")),
}


class _Insn(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint),
        ("address", ctypes.c_uint64),
        ("size", ctypes.c_uint16),
        ("bytes", ctypes.c_uint8 * 24),
        ("mnemonic", ctypes.c_char * 32),
        ("op_str", ctypes.c_char * 160),
        ("detail", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class Operand:
    """One operand: whether it is memory, how it is accessed (CS_AC_* bits; None where capstone does
    not say), and a memory operand's fields (register names, None for none)."""

    memory: bool
    access: int | None
    segment: str | None = None
    base: str | None = None
    index: str | None = None
    scale: int = 1
    disp: int = 0


class Decoded(NamedTuple):
    """One instruction (operands: with details only)."""

    address: int
    size: int
    mnemonic: str
    op_str: str
    operands: tuple[Operand, ...]


class Library:
    """libcapstone, opened once; handles by (arch, mode, detail, AT&T syntax)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        lib.cs_open.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]
        lib.cs_option.argtypes = [ctypes.c_size_t, ctypes.c_int, ctypes.c_size_t]
        lib.cs_disasm.argtypes = [
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint64,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.POINTER(_Insn)),
        ]
        lib.cs_disasm.restype = ctypes.c_size_t
        lib.cs_free.argtypes = [ctypes.POINTER(_Insn), ctypes.c_size_t]
        lib.cs_free.restype = None
        lib.cs_reg_name.argtypes = [ctypes.c_size_t, ctypes.c_uint]
        lib.cs_reg_name.restype = ctypes.c_char_p
        self.handles: dict[tuple[int, int, bool, bool], int] = {}

    def handle(self, arch: int, mode: int, detail: bool, att: bool) -> int | None:
        """A capstone handle for these options (None if capstone refuses them)."""
        key = (arch, mode, detail, att)
        if key not in self.handles:
            h = ctypes.c_size_t()
            if self.lib.cs_open(arch, mode, ctypes.byref(h)) != 0:
                return None
            if detail and self.lib.cs_option(h.value, OPT_DETAIL, OPT_ON) != 0:
                return None
            if att and self.lib.cs_option(h.value, OPT_SYNTAX, OPT_SYNTAX_ATT) != 0:
                return None
            self.handles[key] = h.value
        return self.handles[key]

    def disasm(
        self, arch: int, mode: int, code: bytes, address: int, count: int, detail: bool, att: bool
    ) -> list[Decoded]:
        """Up to ``count`` instructions of ``code`` at ``address`` (0: all it decodes)."""
        h = self.handle(arch, mode, detail, att)
        if h is None:
            return []
        found = ctypes.POINTER(_Insn)()
        n = self.lib.cs_disasm(h, code, len(code), address & (2**64 - 1), count, ctypes.byref(found))
        if n == 0:
            return []
        try:
            out = []
            for i in range(n):
                raw = found[i]
                ops = self._operands(h, arch, raw.detail) if detail and raw.detail else ()
                text = raw.mnemonic.decode("ascii", "replace"), raw.op_str.decode("ascii", "replace")
                out.append(Decoded(raw.address, raw.size, *text, ops))
            return out
        finally:
            self.lib.cs_free(found, n)

    def _operands(self, h: int, arch: int, detail: int) -> tuple[Operand, ...]:
        layout = LAYOUTS.get(arch)
        if layout is None:
            return ()
        start = detail + DETAIL_ARCH
        count = ctypes.string_at(start + layout.op_count, 1)[0]
        raw = ctypes.string_at(start + layout.operands, count * layout.op_size)
        out = []
        for k in range(count):
            at = k * layout.op_size
            (kind,) = struct.unpack_from("=i", raw, at + layout.type)
            access = raw[at + layout.access] if layout.access is not None else None
            if kind != OP_MEM:
                out.append(Operand(False, access))
                continue

            def field(spec: tuple[int, str] | None, default: int = 0, at: int = at) -> int:
                return (
                    default if spec is None else int(struct.unpack_from("=" + spec[1], raw, at + spec[0])[0])
                )

            out.append(
                Operand(
                    True,
                    access,
                    self.reg_name(h, field(layout.segment)),
                    self.reg_name(h, field(layout.base)),
                    self.reg_name(h, field(layout.index)),
                    field(layout.scale, 1),
                    field(layout.disp),
                )
            )
        return tuple(out)

    def reg_name(self, h: int, reg: int) -> str | None:
        """A register's name (None for register 0, none)."""
        if not reg:
            return None
        name = self.lib.cs_reg_name(h, reg)
        return name.decode("ascii", "replace") if name else None


def library_path() -> str | None:
    """The libcapstone that the installed ``capstone`` package ships (found without importing it)."""
    try:
        spec = importlib.util.find_spec("capstone")
    except (ImportError, ValueError):
        return None
    for where in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(where, "lib", "libcapstone.so")
        if os.path.isfile(path):
            return path
    return None


def load() -> Library | None:
    """The library, if it is there and of the API whose layouts this module knows."""
    path = library_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        major, minor = ctypes.c_int(), ctypes.c_int()
        lib.cs_version(ctypes.byref(major), ctypes.byref(minor))
    except (OSError, AttributeError):
        return None
    if (major.value, minor.value) != API:
        return None
    return Library(lib)
