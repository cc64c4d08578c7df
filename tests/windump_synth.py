"""Write small Windows kernel triage dumps for the tests (the way rust-minidump has minidump-synth).

A dump is a header (bug check code and parameters, machine, a context record
whose pc, sp and frame pointer are given), a triage header, a driver list with
names in a string pool, and the call-stack bytes: a frame-pointer chain
through the return addresses given.  32-bit (PAGEDUMP, x86) and 64-bit
(PAGEDU64, x86_64) layouts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SynthDump:
    """What the dump will say."""

    bits: int = 64
    code: int = 0xD1
    params: tuple[int, int, int, int] = (0, 0, 0, 0)
    drivers: list[tuple[str, int, int]] = field(default_factory=list)
    """(name, base, size)."""
    pc: int = 0
    returns: list[int] = field(default_factory=list)
    """The return addresses of the frames above the context, innermost first."""
    top_of_stack: int = 0
    dump_type: int = 4
    processors: int = 2

    def write(self, path: Path) -> Path:
        """Write the dump to ``path``."""
        b64 = self.bits == 64
        w = "Q" if b64 else "I"
        header_size = 0x2000 if b64 else 0x1000
        stack_at, drivers_at, strings_at = header_size + 0x1000, header_size + 0x2000, header_size + 0x4000
        # the call stack: frame n at top + 0x20 * n holds (saved fp, return address)
        top = self.top_of_stack or (0xFFFFE00000100000 if b64 else 0xF8900000)
        stack = bytearray(0x20 * (len(self.returns) + 1))
        for i, ret in enumerate(self.returns):
            at = 0x20 * i
            saved = top + 0x20 * (i + 1) if i + 1 < len(self.returns) else 0
            struct.pack_into(f"<{w}{w}", stack, at, saved, ret)
        fp, sp = top, top - 0x10
        body = bytearray(strings_at + 0x1000)
        if b64:
            body[0:8] = b"PAGEDU64"
            struct.pack_into("<4sII", body, 4, b"DU64", 0xF, 19041)
            struct.pack_into("<III", body, 0x30, 0x8664, self.processors, self.code)
            struct.pack_into("<4Q", body, 0x40, *self.params)
            ctx = 0x348
            struct.pack_into("<Q", body, ctx + 120 + 8 * 4, sp)  # rsp
            struct.pack_into("<Q", body, ctx + 120 + 8 * 5, fp)  # rbp
            struct.pack_into("<Q", body, ctx + 248, self.pc)  # rip
            struct.pack_into("<I", body, 0xF98, self.dump_type)
            struct.pack_into("<Q", body, 0xFA8, 132760615181467095)  # SystemTime: 2021-09-14
            struct.pack_into("<Q", body, 0x1030, 7967053432)
            tri = [0, len(body), 0, ctx, 0xF00, 0, 0, 0, 0, 0, stack_at, len(stack), drivers_at,
                   len(self.drivers), strings_at, 0x1000, 0, 0xFFFFFFFF]  # fmt: skip
            struct.pack_into("<18IQIIQQIIIIII", body, header_size, *tri, top, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        else:
            body[0:8] = b"PAGEDUMP"
            struct.pack_into("<4sII", body, 4, b"DUMP", 0xF, 2600)
            struct.pack_into("<III", body, 0x20, 0x14C, self.processors, self.code)
            struct.pack_into("<4I", body, 0x2C, *self.params)
            ctx = 0x320
            struct.pack_into("<I", body, ctx + 180, fp)  # ebp
            struct.pack_into("<I", body, ctx + 184, self.pc)  # eip
            struct.pack_into("<I", body, ctx + 196, sp)  # esp
            struct.pack_into("<I", body, 0xF88, self.dump_type)
            tri = [0, len(body), 0, ctx, 0x7D0, 0, 0, 0, 0, 0, stack_at, len(stack), drivers_at,
                   len(self.drivers), strings_at, 0x1000, 0, 0xFFFFFFFF]  # fmt: skip
            struct.pack_into("<26I", body, header_size, *tri, top, 0, 0, 0, 0, 0, 0, 0)
        body[stack_at : stack_at + len(stack)] = stack
        name_at = strings_at
        entry = 144 if b64 else 76
        for i, (name, base, size) in enumerate(self.drivers):
            e = drivers_at + entry * i
            struct.pack_into("<I", body, e, name_at)
            if b64:
                struct.pack_into("<QQI", body, e + 8 + 48, base, base + 0x1000, size)
                struct.pack_into("<I", body, e + 8 + 120, 0x1234 + i)
                struct.pack_into("<I", body, e + 8 + 128, 0x5F000000 + i)
            else:
                struct.pack_into("<III", body, e + 4 + 24, base, base + 0x100, size)
                struct.pack_into("<II", body, e + 4 + 64, 0x1234 + i, 0x48000000 + i)
            raw = name.encode("utf-16-le")
            struct.pack_into("<I", body, name_at, len(name))
            body[name_at + 4 : name_at + 4 + len(raw)] = raw
            name_at += 4 + len(raw) + 2
        path.write_bytes(bytes(body))
        return path


def seed_d1(bits: int = 32) -> SynthDump:
    """The seed's crash: BugCheck D1, {e14c0008, 2, 0, f799f579} with myfault.sys at f799f000 (x86).

    The 64-bit one puts myfault.sys at the same offsets of a kernel address.
    """
    if bits == 32:
        nt, myfault = 0x804D7000, 0xF799F000
        return SynthDump(
            bits=32,
            code=0xD1,
            params=(0xE14C0008, 2, 0, myfault + 0x579),
            drivers=[
                ("\\WINDOWS\\system32\\ntoskrnl.exe", nt, 0x214600),
                ("\\??\\C:\\myfault.sys", myfault, 0x1000),
            ],
            pc=myfault + 0x579,
            returns=[myfault + 0x4A2, nt + 0x4F3A, nt + 0x6EA1],
        )
    nt, myfault = 0xFFFFF80002A00000, 0xFFFFF88004E9F000
    return SynthDump(
        bits=64,
        code=0xD1,
        params=(0xFFFFF8A00E14C008, 2, 0, myfault + 0x579),
        drivers=[
            ("\\SystemRoot\\system32\\ntoskrnl.exe", nt, 0x5DF000),
            ("\\??\\C:\\myfault.sys", myfault, 0x7000),
        ],
        pc=myfault + 0x579,
        returns=[myfault + 0x4A2, nt + 0x8B2E9, nt + 0x2C5A1],
    )
