"""Debug files kept decompressed, by build-id, so that each dump does not inflate them again.

Distributions ship their debug files with compressed DWARF (``SHF_COMPRESSED`` sections: Debian's
``libc6-dbg`` and ``-dbgsym`` packages, Fedora's, what debuginfod serves; ``gcc -gz`` does the same
to a program). drgn inflates every such section each time it loads the file: for glibc's debug
file, 12 MB of DWARF and 70 ms of a 90 ms analysis of a small core. The first analysis that loads
such a file writes an uncompressed copy, ``$XDG_CACHE_HOME/notmyfault/debug/BUILD-ID.debug``; later
analyses (a triage worker's next dump, the next ``analyze``) hand drgn that copy, which drgn
accepts only if its build-id is the one the module wants. Copies are written where
``NOTMYFAULT_DEBUG_CACHE=1`` (triage's workers set it: ingesting writes anyway); a command that
only reads a dump uses the copies it finds and writes none (reading leaves nothing behind).

The copy is the original file, where the compressed sections' bytes are left as a hole (no section
points there any more), followed by each compressed section's inflated bytes and a new section
header table that points at them (the flag cleared, the alignment the compression header gives):
every other offset of the original, its program headers' too, stays valid. The cache is
bounded (:data:`CACHE_LIMIT`, least recently used files go first) and skipped when the disk is
short of space; ``NOTMYFAULT_DEBUG_CACHE=0`` turns it off, reading included.

A command that only reads gets the same copies without writing: ``inflate_ahead`` (through
``notmyfault.prefetch``, which ``analyze`` and ``stack`` call as they start) forks a child that
inflates the debug files of the core's modules into memory files while the parent imports; drgn is
handed those (``offer_in_memory``), location lists left compressed.

May import: dumps, base.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from notmyfault.base.files import SafeFile, WriteFailed, check_directory, user_cache_dir
from notmyfault.dumps.buildid import build_id_text

ENV = "NOTMYFAULT_DEBUG_CACHE"
"""0: neither read nor write the cache; 1: read it and write to it; unset: read it only."""
CACHE_LIMIT = 1 << 30
"""The cache's size bound: past it, the least recently used copies are removed."""
KEEP_FREE = 1 << 30
"""No copy is written on a filesystem with less than this free."""
MAX_INFLATED = 1 << 30
"""A debug file whose sections would inflate past this is not copied."""
SHF_COMPRESSED = 0x800
SHT_NOBITS = 8
ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD = 1, 2
CHUNK = 1 << 20
WHOLE = 1 << 30
"""A piece size that takes any part of a debug file whole."""
SUPPLEMENTARY = {b".gnu_debugaltlink", b".debug_sup"}
"""A debug file with one of these leans on a supplementary file (dwz's) that its own directory
finds: it is not copied away from there."""


def cache_directory() -> str | None:
    """Where the copies are kept; None when the cache is off."""
    if os.environ.get(ENV) == "0":
        return None
    return os.path.join(user_cache_dir(), "notmyfault", "debug")


def _build_id(module: Any) -> str | None:
    """The module's build-id as hex, fit to name a file (None for none, or for other text)."""
    raw = getattr(module, "build_id", None)
    if not raw:
        return None
    text = build_id_text(raw).lower()
    return text if _is_hex(text) else None


def _is_hex(text: str) -> bool:
    """True for lowercase hexadecimal text (a build-id fit to name a file)."""
    return all(c in "0123456789abcdef" for c in text)


def offer_cached(prog: Any) -> None:
    """Give each module of ``prog`` that wants a debug file its decompressed copy, if one is kept
    (drgn checks the copy's build-id; a copy of another build is ignored)."""
    directory = cache_directory()
    if directory is None or not os.path.isdir(directory):
        return
    for module in prog.modules():
        bid = _build_id(module)
        if not bid:
            continue
        with contextlib.suppress(Exception):
            if not module.wants_debug_file():
                continue
        path = os.path.join(directory, f"{bid}.debug")
        if os.path.isfile(path):
            with contextlib.suppress(Exception):
                module.try_file(path)
                if module.debug_file_path == path:
                    with contextlib.suppress(OSError):
                        os.utime(path)  # recently used: evicted last


