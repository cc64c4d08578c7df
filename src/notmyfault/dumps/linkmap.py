"""The modules of a process core found in its memory, for cores without an NT_FILE note.

qemu-user's cores, those of kernels before 3.7 and those of other writers carry
no NT_FILE: which files were mapped where must then be read the way the
dynamic loader left it in the process's memory:

- the executable, from the auxiliary vector: AT_PHDR, AT_PHENT and AT_PHNUM
  locate its program headers, PT_PHDR gives its load bias, its PT_LOAD headers
  its ranges; its name is AT_EXECFN's string;
- the shared libraries, from the link map: the executable's PT_DYNAMIC holds
  DT_DEBUG, the address of ``struct r_debug``, whose ``r_map`` starts the chain
  of ``struct link_map`` (l_addr, l_name, l_ld, l_next); each library's ELF
  header and program headers are read from its mapping;
- the vDSO, from AT_SYSINFO_EHDR.

Every address is checked against the dump and every walk is bounded, so a
corrupt link map ends the walk instead of hanging it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from notmyfault.dumps.errors import UnreadableMemory

AT_PHDR, AT_PHENT, AT_PHNUM, AT_BASE, AT_ENTRY, AT_EXECFN, AT_SYSINFO_EHDR = 3, 4, 5, 7, 9, 31, 33
PT_LOAD, PT_DYNAMIC, PT_NOTE, PT_PHDR = 1, 2, 4, 6
ET_EXEC = 2
NT_GNU_BUILD_ID = 3
DT_NULL, DT_DEBUG = 0, 21
PAGE = 4096
MAX_LIBRARIES = 4096
MAX_DYNAMIC = 1024
MAX_PHDRS = 256


def notes_in(data: bytes, order: str = "<", align: int = 4) -> Iterator[tuple[bytes, int, bytes]]:
    """The ELF notes (name, type, desc) in a note segment's bytes, whose names and descs are padded
    to ``align`` (4; 8 in a segment aligned to 8, as .note.gnu.property's); a note cut short ends
    the walk."""
    at = 0
    while at + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(order + "III", data, at)
        desc_at = at + 12 + ((namesz + align - 1) & -align)
        if desc_at + descsz > len(data):
            return
        yield data[at + 12 : at + 12 + namesz].rstrip(b"\0"), ntype, data[desc_at : desc_at + descsz]
        at = desc_at + ((descsz + align - 1) & -align)


def header_tables(head: bytes) -> tuple[bool, str, int, int, int, int, int, int]:
    """From an ELF header (``head``, its first 64 bytes, or 52 of a 32-bit one): whether it is
    64-bit, its struct byte order, and where its tables are: (wide, order, phoff, phentsize, phnum,
    shoff, shentsize, shnum)."""
    wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
    if wide:
        phoff, shoff = struct.unpack_from(order + "QQ", head, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 54)
    else:
        phoff, shoff = struct.unpack_from(order + "II", head, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 42)
    return wide, order, phoff, phentsize, phnum, shoff, shentsize, shnum


def parse_auxv(raw: bytes, word: int, order: str = "<") -> dict[int, int]:
    """An auxiliary vector (pairs of words up to AT_NULL) as AT_* type -> value."""
    fmt = order + ("QQ" if word == 8 else "II")
    out: dict[int, int] = {}
    for i in range(0, len(raw) - 2 * word + 1, 2 * word):
        key, value = struct.unpack_from(fmt, raw, i)
        if key == 0:
            break
        out[key] = value
    return out


class Memory(Protocol):
    """What the walk needs of a core: its memory, word size and byte order."""

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes at ``addr`` (UnreadableMemory where the dump lacks them)."""
        ...


@dataclass(frozen=True)
class LoadedImage:
    """One ELF image loaded in the process, as its memory shows it."""

    path: str
    kind: str
    """main, shared or vdso."""
    bias: int
    ranges: tuple[tuple[int, int, int], ...]
    """(start, end, file offset) of each PT_LOAD, page-aligned."""
    dynamic: int | None
    """The address of its dynamic section (the link map's l_ld)."""
    build_id: bytes | None


class FileMemory:
    """An ELF file on disk read as if loaded at 0 (addresses are file offsets): for the images
    whose headers a core left out (qemu-user dumps no read-only executable mapping)."""

    def __init__(self, path: str) -> None:
        """Read the first MiB of ``path``: headers, program headers and notes lie there."""
        with open(path, "rb") as f:
            self.data = f.read(1 << 20)

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes at file offset ``addr``."""
        if addr < 0 or addr + size > len(self.data):
            raise UnreadableMemory(f"{addr:#x} is past what was read of the file")
        return self.data[addr : addr + size]


Locate = Callable[[str], str | None]
"""A recorded path -> a readable file for it on this machine (or None)."""


class _Reader:
    def __init__(self, mem: Memory, word: int, order: str) -> None:
        self.mem, self.word, self.order = mem, word, order
        self.fmt = order + ("Q" if word == 8 else "I")

    def word_at(self, addr: int) -> int:
        return int(struct.unpack(self.fmt, self.mem.read(addr, self.word))[0])

    def cstring(self, addr: int, limit: int = 4096) -> str:
        out = b""
        while len(out) < limit:
            try:
                chunk = self.mem.read(addr + len(out), 64)
            except UnreadableMemory:
                chunk = b""
                for i in range(64):  # the string may end just before unreadable memory
                    try:
                        chunk += self.mem.read(addr + len(out) + i, 1)
                    except UnreadableMemory:
                        break
                if not chunk:
                    break
            if b"\0" in chunk:
                return (out + chunk.split(b"\0", 1)[0]).decode(errors="replace")
            out += chunk
        return out.decode(errors="replace")

    def phdrs(self, addr: int, count: int, size: int) -> list[tuple[int, int, int, int, int, int]]:
        """(type, flags, offset, vaddr, filesz, memsz) of ``count`` program headers at ``addr``."""
        out = []
        for i in range(min(count, MAX_PHDRS)):
            raw = self.mem.read(addr + i * size, size)
            if self.word == 8:
                p_type, flags, off, vaddr, _pa, filesz, memsz, _al = struct.unpack(
                    self.order + "IIQQQQQQ", raw[:56]
                )
            else:
                p_type, off, vaddr, _pa, filesz, memsz, flags, _al = struct.unpack(
                    self.order + "8I", raw[:32]
                )
            out.append((p_type, flags, off, vaddr, filesz, memsz))
        return out

    def header_phdrs(self, base: int) -> list[tuple[int, int, int, int, int, int]] | None:
        """The program headers of the ELF image whose header is at ``base`` (None if there is none)."""
        head = self.mem.read(base, 64 if self.word == 8 else 52)
        if head[:4] != b"\x7fELF":
            return None
        if self.word == 8:
            (phoff,) = struct.unpack_from(self.order + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(self.order + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(self.order + "I", head, 28)
            phentsize, phnum = struct.unpack_from(self.order + "HH", head, 42)
        if phentsize < (56 if self.word == 8 else 32) or phoff > 1 << 20:
            return None
        return self.phdrs(base + phoff, phnum, phentsize)

    def build_id(
        self, phdrs: list[tuple[int, int, int, int, int, int]], bias: int, by_offset: bool = False
    ) -> bytes | None:
        """The GNU build-id in the image's PT_NOTE (read at its address, or at its file offset past
        ``bias`` where a copy of the file's first page lies); None where the notes are not readable."""
        for p_type, _f, off, vaddr, filesz, _m in phdrs:
            if p_type != PT_NOTE or filesz > 65536:
                continue
            try:
                data = self.mem.read(bias + off if by_offset else vaddr + bias, filesz)
            except UnreadableMemory:
                continue
            for name, ntype, desc in notes_in(data, self.order):
                if ntype == NT_GNU_BUILD_ID and name == b"GNU":
                    return desc
        return None


def _ranges(
    phdrs: list[tuple[int, int, int, int, int, int]], bias: int, word: int
) -> tuple[tuple[int, int, int], ...]:
    """Each PT_LOAD's (start, end, file offset), page-aligned, in the address space of ``word`` bytes."""
    out = []
    for p_type, _f, off, vaddr, _fs, memsz in phdrs:
        if p_type == PT_LOAD and memsz:
            at = (vaddr + bias) & ((1 << (8 * word)) - 1)  # an i386 vDSO linked at 0xffffe000 wraps
            start = at & ~(PAGE - 1)
            end = (at + memsz + PAGE - 1) & ~(PAGE - 1)
            out.append((start, end, off & ~(PAGE - 1)))
    return tuple(sorted(out))


def _dynamic(phdrs: list[tuple[int, int, int, int, int, int]], bias: int) -> int | None:
    return next((vaddr + bias for p_type, _f, _o, vaddr, _fs, _m in phdrs if p_type == PT_DYNAMIC), None)


def _from_file(
    r: _Reader, path: str, locate: Locate
) -> tuple[list[tuple[int, int, int, int, int, int]], bytes | None] | None:
    """The program headers and build-id of the file ``path`` names, where ``locate`` finds it."""
    found = locate(path)
    if found is None:
        return None
    try:
        fr = _Reader(FileMemory(found), r.word, r.order)
        phdrs = fr.header_phdrs(0)
    except (OSError, UnreadableMemory, struct.error):
        return None
    if not phdrs:
        return None
    return phdrs, fr.build_id(phdrs, 0, by_offset=True)


def loaded_images(
    mem: Memory, auxv: dict[int, int], word: int, order: str, exe_name: str | None, locate: Locate
) -> list[LoadedImage]:
    """The executable, its shared libraries and the vDSO, as the process's memory shows them
    (program headers the core left out are read from the files ``locate`` finds)."""
    r = _Reader(mem, word, order)
    out: list[LoadedImage] = []
    phdr_at, phent, phnum = auxv.get(AT_PHDR), auxv.get(AT_PHENT), auxv.get(AT_PHNUM)
    main_dynamic = None
    if phdr_at and phent and phnum:
        name = (r.cstring(auxv[AT_EXECFN]) if auxv.get(AT_EXECFN) else "") or exe_name or "?"
        build: bytes | None = None
        try:
            phdrs = r.phdrs(phdr_at, phnum, phent)
        except UnreadableMemory:
            on_disk = _from_file(r, name, locate)
            phdrs, build = on_disk if on_disk else ([], None)
        own = next((vaddr for p_type, _f, _o, vaddr, _fs, _m in phdrs if p_type == PT_PHDR), None)
        if own is None:  # no PT_PHDR (static executables): the headers follow the ELF header
            first = min((v - o for t, _f, o, v, _fs, _m in phdrs if t == PT_LOAD and o == 0), default=None)
            bias = phdr_at - (first + (64 if word == 8 else 52)) if first is not None else 0
        else:
            bias = phdr_at - own
        if phdrs:
            main_dynamic = _dynamic(phdrs, bias)
            build = r.build_id(phdrs, bias) or build
            out.append(LoadedImage(name, "main", bias, _ranges(phdrs, bias, r.word), main_dynamic, build))
    vdso = auxv.get(AT_SYSINFO_EHDR)
    vdso_image = None
    if vdso:
        try:
            phdrs_v = r.header_phdrs(vdso)
        except UnreadableMemory:
            phdrs_v = None
        if phdrs_v:
            vaddr0 = min((v for t, _f, _o, v, _fs, _m in phdrs_v if t == PT_LOAD), default=0)
            bias = (vdso - vaddr0) & ((1 << (8 * word)) - 1)  # an old i386 vDSO is linked at 0xffffe000
            vdso_image = LoadedImage(
                "[vdso]",
                "vdso",
                bias,
                _ranges(phdrs_v, bias, r.word),
                _dynamic(phdrs_v, bias),
                r.build_id(phdrs_v, bias),
            )
    if main_dynamic is not None:
        out += _libraries(r, main_dynamic, vdso_image, locate)
    if vdso_image is not None:
        out.append(vdso_image)
    return out


def image_at(
    mem: Memory,
    addr: int,
    word: int,
    order: str,
    mappings: Sequence[tuple[int, int, int]] | None = None,
) -> tuple[tuple[tuple[int, int, int], ...], bytes | None]:
    """The ranges and build-id of the ELF image whose header is in memory at ``addr`` (loaded there:
    its first PT_LOAD starts at ``addr``); ((), None) when no ELF header is there, or when the header
    cannot be the image's own: an ET_EXEC placed anywhere but at its link address, or, given the
    ``mappings`` (start, end, file offset) of the image's file, a PT_LOAD that lands on no mapping of
    the file at the file offset it names (drgn's and the loaders' check: a small program linked
    without separate code, or any program under 64 KiB pages, maps its first page again for its
    data, and a header read there is a copy one page too high)."""
    r = _Reader(mem, word, order)
    try:
        phdrs = r.header_phdrs(addr)
        (e_type,) = struct.unpack(order + "H", mem.read(addr + 16, 2))
    except (UnreadableMemory, struct.error):
        return (), None
    if not phdrs:
        return (), None
    first = min((v for t, _f, o, v, _fs, _m in phdrs if t == PT_LOAD and o == 0), default=0)
    bias = (addr - (first & ~(PAGE - 1))) & ((1 << (8 * word)) - 1)
    if e_type == ET_EXEC and bias:
        return (), None
    if mappings is not None and not fits_mappings(phdrs, bias, mappings):
        return (), None
    return _ranges(phdrs, bias, word), r.build_id(phdrs, bias)


def copy_build_id(mem: Memory, addr: int, word: int, order: str) -> bytes | None:
    """The build-id in the notes of the ELF header at ``addr``, read as a copy of the file's first
    page (notes at their file offsets): a header that is not the image's place still names its build."""
    r = _Reader(mem, word, order)
    try:
        phdrs = r.header_phdrs(addr)
    except (UnreadableMemory, struct.error):
        return None
    return r.build_id(phdrs, addr, by_offset=True) if phdrs else None


def fits_mappings(
    phdrs: list[tuple[int, int, int, int, int, int]], bias: int, mappings: Sequence[tuple[int, int, int]]
) -> bool:
    """Whether every PT_LOAD with file contents, moved by ``bias``, starts inside one of the file's
    ``mappings`` (start, end, file offset) at the file offset it names."""
    for p_type, _f, off, vaddr, filesz, _m in phdrs:
        if p_type != PT_LOAD or not filesz:
            continue
        at = vaddr + bias
        if not any(start <= at < end and offset + (at - start) == off for start, end, offset in mappings):
            return False
    return True


def _libraries(r: _Reader, dynamic: int, vdso: LoadedImage | None, locate: Locate) -> list[LoadedImage]:
    """The shared libraries of the link map that DT_DEBUG in the executable's dynamic section leads to."""
    out: list[LoadedImage] = []
    try:
        debug = 0
        for i in range(MAX_DYNAMIC):
            tag, val = r.word_at(dynamic + 2 * r.word * i), r.word_at(dynamic + 2 * r.word * i + r.word)
            if tag == DT_NULL:
                break
            if tag == DT_DEBUG:
                debug = val
        if not debug:
            return out
        entry = r.word_at(debug + r.word)  # r_map, after the (padded) int r_version
    except UnreadableMemory:
        return out
    seen: set[int] = set()
    while entry and entry not in seen and len(seen) < MAX_LIBRARIES:
        seen.add(entry)
        try:
            l_addr, l_name, l_ld, l_next = (r.word_at(entry + k * r.word) for k in range(4))
        except UnreadableMemory:
            break
        name = r.cstring(l_name) if l_name else ""
        entry = l_next
        if not name or l_ld == dynamic or (vdso is not None and l_ld == vdso.dynamic):
            continue  # the executable's own entry, and the vDSO's
        image = _image_at(r, l_addr, l_ld)
        if image is None and (on_disk := _from_file(r, name, locate)) is not None:
            image = _ranges(on_disk[0], l_addr, r.word), on_disk[1]
        if image is not None:
            out.append(LoadedImage(name, "shared", l_addr, image[0], l_ld, image[1]))
    return out


def _image_at(
    r: _Reader, bias: int, dynamic: int
) -> tuple[tuple[tuple[int, int, int], ...], bytes | None] | None:
    """The ranges and build-id of the library loaded with ``bias`` (its header at the bias, or below
    its dynamic section for a prelinked one)."""
    candidates = [bias] + [(dynamic & ~(PAGE - 1)) - PAGE * i for i in range(0, 256)]
    for base in candidates:
        try:
            phdrs = r.header_phdrs(base)
        except UnreadableMemory:
            continue
        if phdrs:  # a header below the bias is a copy of the file's first page: notes by offset
            build = r.build_id(phdrs, bias) or (
                r.build_id(phdrs, base, by_offset=True) if base != bias else None
            )
            return _ranges(phdrs, bias, r.word), build
    return None
