"""Type stub for the native module myfault (src/notmyfault/native/user/myfault.c)."""

def do_bug(name: str, arg: int = 0, /) -> bool:
    """Commit the fault called ``name``; returns True only if the process survived it."""

def faults() -> tuple[str, ...]:
    """The names of the faults this module can commit, in table order."""

def wild_pc() -> int:
    """The address stack-trash writes over its return address."""

def leak_block(pool: int, size: int, tag: bytes | None, seq: int, /) -> int:
    """Leak a paged (1) or nonpaged (2) block of size bytes; return its address."""

def free_block(address: int, size: int, /) -> None:
    """Free a block that leak_block returned."""

def shm_block(key: int, size: int, tag: bytes | None, seq: int, /) -> int:
    """Leak a block in a new System V shared memory segment; return its id."""

def msg_queue(key: int, /) -> int:
    """Create a System V message queue with key; return its id."""

def msg_block(msqid: int, size: int, tag: bytes | None, seq: int, /) -> None:
    """Leak one message of size bytes (header included) onto queue msqid."""

def ipc_header(kind: str, ident: int, /) -> bytes:
    """The pool header of a shm segment ('shm') or of a queue's first message ('msg')."""

def ipc_remove(kind: str, ident: int, /) -> None:
    """Remove a System V shm segment or message queue."""

def hang(name: str, threads: int = 1, realtime: bool = False, /) -> int:
    """Hang the calling thread: deadlock, spin or unkillable; returns only when released."""

def start_watchdog(seconds: float, /) -> None:
    """Start a thread that aborts the process after seconds (> 0), or only waits."""
