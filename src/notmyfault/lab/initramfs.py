"""The lab's initramfs: a newc cpio archive, gzipped, written in memory.

The format is four lines of the kernel's ``Documentation/driver-api/early-userspace/buffer-format.rst``:
a 110-byte ASCII header per entry, the name, the data, each padded to 4 bytes,
and a ``TRAILER!!!`` entry.  Writing it here (about thirty lines) spares the
host the cpio package and a staging directory.
"""

from __future__ import annotations

import gzip
import io
import stat

_HEADER = "070701{ino:08X}{mode:08X}00000000000000000000000100000000{size:08X}00000000000000000000000000000000{namesize:08X}00000000"


def _pad(out: io.BytesIO) -> None:
    out.write(b"\0" * (-out.tell() % 4))


def cpio(entries: dict[str, bytes | None], executables: frozenset[str] = frozenset()) -> bytes:
    """A gzipped newc archive: ``path -> content`` (None: a directory); ``executables`` get mode 0755.

    Directories must come before what they hold (dict order is kept).
    """
    out = io.BytesIO()
    items = [*entries.items(), ("TRAILER!!!", b"")]
    for ino, (path, data) in enumerate(items, start=1):
        perms = 0o755 if data is None or path in executables else 0o644
        mode = (stat.S_IFDIR if data is None else stat.S_IFREG) | perms
        name = path.encode() + b"\0"
        body = data or b""
        if path == "TRAILER!!!":
            mode, ino = 0, 0
        out.write(_HEADER.format(ino=ino, mode=mode, size=len(body), namesize=len(name)).encode())
        out.write(name)
        _pad(out)
        out.write(body)
        _pad(out)
    return gzip.compress(out.getvalue(), compresslevel=1)