def keep_decompressed(prog: Any) -> list[str]:
    """Where NOTMYFAULT_DEBUG_CACHE=1, write a decompressed copy of each debug file ``prog`` loaded
    that has compressed sections and none kept yet (of one inflated in memory, its original).
    Returns the copies written; a failure writes nothing and is not an error (the cache only saves
    time)."""
    directory = cache_directory()
    if directory is None or os.environ.get(ENV) != "1":
        return []
    written: list[str] = []
    for module in prog.modules():
        bid = _build_id(module)
        source = getattr(module, "debug_file_path", None)
        if source and str(source).startswith("/memfd:") and bid:  # inflated ahead: copy its original
            source = _memory.origins.get(bid)
        if not bid or not source or os.path.dirname(source) == directory:
            continue
        dest = os.path.join(directory, f"{bid}.debug")
        if os.path.exists(dest):
            continue
        with contextlib.suppress(OSError, ValueError, struct.error, WriteFailed):
            if write_decompressed(source, dest):
                written.append(dest)
    if written:
        _evict(directory)
    return written


class _Elf:
    """An ELF file's header fields and section headers, as far as decompression needs them."""

    def __init__(self, f: BinaryIO) -> None:
        ident = f.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ValueError("not an ELF file")
        self.is64 = ident[4] == 2
        self.endian = "<" if ident[5] == 1 else ">"
        e = self.endian
        if self.is64:
            (self.shoff,) = struct.unpack_from(e + "Q", ident, 0x28)
            self.shoff_at, self.shoff_fmt = 0x28, e + "Q"
            self.shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", ident, 0x3A)
            self.sh_fmt = e + "IIQQQQIIQQ"
        else:
            (self.shoff,) = struct.unpack_from(e + "I", ident, 0x20)
            self.shoff_at, self.shoff_fmt = 0x20, e + "I"
            self.shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", ident, 0x2E)
            self.sh_fmt = e + "IIIIIIIIII"
        if self.shoff == 0 or self.shentsize < struct.calcsize(self.sh_fmt):
            raise ValueError("no section headers")
        f.seek(self.shoff)
        first = f.read(self.shentsize)
        if len(first) < self.shentsize:
            raise ValueError("section headers past the end")
        if shnum == 0:  # more than 0xff00 sections: the count is section 0's sh_size
            shnum = struct.unpack_from(self.sh_fmt, first)[5]
        if not 0 < shnum <= 1 << 20:
            raise ValueError("bad section count")
        table = first + f.read(self.shentsize * (shnum - 1))
        if len(table) < self.shentsize * shnum:
            raise ValueError("section headers past the end")
        self.raw = table
        self.sections = [
            list(struct.unpack_from(self.sh_fmt, table, i * self.shentsize)) for i in range(shnum)
        ]
        if shstrndx == 0xFFFF:  # SHN_XINDEX: the index is section 0's sh_link
            shstrndx = self.sections[0][6]
        self.names: list[bytes] = [b""] * shnum
        if 0 < shstrndx < shnum and self.sections[shstrndx][5] <= 1 << 24:
            f.seek(self.sections[shstrndx][4])
            strings = f.read(self.sections[shstrndx][5])
            for i, sh in enumerate(self.sections):
                end = strings.find(b"\0", sh[0])
                self.names[i] = strings[sh[0] : end] if 0 <= sh[0] < len(strings) and end >= 0 else b""

    def compressed(self) -> list[int]:
        """The indexes of the sections with compressed contents."""
        return [i for i, s in enumerate(self.sections) if s[2] & SHF_COMPRESSED and s[1] != SHT_NOBITS]

    def chdr(self, f: BinaryIO, index: int) -> tuple[int, int, int, int]:
        """Section ``index``'s compression header: (type, inflated size, alignment, header size)."""
        offset = self.sections[index][4]
        f.seek(offset)
        if self.is64:
            kind, _, size, align = struct.unpack(self.endian + "IIQQ", f.read(24))
            return kind, size, align, 24
        kind, size, align = struct.unpack(self.endian + "III", f.read(12))
        return kind, size, align, 12


def compressed_sections(path: str) -> int:
    """How many sections of the ELF file ``path`` are compressed (0 for none, or for no ELF file)."""
    try:
        with open(path, "rb") as f:
            return len(_Elf(f).compressed())
    except (OSError, ValueError, struct.error):
        return 0


def _inflate(f: BinaryIO, kind: int, length: int, expected: int, whole: bool = False) -> Iterator[bytes]:
    """The inflated bytes of ``length`` compressed bytes at ``f``'s position, in chunks of at most
    CHUNK bytes (``whole``: zlib's in one piece, inflated in one call into a buffer of the declared
    size, which is faster but bounds nothing: only for a process whose address space is limited);
    ValueError unless they come to ``expected`` bytes exactly (a corrupt stream included)."""
    if kind == ELFCOMPRESS_ZLIB:
        try:
            yield from _inflated_zlib(f, length, expected, whole)
        except zlib.error as e:
            raise ValueError(f"corrupt compressed section: {e}") from None
    elif kind == ELFCOMPRESS_ZSTD:
        import zstandard

        try:
            yield from _inflated_zstd(f, length, expected)
        except zstandard.ZstdError as e:
            raise ValueError(f"corrupt compressed section: {e}") from None
    else:
        raise ValueError(f"unknown compression {kind}")


