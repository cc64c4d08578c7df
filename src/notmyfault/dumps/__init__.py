"""Dump readers, one per format, and the one opener that picks them by the file's magic.

- ``elfcore``: ELF process cores (notes, mappings, memory; ``linkmap`` and ``buildid`` find the
  modules and their build-ids); ``vmcore``: Linux kernel vmcores (ELF with VMCOREINFO), with
  ``kdump``: makedumpfile's compressed format;
- ``minidump``: minidumps (Windows, Breakpad, Crashpad); ``windump``: Windows kernel crash dumps
  (``PAGEDUMP``, ``PAGEDU64``), with ``pe``: PE images in them; ``mapped``: memory of both;
- ``unpack``: compressed cores (zstd, lz4, xz, gzip) and apport reports, unpacked to a temporary file;
- ``errors``: DumpError (one line for the user) and UnreadableMemory.

:func:`open_dump` is the only way in. Readers parse lazily and map the file. Internal: scripts use
``notmyfault.open``.

May import: base.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from notmyfault.base.lazy import lazy_exports
from notmyfault.dumps.elfcore import ElfCore, is_vmcore
from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.unpack import decompressed, origin, packing_of, remove_unpacked, report_fields, unpack

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # narrows both ways (typing's own from Python 3.13)

    from notmyfault.dumps.minidump import Minidump
    from notmyfault.dumps.vmcore import Vmcore
    from notmyfault.dumps.windump import WindowsKernelDump

# The readers of the other kinds load on first use: opening an ELF core (the common case, and a
# command's start-up) imports neither the minidump nor the Windows readers (20 ms).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Minidump": "notmyfault.dumps.minidump:Minidump",
        "Vmcore": "notmyfault.dumps.vmcore:Vmcore",
        "WindowsKernelDump": "notmyfault.dumps.windump:WindowsKernelDump",
    },
)

MINIDUMP_MAGIC = b"MDMP"
"""A minidump's first bytes (dumps.minidump.MAGIC)."""
MAGIC32, MAGIC64 = b"PAGEDUMP", b"PAGEDU64"
"""A Windows kernel dump's first bytes, 32- and 64-bit (dumps.windump)."""

__all__ = [
    "DumpError",
    "ElfCore",
    "Minidump",
    "UnreadableMemory",
    "Vmcore",
    "WindowsKernelDump",
    "is_dump",
    "is_minidump",
    "is_vmcore_reader",
    "is_windows_kernel_dump",
    "open_dump",
    "origin",
    "report_fields",
]

NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _head(path: str | os.PathLike[str]) -> bytes:
    """The file's first 16 bytes; DumpError for anything that is no regular file (opening a FIFO would
    wait for a writer forever, a device could be read without end)."""
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)
        if kind != stat.S_IFREG:
            what = NOT_REGULAR.get(kind, "not a regular file")
            raise DumpError(f"{os.fspath(path)} is {what}, not a dump file: give the path of a core or dump")
        with open(path, "rb") as f:
            return f.read(16)
    except OSError as e:
        raise DumpError(f"cannot open {os.fspath(path)}: {e.strerror}") from None


def _packed(path: str | os.PathLike[str], opener: Callable[[str], Any]) -> Any:
    """Unpack ``path`` to a temporary file and open that with ``opener``; the dump removes it on close."""
    info = unpack(os.fspath(path))
    try:
        dump = opener(info.path)
    except DumpError as e:
        remove_unpacked(info)
        raise DumpError(str(e).replace(info.path, f"{info.source} ({info.packing}, unpacked)")) from None
    dump.unpacked = info
    return dump


if TYPE_CHECKING:
    AnyDump = ElfCore | Minidump | WindowsKernelDump | Vmcore
    """What :func:`open_dump` returns: one reader per kind of dump."""
_D = TypeVar("_D", "ElfCore", "Minidump", "WindowsKernelDump", "Vmcore")


