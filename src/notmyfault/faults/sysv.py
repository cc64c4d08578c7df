"""System V objects that hold leaked blocks: listing, reading and removing them.

notmyfault's shm segments and message queues use keys 0x6d79NNNN ("my" and a
slot number), and every one of them starts with a pool header (the segment,
or the first message of the queue), which is read without changing the object
(shmat read-only, msgrcv MSG_COPY).  An object is ours only if both hold, so
``cleanup`` never removes anything another program made.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from notmyfault.faults.pool import PoolHeader, parse_header

KEY_PREFIX = 0x6D79 << 16
SLOTS = 1 << 16
PROC_SYSVIPC = Path("/proc/sysvipc")


@dataclass(frozen=True)
class HeldObject:
    """One System V object holding leaked blocks."""

    kind: str
    """'shm' (a segment holding one paged block) or 'msg' (a queue of kernel blocks)."""
    ident: int
    key: int
    header: PoolHeader
    bytes: int
    """Bytes held: the segment's size, or the bytes queued."""
    blocks: int
    """Blocks held: 1 for a segment, the number of messages for a queue."""
    uid: int
    ctime: int
    """When the object was created (seconds since the Epoch)."""

    @property
    def age_s(self) -> float:
        """Seconds since the object was created."""
        return max(0.0, time.time() - self.ctime)


def _rows(kind: str) -> Iterator[dict[str, int]]:
    path = PROC_SYSVIPC / kind
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return
    names = lines[0].split()
    for line in lines[1:]:
        values = line.split()
        if len(values) >= len(names):
            yield {n: int(v) for n, v in zip(names, values, strict=False)}


def used_keys(kind: str) -> set[int]:
    """The keys of every System V object of ``kind`` ('shm' or 'msg') on this machine."""
    return {row["key"] for row in _rows(kind)}


def free_keys(kind: str) -> Iterator[int]:
    """Keys with notmyfault's prefix that no object of ``kind`` uses yet, in order."""
    used = used_keys(kind)
    for slot in range(SLOTS):
        key = KEY_PREFIX | slot
        if key not in used:
            yield key


def count(kind: str) -> int:
    """How many System V objects of ``kind`` exist on this machine."""
    return sum(1 for _ in _rows(kind))


def held(tag: str | None = None) -> list[HeldObject]:
    """notmyfault's System V objects (optionally of one tag), oldest first."""
    from notmyfault.native import myfault

    out: list[HeldObject] = []
    for kind, id_col, size_col in (("shm", "shmid", "size"), ("msg", "msqid", "cbytes")):
        for row in _rows(kind):
            if row["key"] >> 16 != KEY_PREFIX >> 16:
                continue
            try:
                header = parse_header(myfault.ipc_header(kind, row[id_col]))
            except OSError:
                continue  # gone meanwhile, empty, or not readable by us
            if header is None or (tag is not None and header.tag.strip() != tag.strip()):
                continue
            blocks = 1 if kind == "shm" else row["qnum"]
            out.append(
                HeldObject(
                    kind, row[id_col], row["key"], header, row[size_col], blocks, row["uid"], row["ctime"]
                )
            )
    return sorted(out, key=lambda o: (o.ctime, o.kind, o.ident))


def remove(obj: HeldObject) -> bool:
    """Remove ``obj``; False if it was already gone."""
    from notmyfault.native import myfault

    try:
        myfault.ipc_remove(obj.kind, obj.ident)
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno in (22, 43):  # EINVAL, EIDRM: already removed
            return False
        raise
    return True


def mine(objs: list[HeldObject]) -> list[HeldObject]:
    """The objects owned by this user."""
    return [o for o in objs if o.uid == os.getuid()]