def _inflated_zlib(f: BinaryIO, length: int, expected: int, whole: bool) -> Iterator[bytes]:
    if whole:
        data = f.read(length)
        if len(data) < length:
            raise ValueError("compressed section past the end of the file")
        out = zlib.decompress(data, bufsize=max(expected, 1))
        if len(out) != expected:
            raise ValueError("section does not inflate to its declared size")
        yield out
        return
    z = zlib.decompressobj()
    total, left = 0, length
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise ValueError("compressed section past the end of the file")
        left -= len(chunk)
        out = z.decompress(chunk, CHUNK)
        while out:
            total += len(out)
            if total > expected:
                raise ValueError("section inflates past its declared size")
            yield out
            out = z.decompress(z.unconsumed_tail, CHUNK) if z.unconsumed_tail else b""
    tail = z.flush()
    total += len(tail)
    if tail:
        yield tail
    if total != expected or not z.eof:
        raise ValueError("section does not inflate to its declared size")


def _inflated_zstd(f: BinaryIO, length: int, expected: int) -> Iterator[bytes]:
    import zstandard

    limited: Any = _Limited(f, length)  # read() is all the reader asks of it
    reader = zstandard.ZstdDecompressor().stream_reader(limited, read_across_frames=True)
    total = 0
    while chunk := reader.read(CHUNK):
        total += len(chunk)
        if total > expected:
            raise ValueError("section inflates past its declared size")
        yield chunk
    if total != expected:
        raise ValueError("section does not inflate to its declared size")


class _Limited:
    """``length`` bytes of ``f`` from its position, as a readable stream."""

    def __init__(self, f: BinaryIO, length: int) -> None:
        self.f, self.left = f, length

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data


def write_decompressed(source: str, dest: str) -> bool:
    """Write ``source`` to ``dest`` with its compressed sections inflated (see the module's
    docstring); False (nothing written) when it has none, leans on a supplementary file, or would
    inflate past MAX_INFLATED.
    Raises ValueError for a malformed file, OSError or WriteFailed for an unwritable cache."""
    with open(source, "rb") as f:
        elf = _Elf(f)
        headers = _copyable(f, elf, MAX_INFLATED)
        if headers is None:
            return False
        directory = os.path.dirname(dest)
        check_directory(directory)
        st = os.statvfs(directory)
        if st.f_bavail * st.f_frsize < KEEP_FREE + sum(h[1] for h in headers.values()):
            return False
        with SafeFile(dest) as out:
            _copy_inflated(f, elf, headers, out.file)
    return True


def _copyable(
    f: BinaryIO, elf: _Elf, limit: int, leave: frozenset[bytes] = frozenset()
) -> dict[int, tuple[int, int, int, int]] | None:
    """The compression headers of ``elf``'s compressed sections (but those named in ``leave``), by
    section index; None when there are none, it leans on a supplementary file, or they would inflate
    past ``limit`` bytes."""
    todo = [i for i in elf.compressed() if elf.names[i] not in leave]
    if not todo or SUPPLEMENTARY & set(elf.names):
        return None
    headers = {i: elf.chdr(f, i) for i in todo}
    return headers if sum(h[1] for h in headers.values()) <= limit else None


