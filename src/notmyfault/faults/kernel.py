"""myfault.ko and its control interface: names, the ioctl request, the kbuild build.

The C sources are in ``notmyfault/native/kernel/`` (``myfault.c``, ``myfault_ioctl.h``,
``Kbuild``, and ``myfaultctl.c``, the guest's tiny driver of the interface).
The numbers here are those of ``myfault_ioctl.h``; a test reads the header and
checks that they agree.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent.parent / "native" / "kernel"
DEVICE = "/dev/myfault"

OP_CRASH, OP_HANG, OP_LEAK, OP_STATUS, OP_FREE = 1, 2, 3, 4, 5

CRASHES: dict[str, tuple[int, str]] = {
    "high-irql": (1, "read freed vmalloc memory with interrupts off (the seed's D1)"),
    "buffer-overflow": (2, "write past a red-zoned slab object; SLUB finds it on free"),
    "code-overwrite": (3, "write into myfault's own read-only text"),
    "stack-trash": (4, "overrun a stack buffer; the stack protector panics on return"),
    "null-deref": (5, "read address 0"),
    "stack-overflow": (6, "recurse until the stack's guard page (double fault)"),
    "bug": (7, "BUG(): the kernel's assertion (invalid opcode)"),
    "double-free": (8, "free a kmalloc object twice; SLUB's hardened freelist catches it"),
    "panic": (9, "panic() with a chosen bug check code (KeBugCheckEx)"),
}
"""Kernel crash types: name -> (MYFAULT_CRASH_* number, what it does)."""

HANGS: dict[str, tuple[int, str]] = {
    "irp": (1, "an ioctl that never completes: the caller sleeps uninterruptibly (D state)"),
    "dpc": (2, "spin with interrupts off on every CPU (stop_machine)"),
    "deadlock": (3, "two kernel threads take two mutexes in opposite order"),
}
"""Kernel hang types: name -> (MYFAULT_HANG_* number, what it does)."""

POOLS = {"nonpaged": 1, "paged": 2}
"""nonpaged: slab objects in a cache named after the tag; paged: vmalloc blocks."""
PERSIST = 1
TAG_LEN = 16

_REQUEST = struct.Struct("<IIQQQII16sQQ")
IOCTL = (3 << 30) | (_REQUEST.size << 16) | (ord("M") << 8) | 1
"""_IOWR('M', 1, struct myfault_request)."""


@dataclass(frozen=True)
class Request:
    """One MYFAULT_IOCTL request (the fields of ``struct myfault_request``)."""

    op: int
    kind: int = 0
    arg: int = 0
    limit: int = 0
    block: int = 0
    flags: int = 0
    tag: str = ""

    def argv(self) -> list[str]:
        """The arguments of ``myfaultctl`` that send this request."""
        return [str(v) for v in (self.op, self.kind, self.arg, self.limit, self.block, self.flags)] + (
            [self.tag] if self.tag else []
        )

    def pack(self) -> bytes:
        """The request as the kernel reads it."""
        return _REQUEST.pack(
            self.op, self.kind, self.arg, self.limit, self.block, self.flags, 0, self.tag.encode()[:15], 0, 0
        )


def crash_request(name: str, code: int = 0xE2) -> Request:
    """The request that commits crash ``name`` (``panic`` takes ``code``)."""
    return Request(OP_CRASH, CRASHES[name][0], arg=code)


def hang_request(name: str) -> Request:
    """The request that commits hang ``name``."""
    return Request(OP_HANG, HANGS[name][0])


def leak_request(pool: str, rate: int, limit: int, block: int, tag: str, persist: bool = False) -> Request:
    """The request that leaks ``limit`` bytes of ``pool`` at ``rate`` bytes/s in ``block``-byte blocks."""
    if not 0 < len(tag.encode()) < TAG_LEN or not tag.isprintable() or " " in tag:
        raise ValueError(f"tag {tag!r}: give 1 to {TAG_LEN - 1} printable characters without spaces")
    return Request(OP_LEAK, POOLS[pool], rate, limit, block, PERSIST if persist else 0, tag)


class KernelError(Exception):
    """A one-line reason why building, loading or driving myfault.ko failed."""


class KernelHeadersMissing(KernelError):
    """The kernel headers a build needs are not installed: a missing prerequisite, not a failed build."""


def send(request: Request, device: str = DEVICE) -> tuple[int, int]:
    """Send ``request`` to the loaded module; return the leaked (bytes, blocks) it reports."""
    try:
        fd = os.open(device, os.O_RDWR)
    except OSError as e:
        raise KernelError(f"{device}: {e.strerror} (load the module: notmyfault kernel load)") from None
    try:
        buf = bytearray(request.pack())
        fcntl.ioctl(fd, IOCTL, buf)
    except OSError as e:
        raise KernelError(f"myfault.ko refused the request: {e.strerror}") from None
    finally:
        os.close(fd)
    fields = _REQUEST.unpack(bytes(buf))
    return fields[-2], fields[-1]


def default_kdir(release: str | None = None) -> Path:
    """The kbuild directory of the running kernel (or of ``release``)."""
    return Path("/lib/modules") / (release or os.uname().release) / "build"


def build(kdir: Path, out: Path) -> Path:
    """Build myfault.ko with kbuild against the headers in ``kdir``; return the module's path."""
    if not (kdir / "Makefile").exists():
        raise KernelHeadersMissing(
            f"no kernel headers at {kdir}: install them (Debian: apt-get install linux-headers-"
            f"{kdir.parent.name})"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in ("myfault.c", "myfault_ioctl.h", "Kbuild"):
        shutil.copyfile(SOURCE_DIR / name, out / name)
    proc = subprocess.run(
        ["make", "-s", "-C", str(kdir), f"M={out}", "modules"], capture_output=True, text=True
    )
    ko = out / "myfault.ko"
    if proc.returncode or not ko.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise KernelError(f"kbuild failed in {kdir}: {' / '.join(tail)}")
    return ko


def build_ctl(out: Path) -> Path:
    """Build the static guest tool myfaultctl with the host's C compiler."""
    out.mkdir(parents=True, exist_ok=True)
    exe = out / "myfaultctl"
    proc = subprocess.run(
        ["gcc", "-static", "-Os", "-Wall", "-o", str(exe), str(SOURCE_DIR / "myfaultctl.c")],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        tail = proc.stderr.strip().splitlines()[-2:]
        raise KernelError(f"building myfaultctl failed: {' / '.join(tail)} (is libc6-dev installed?)")
    return exe