def _is(reader: object, module: str, name: str) -> bool:
    """``isinstance(reader, module.name)``, without importing ``module``: a reader of a module
    nobody loaded cannot be this one."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(reader, getattr(loaded, name))


def is_minidump(reader: object) -> TypeIs[Minidump]:
    """``isinstance(reader, Minidump)``, without loading the minidump reader."""
    return _is(reader, "notmyfault.dumps.minidump", "Minidump")


def is_windows_kernel_dump(reader: object) -> TypeIs[WindowsKernelDump]:
    """``isinstance(reader, WindowsKernelDump)``, without loading the Windows reader."""
    return _is(reader, "notmyfault.dumps.windump", "WindowsKernelDump")


def is_vmcore_reader(reader: object) -> TypeIs[Vmcore]:
    """``isinstance(reader, Vmcore)``, without loading the vmcore reader."""
    return _is(reader, "notmyfault.dumps.vmcore", "Vmcore")


MINIDUMP_COMMANDS = "analyze, stack, regs, modules, search and disasm"
KERNEL_DUMP_COMMANDS = "analyze, stack, regs, modules, vm, search and disasm"
VMCORE_COMMANDS = "analyze, stack, regs, vm, poolused, modules, search and disasm"
_REFUSED = {
    "Minidump": f"a minidump: {MINIDUMP_COMMANDS} read minidumps, this one reads ELF process cores",
    "WindowsKernelDump": f"a Windows kernel crash dump: {KERNEL_DUMP_COMMANDS} read those, this one reads ELF process cores",
    "Vmcore": f"a Linux kernel vmcore: {VMCORE_COMMANDS} read those",
}
"""What a command that reads only ELF process cores says of the other kinds (by reader)."""


def _kind_of(magic: bytes) -> str | None:
    """The name of the reader for a file that starts with ``magic`` (ELF: a process core until its
    notes say vmcore), or None for no dump this package reads."""
    if magic.startswith(MINIDUMP_MAGIC):
        return "Minidump"
    if magic[:8] in (MAGIC32, MAGIC64):
        return "WindowsKernelDump"
    if magic.startswith(b"\x7fELF"):
        return "ElfCore"
    return None


@overload
def open_dump(path: str | os.PathLike[str]) -> AnyDump: ...
@overload
def open_dump(path: str | os.PathLike[str], kind: type[_D]) -> _D: ...
def open_dump(path: str | os.PathLike[str], kind: type[Any] | None = None) -> AnyDump:
    """Open any dump by its magic: an ELF process core, a Linux kernel vmcore (ELF, or makedumpfile's
    compressed format), a minidump or a Windows kernel dump, unpacking compressed files and apport
    reports first. With ``kind``, only that kind: any other is refused with one line that says which
    commands read it. Anything that is no dump raises DumpError with one line.

    This is the package's one opener; scripts use ``notmyfault.open``, which wraps it.
    """
    magic = _head(path)
    if packing_of(magic):
        return _packed(path, lambda unpacked: open_dump(unpacked, kind) if kind else open_dump(unpacked))  # type: ignore[no-any-return]
    found = _kind_of(magic)
    wanted = kind.__name__ if kind is not None else None
    if wanted is not None and found is not None and found != wanted and found in _REFUSED:
        raise DumpError(f"{os.fspath(path)} is {_REFUSED[found]}")
    if found == "Minidump":
        from notmyfault.dumps.minidump import Minidump

        return Minidump(os.fspath(path))
    if found == "WindowsKernelDump":
        from notmyfault.dumps.windump import WindowsKernelDump

        return WindowsKernelDump(os.fspath(path))
    core = ElfCore(path)  # an ELF core, or no dump at all: ElfCore says which in one line
    if not is_vmcore(core):
        return core
    if wanted is not None and wanted != "Vmcore":
        core.close()
        raise DumpError(f"{os.fspath(path)} is {_REFUSED['Vmcore']}")
    from notmyfault.dumps.vmcore import Vmcore

    return Vmcore(path, core)


ET_CORE = 4
"""e_type of an ELF core."""


def _dump_head(head: bytes) -> bool:
    """True for the first bytes of a dump: an ELF core (e_type ET_CORE), a minidump, a Windows kernel dump."""
    if head.startswith(b"\x7fELF") and len(head) >= 18:
        return int.from_bytes(head[16:18], "little" if head[5] == 1 else "big") == ET_CORE
    return head.startswith((MINIDUMP_MAGIC, MAGIC32, MAGIC64))


def _packed_head(path: str, packing: str) -> bytes:
    """The first bytes inside a packed file (b"" when they cannot be had)."""
    try:
        with open(path, "rb") as f:
            if packing.startswith("kdump"):  # makedumpfile's: it becomes an ELF vmcore
                return b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x04\x00"
            if packing == "apport":  # a crash report: is there a core in it?
                for n, line in enumerate(f):
                    if line.startswith(b"CoreDump: base64"):
                        return b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x04\x00"  # apport keeps ELF cores
                    if n > 100_000:
                        break
                return b""
            out = b""
            for chunk in decompressed(f, packing):
                out += chunk
                if len(out) >= 18:
                    break
            return out
    except Exception:  # a broken stream is no dump to take
        return b""


def is_dump(path: str) -> bool:
    """True if ``path`` is a regular file that starts as a dump the analyzer reads, or packs one
    (systemd-coredump's .zst/.lz4/.xz, a .gz, an apport .crash with a core). OSError (with its
    reason) if the file cannot be read: that says nothing of what it is."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        head = f.read(18)
    packing = packing_of(head)
    if packing is not None:
        head = _packed_head(path, packing)
    return _dump_head(head)