def _copy_inflated(
    f: BinaryIO, elf: _Elf, headers: dict[int, tuple[int, int, int, int]], out: BinaryIO, whole: bool = False
) -> None:
    """Write to ``out`` (at its start) the file ``f`` but the compressed bytes of the sections of
    ``headers``, then those sections inflated, and the section header table that points at them (see
    the module's docstring); ``whole``: each part in one piece (see ``_inflate``)."""
    chunk = WHOLE if whole else CHUNK
    end = os.fstat(f.fileno()).st_size
    sections = [list(s) for s in elf.sections]
    pos = 0  # the bytes of the sections inflated below are left out: a hole, which reads as zeros
    for start, stop in [
        *sorted((sections[i][4], sections[i][4] + sections[i][5]) for i in headers),
        (end, end),
    ]:
        f.seek(pos)
        out.seek(pos)
        left = start - pos
        while left > 0 and (piece := f.read(min(chunk, left))):
            out.write(piece)
            left -= len(piece)
        pos = max(pos, stop)
    out.seek(end)
    for i, (kind, size, align, header) in headers.items():
        align = max(align, 1)
        pad = -end % align
        out.write(b"\0" * pad)
        end += pad
        f.seek(sections[i][4] + header)
        for part in _inflate(f, kind, sections[i][5] - header, size, whole):
            out.write(part)
        sections[i][2] &= ~SHF_COMPRESSED
        sections[i][4], sections[i][5], sections[i][8] = end, size, align
        end += size
    pad = -end % 8
    out.write(b"\0" * pad)
    shoff = end + pad
    table = bytearray(elf.raw)
    for i in headers:
        struct.pack_into(elf.sh_fmt, table, i * elf.shentsize, *sections[i])
    out.write(table)
    out.seek(elf.shoff_at)
    out.write(struct.pack(elf.shoff_fmt, shoff))
    out.seek(0, os.SEEK_END)


DEBUG_DIRECTORY = "/usr/lib/debug"
"""Where distributions install debug files by build-id (``.build-id/ab/cdef….debug``), as drgn's
default finder looks them up."""
IN_MEMORY_LIMIT = 512 << 20
"""How many bytes of inflated copies one process keeps in memory at most."""
LOCATION_LISTS = frozenset({b".debug_loclists", b".debug_loc"})
"""Sections that only a frame's arguments and locals need: an in-memory copy leaves them compressed
(libelf inflates them itself if they are read)."""


class _InMemory:
    """The inflated copies this process holds in memory, and the child making more."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        """Build-id -> the path (``/proc/self/fd/N``) of its debug file's inflated copy."""
        self.size = 0
        self.pending: dict[str, int] = {}
        """Build-id -> the memory file the child is filling."""
        self.origins: dict[str, str] = {}
        """Build-id -> the debug file its copy was inflated from."""
        self.child: tuple[int, int, int] | None = None
        """The child's pid, the read end of the pipe on which it names each copy it finished, and
        that pipe's inode (a descriptor whose number other code took since is not read)."""


_memory = _InMemory()


def inflate_ahead(build_ids: Iterable[str], directory: str = DEBUG_DIRECTORY) -> bool:
    """Start inflating, in a child process, the compressed debug files that ``directory`` holds
    for these build-ids (a dump's modules'), each into a file in memory that this process
    made (``memfd``: nothing is written to disk, and it goes with the process). True if a child was
    started.

    The child runs on another core while this process goes on with its imports and opening the
    program (a thread would not: each of its steps waits for the GIL); :func:`offer_in_memory`
    waits for it and hands drgn the copies it finished. Nothing is started in a process with other
    threads (forking one is not safe), for a build-id whose copy the disk cache keeps or this
    process holds, or past :data:`IN_MEMORY_LIMIT`; whatever fails leaves drgn to inflate the
    original itself, as without this."""
    if _memory.child is not None or threading.active_count() != 1:
        return False
    kept = cache_directory()
    todo: list[tuple[str, str, int]] = []
    try:
        for bid in dict.fromkeys(b.lower() for b in build_ids):
            if len(bid) < 4 or bid in _memory.paths or not _is_hex(bid):
                continue
            if kept and os.path.isfile(os.path.join(kept, f"{bid}.debug")):
                continue  # offer_cached gives drgn that one
            path = os.path.join(directory, ".build-id", bid[:2], f"{bid[2:]}.debug")
            if os.path.isfile(path):
                todo.append((bid, path, os.memfd_create(f"{bid}.debug", os.MFD_CLOEXEC)))
        if not todo:
            return False
        done_r, done_w = os.pipe()
    except OSError:
        for _, _, fd in todo:
            os.close(fd)
        return False
    parent, prctl = os.getpid(), _prctl()
    pid = os.fork()
    if pid == 0:  # the child: fill the files, name each one finished, and leave without a trace
        try:
            os.close(done_r)
            _inflate_in_child(todo, done_w, parent, prctl, IN_MEMORY_LIMIT - _memory.size)
        finally:
            os._exit(0)
    os.close(done_w)
    _memory.child = (pid, done_r, os.fstat(done_r).st_ino)
    _memory.pending.update((bid, fd) for bid, _, fd in todo)
    _memory.origins.update((bid, source) for bid, source, _ in todo)
    return True


def _inflate_in_child(
    todo: list[tuple[str, str, int]], done: int, parent: int, prctl: Any, budget: int
) -> None:
    """The child's work: each debug file inflated into its memory file, its build-id written to
    ``done`` when it is complete. Sections are inflated whole (zlib's fastest way), so the child's
    address space is limited to what it has plus twice the ``budget``: a section that inflates past
    its declared size ends in MemoryError, here, and no copy."""
    import resource

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)  # a stop ends it at once: the parent's handlers are not its own
    _die_with(parent, prctl)
    with open("/proc/self/statm", "rb") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (mapped + 2 * budget, resource.RLIM_INFINITY))
    for bid, source, fd in todo:
        with contextlib.suppress(OSError, ValueError, struct.error, MemoryError), open(source, "rb") as f:
            elf = _Elf(f)
            headers = _copyable(f, elf, budget - os.fstat(f.fileno()).st_size, LOCATION_LISTS)
            if headers is None:
                continue
            with open(fd, "w+b", closefd=False) as out:
                _copy_inflated(f, elf, headers, out, whole=True)
                budget -= out.tell()
            os.write(done, f"{bid}\n".encode())


def _die_with(parent: int, prctl: Any) -> None:
    """Have the kernel kill this process when ``parent`` ends (PR_SET_PDEATHSIG, through libc's
    ``prctl`` as the parent resolved it: the child loads no library); if it has ended already, end
    now."""
    if prctl is not None:
        with contextlib.suppress(OSError):
            prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)


@functools.cache
def _prctl() -> Any:
    """libc's ``prctl``, resolved in this process (None where it cannot be)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def offer_in_memory(prog: Any) -> None:
    """Wait for the child :func:`inflate_ahead` started, then give each module of ``prog`` that
    wants a debug file its inflated copy in memory, if there is one (drgn checks the build-id)."""
    _collect()
    if not _memory.paths:
        return
    for module in prog.modules():
        path = memory_copy(module)
        if path is None:
            continue
        with contextlib.suppress(Exception):
            if module.wants_debug_file():
                module.try_file(path)


def memory_copy(module: Any) -> str | None:
    """Where this process opens the copy in memory that is ``module``'s debug file, if one is (drgn
    names it after the memory file, ``/memfd:BUILD-ID.debug (deleted)``, which no open() finds).
    A descriptor that is no longer the copy (closed by other code, its number taken by another
    file: a pipe would block the reader) is forgotten, never offered."""
    bid = _build_id(module)
    path = _memory.paths.get(bid) if bid else None
    if bid is None or path is None:
        return None
    ours = _names_copy(int(path.rsplit("/", 1)[1]), bid)
    if not ours:
        del _memory.paths[bid]
    return path if ours else None


COLLECT_SECONDS = 60.0
"""How long the child may take, at most: past it, it is killed and the copies it finished are kept
(inflating the 512 MiB limit takes a few seconds; a child that hangs must not hang its parent)."""


def _collect() -> None:
    """Wait for the child, keep the copies it finished and close the others' files."""
    if _memory.child is None:
        return
    pid, done_r, inode = _memory.child
    _memory.child = None
    pending, _memory.pending = _memory.pending, {}
    if not _ours(done_r, inode):  # closed by other code, its number taken: neither read nor closed
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return
    names = b""
    deadline = time.monotonic() + COLLECT_SECONDS
    poll = select.poll()
    poll.register(done_r, select.POLLIN)
    with contextlib.suppress(OSError):
        while (left := deadline - time.monotonic()) > 0 and poll.poll(left * 1000):
            chunk = os.read(done_r, 4096)
            if not chunk:
                break
            names += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    os.close(done_r)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    finished = set(names.decode("ascii", "replace").split())
    for bid, fd in pending.items():
        if not _names_copy(fd, bid):
            continue  # not the memory file any more: another file's now, left alone
        if bid in finished:
            _memory.paths[bid] = f"/proc/self/fd/{fd}"
            _memory.size += os.fstat(fd).st_size
        else:
            os.close(fd)


def _ours(fd: int, inode: int) -> bool:
    """True if descriptor ``fd`` still names the file of that inode."""
    try:
        return os.fstat(fd).st_ino == inode
    except OSError:
        return False


def _names_copy(fd: int, bid: str) -> bool:
    """True if descriptor ``fd`` still names the memory file made for build-id ``bid``."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == f"/memfd:{bid}.debug (deleted)"
    except OSError:
        return False


def _evict(directory: str) -> None:
    """Remove the least recently used copies until the cache is within CACHE_LIMIT."""
    entries = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.endswith(".debug") and entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                entries.append((st.st_mtime, st.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= CACHE_LIMIT:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total -= size
