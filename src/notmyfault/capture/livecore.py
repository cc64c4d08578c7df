"""A core dump of a live process, written by our own code: no gdb, no gcore.

Every thread is stopped with ``PTRACE_SEIZE`` + ``PTRACE_INTERRUPT`` (a stop the process cannot see,
and no SIGSTOP left behind); each thread's registers come from ``PTRACE_GETREGSET`` (general, FP and
the XSAVE area), the process's from /proc (stat, status, auxv, maps, smaps), and its memory from
``process_vm_readv``. The file is what the kernel writes on a crash (fs/binfmt_elf.c): an ELF
``ET_CORE`` with one ``PT_NOTE`` segment (NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO when a signal is
being delivered, NT_AUXV, NT_FILE, NT_FPREGSET and NT_X86_XSTATE per thread) and one ``PT_LOAD`` per
mapping, chosen as the kernel's default coredump_filter (0x33) chooses: anonymous memory, private
file mappings the process wrote to, the first page of mapped ELF files (their headers and build ids),
nothing of read-only file mappings. Then the threads go on where they were, or the process is killed.

x86_64 only, the layout of ``elf_prstatus`` and ``user_regs_struct`` being per architecture.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import signal
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from notmyfault.base.lifetime import ended

PTRACE_GETREGSET = 0x4204
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_DETACH = 17
PTRACE_CONT = 7
PTRACE_GETEVENTMSG = 0x4201
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6
WALL = 0x40000000

NT_PRSTATUS, NT_PRFPREG, NT_PRPSINFO, NT_AUXV = 1, 2, 3, 6
NT_X86_XSTATE = 0x202
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45
PAGE = os.sysconf("SC_PAGE_SIZE")
CHUNK = 1 << 20
"""Bytes read from the process per process_vm_readv call."""
MAX_SEGMENTS = 0xFFFE
"""PT_LOAD segments an ELF header can count (e_phnum, less the PT_NOTE)."""


class DumpFailed(Exception):
    """The process could not be dumped: the message says why and what to do."""


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps, with what smaps says of it."""

    start: int
    end: int
    perms: str
    offset: int
    path: str
    anonymous_kb: int = 0
    """Pages of it that the process owns privately (written copies of a file's pages, or anonymous)."""

    @property
    def file_backed(self) -> bool:
        """Mapped from a file (not anonymous, not [heap], [stack], [vdso], ...)."""
        return (
            self.path.startswith("/") and not self.path.startswith("/SYSV") and "(deleted)" not in self.path
        )


@dataclass
class ThreadRegs:
    """One stopped thread's state."""

    tid: int
    prstatus_regs: bytes
    fpregs: bytes | None
    xstate: bytes | None
    siginfo: bytes | None = None
    """The signal being delivered to it, for a dump taken at that signal."""


@dataclass
class LiveCore:
    """What ``write_core`` wrote."""

    path: str
    """Where the core was put (set by the caller: ``write_core`` writes to an open file)."""
    pid: int
    threads: int
    segments: int
    size: int
    signal: int | None = None
    skipped: list[str] = field(default_factory=list)
    """Mappings whose memory could not be read (kept in the core with no contents)."""
    memory: int = 0
    """Bytes of memory the core was to hold (the sum of its PT_LOAD file sizes)."""
    held: int = 0
    """Bytes of memory it holds: all of ``memory``, unless the process died during the dump."""
    died_after: float | None = None
    """Seconds into the writing of memory at which the process was found dead (the core then ends
    at ``size``, truncated: its headers promise more), else None."""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    libc.process_vm_readv.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong
    ]  # fmt: skip
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    return libc


LIBC = _libc()


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


def ptrace(request: int, tid: int, addr: int = 0, data: int | ctypes.c_void_p | None = 0) -> int:
    """ptrace(2); OSError with errno on failure."""
    ctypes.set_errno(0)
    r = LIBC.ptrace(
        request,
        tid,
        ctypes.c_void_p(addr),
        data if isinstance(data, ctypes.c_void_p) else ctypes.c_void_p(data),
    )
    if r == -1 and ctypes.get_errno():
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return int(r)


def _regset(tid: int, kind: int, size: int) -> bytes | None:
    buf = ctypes.create_string_buffer(size)
    iov = _IoVec(ctypes.addressof(buf), size)
    try:
        ptrace(PTRACE_GETREGSET, tid, kind, ctypes.c_void_p(ctypes.addressof(iov)))
    except OSError:
        return None
    return buf.raw[: iov.len]


def siginfo_of(tid: int) -> bytes | None:
    """The siginfo of the signal-delivery stop thread ``tid`` is in (128 bytes)."""
    buf = ctypes.create_string_buffer(128)
    try:
        ptrace(PTRACE_GETSIGINFO, tid, 0, ctypes.c_void_p(ctypes.addressof(buf)))
    except OSError:
        return None
    return buf.raw


def read_into(pid: int, addr: int, buf: ctypes.Array[ctypes.c_char], size: int) -> bool:
    """Read ``size`` bytes at ``addr`` of process ``pid`` into ``buf`` (process_vm_readv); False if any
    page is unreadable."""
    local = _IoVec(ctypes.addressof(buf), size)
    remote = _IoVec(addr, size)
    return int(LIBC.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)) == size


def read_memory(pid: int, addr: int, size: int) -> bytes | None:
    """``size`` bytes at ``addr`` of process ``pid``; None if any page is unreadable."""
    buf = ctypes.create_string_buffer(size)
    return buf.raw if read_into(pid, addr, buf, size) else None


PF_KTHREAD = 0x00200000
"""The kernel's flag of a kernel thread (in /proc/PID/stat's flags)."""


def not_dumpable(pid: int) -> str | None:
    """Why ``pid`` has nothing to dump, whoever asks: a zombie (exited, memory gone) or a kernel
    thread (no user memory); None if neither. ptrace refuses both with EPERM, the errno of a
    missing permission, so they are told apart here."""
    fields = stat_fields(f"/proc/{pid}/stat")
    if not fields:
        return None
    if fields[0] in "ZXx":
        return (
            f"process {pid} is a zombie: it has exited and only waits for its parent (pid {fields[1]}) to "
            "reap it; its memory is gone, so there is nothing to dump"
        )
    if int(fields[6]) & PF_KTHREAD:
        return f"process {pid} is a kernel thread: it has no user memory to dump"
    return None


def why_not_traceable(pid: int, e: OSError) -> str:
    """The one-line reason an attach to ``pid`` failed, naming what is missing."""
    if e.errno == errno.ESRCH:
        return f"no process {pid} (it exited?)"
    if e.errno != errno.EPERM:
        return f"cannot attach to process {pid}: {e.strerror}"
    if gone := not_dumpable(pid):
        return gone
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        owner = None
    scope = _read("/proc/sys/kernel/yama/ptrace_scope").strip()
    if owner is not None and owner != os.geteuid():
        return (
            f"cannot attach to process {pid}: it belongs to uid {owner} and this is uid {os.geteuid()}; "
            "run as that user, or with CAP_SYS_PTRACE (root, or a container started with --cap-add=SYS_PTRACE)"
        )
    if scope in ("1", "2", "3"):
        return (
            f"cannot attach to process {pid}: kernel.yama.ptrace_scope is {scope}, which allows only a parent "
            "to trace its child; run with CAP_SYS_PTRACE, or set it to 0 (sysctl kernel.yama.ptrace_scope=0)"
        )
    status = _read(f"/proc/{pid}/status")
    if "TracerPid:\t0" not in status:
        return f"cannot attach to process {pid}: another debugger traces it already (TracerPid in /proc/{pid}/status)"
    return (
        f"cannot attach to process {pid}: ptrace is not permitted here (a seccomp profile or LSM forbids it: "
        "a container needs CAP_SYS_PTRACE and a seccomp profile that allows ptrace)"
    )


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return ""


def tids(pid: int) -> list[int]:
    """The process's threads, the thread-group leader first."""
    try:
        found = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        raise DumpFailed(f"no process {pid} (it exited?)") from None
    return sorted(found, key=lambda t: t != pid)


STOP_TIMEOUT = 3.0
"""Seconds a thread may take to stop; one in an uninterruptible sleep (D state) never does."""


class ThreadGone(Exception):
    """A thread exited while it was being stopped."""


def _wait_stop(tid: int, pid: int, timeout: float = STOP_TIMEOUT) -> tuple[int, int]:
    """Wait for thread ``tid`` to stop: (the signal it stopped with, the ptrace event)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, status = os.waitpid(tid, WALL | os.WNOHANG)
        except ChildProcessError:
            raise ThreadGone(tid) from None
        if got == 0:
            if time.monotonic() > deadline:
                state = _status(pid, tid).get("State", "?")
                hint = (
                    f": it is in an uninterruptible sleep ({state}), where no debugger can stop it "
                    "(kill -QUIT the process to have it dump itself)"
                    if state.startswith("D")
                    else f" (state {state})"
                )
                raise DumpFailed(f"thread {tid} of process {pid} did not stop within {timeout:g} s{hint}")
            time.sleep(0.002)
            continue
        if os.WIFSTOPPED(status):
            return os.WSTOPSIG(status), status >> 16
        raise ThreadGone(tid)


class Attached:
    """Every thread of a process, seized and stopped; ``detach`` lets them go on (``with`` does)."""

    def __init__(self, pid: int, options: int = 0, stop: bool = True) -> None:
        self.pid = pid
        self.options = options
        self.seized: list[int] = []
        self.pending: dict[int, int] = {}
        """Signals a thread was about to take when it was stopped: given back on detach."""
        for tid in self._new_threads():
            self._seize(tid)
        if stop:
            self.stop_all()

    def _new_threads(self) -> Iterator[int]:
        known = set(self.seized)  # a set: 10,000 threads made this quadratic
        for tid in tids(self.pid):
            if tid not in known:
                yield tid

    def _seize(self, tid: int) -> None:
        try:
            ptrace(PTRACE_SEIZE, tid, 0, self.options)
        except OSError as e:
            if e.errno == errno.ESRCH and tid != self.pid:
                return  # a thread that ended meanwhile
            if e.errno == errno.EPERM and tid != self.pid and self._traced_by_us(tid):
                self.seized.append(tid)  # a new thread, attached on its creation (PTRACE_O_TRACECLONE)
                return
            self.detach()
            raise DumpFailed(why_not_traceable(self.pid, e)) from None
        self.seized.append(tid)

    def _traced_by_us(self, tid: int) -> bool:
        return f"TracerPid:\t{os.getpid()}\n" in _read(f"/proc/{self.pid}/task/{tid}/status")

    def stop_all(self, stopped: set[int] | None = None) -> None:
        """Stop every thread (new ones too, until no thread is left running); ``stopped``: the
        threads that are in a ptrace stop already."""
        stopped = set(stopped or ())
        while True:
            for tid in self._new_threads():
                self._seize(tid)
            running = [t for t in self.seized if t not in stopped]
            if not running:
                return
            asked = []  # every thread is asked first, then each waited for: one by one, each wait
            for tid in running:  # slept 2 ms (10,001 threads took 22 s to stop)
                try:
                    ptrace(PTRACE_INTERRUPT, tid)
                    asked.append(tid)
                except OSError:
                    if tid == self.pid:
                        raise DumpFailed(f"process {self.pid} exited while it was being stopped") from None
                    self.seized.remove(tid)
            for tid in asked:
                try:
                    sig, event = _wait_stop(tid, self.pid)
                    if event == 0 and sig not in (signal.SIGTRAP, 0):
                        # it stopped to take a signal first: keep it for the detach, then wait for our stop
                        self.pending[tid] = sig
                        ptrace(PTRACE_CONT, tid, 0, 0)
                        ptrace(PTRACE_INTERRUPT, tid)
                        _wait_stop(tid, self.pid)
                except (OSError, ThreadGone):
                    if tid == self.pid:
                        raise DumpFailed(f"process {self.pid} exited while it was being stopped") from None
                    self.seized.remove(tid)
                    continue
                except DumpFailed:
                    self.detach()
                    raise
                stopped.add(tid)

    def detach(self, kill: bool = False) -> None:
        """Let every thread go on (the signals they were about to take given back), or kill them."""
        if kill and self.seized:  # once: a second call (nothing seized any more) is a no-op
            with contextlib.suppress(ProcessLookupError):  # it died during the dump
                os.kill(self.pid, signal.SIGKILL)
        for tid in self.seized:
            try:
                ptrace(PTRACE_DETACH, tid, 0, self.pending.get(tid, 0))
            except OSError:
                if not kill:
                    self._detach_running(tid)
        self.seized = []

    def _detach_running(self, tid: int) -> None:
        """Detach a thread that is not in a ptrace stop (a wait for a trigger was cut short): stop it
        first, as PTRACE_DETACH needs, and give back a signal it was about to take."""
        try:
            ptrace(PTRACE_INTERRUPT, tid)
            sig, event = _wait_stop(tid, self.pid, 1.0)
            ptrace(PTRACE_DETACH, tid, 0, sig if event == 0 and sig != signal.SIGTRAP else 0)
        except (OSError, ThreadGone, DumpFailed):
            pass  # gone, or stuck: the kernel detaches it when this process ends

    def __enter__(self) -> Attached:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


def thread_regs(tid: int) -> ThreadRegs:
    """A stopped thread's registers: general (27 words), FP (512 bytes), the XSAVE area."""
    regs = _regset(tid, NT_PRSTATUS, 27 * 8)
    if regs is None or len(regs) != 27 * 8:
        raise DumpFailed(f"cannot read the registers of thread {tid}")
    return ThreadRegs(tid, regs, _regset(tid, NT_PRFPREG, 512), _regset(tid, NT_X86_XSTATE, 16384))


def mappings(pid: int) -> list[Mapping]:
    """/proc/PID/smaps: every mapping, with its privately owned (Anonymous) size."""
    out: list[Mapping] = []
    current: dict[str, object] | None = None
    text = _read(f"/proc/{pid}/smaps")
    if not text:
        raise DumpFailed(f"cannot read /proc/{pid}/smaps (the process exited?)")
    for line in text.splitlines():
        head = line.split(None, 5)
        if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            if current:
                out.append(Mapping(**current))  # type: ignore[arg-type]
            lo, hi = head[0].split("-")
            current = {
                "start": int(lo, 16),
                "end": int(hi, 16),
                "perms": head[1],
                "offset": int(head[2], 16),
                "path": head[5] if len(head) > 5 else "",
            }
        elif current is not None and line.startswith("Anonymous:"):
            current["anonymous_kb"] = int(line.split()[1])
    if current:
        out.append(Mapping(**current))  # type: ignore[arg-type]
    return out


def dumped_size(pid: int, m: Mapping) -> int:
    """How much of mapping ``m`` goes into the core, as the kernel's default coredump_filter decides."""
    if "r" not in m.perms or m.path in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
        return 0
    if not m.file_backed:
        return m.end - m.start  # anonymous, heap, stacks, vdso, shared memory
    if m.perms[3] == "p" and m.anonymous_kb:
        return m.end - m.start  # a private file mapping the process wrote to (.data, .bss, relro)
    if m.offset == 0 and read_memory(pid, m.start, 4) == b"\x7fELF":
        return PAGE  # the headers of a mapped ELF file: its program headers and build id note
    return 0


def _padded(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _note(name: bytes, kind: int, desc: bytes) -> bytes:
    name0 = name + b"\0"
    return struct.pack("<III", len(name0), len(desc), kind) + _padded(name0) + _padded(desc)


def stat_fields(path: str) -> list[str]:
    """The fields of a /proc .../stat file after the command's name (state, ppid, ...); [] if gone."""
    text = _read(path)
    return text[text.rfind(")") + 2 :].split() if text else []


def _proc_stat(pid: int, tid: int) -> list[str]:
    return stat_fields(f"/proc/{pid}/task/{tid}/stat")


def _status(pid: int, tid: int) -> dict[str, str]:
    out = {}
    for line in _read(f"/proc/{pid}/task/{tid}/status").splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _timeval(ticks: int) -> bytes:
    hz = os.sysconf("SC_CLK_TCK")
    return struct.pack("<qq", ticks // hz, (ticks % hz) * (1_000_000 // hz))


def prstatus(pid: int, t: ThreadRegs) -> bytes:
    """elf_prstatus for x86_64 (336 bytes)."""
    stat = _proc_stat(pid, t.tid)
    status = _status(pid, t.tid)
    signo = code = err = 0
    if t.siginfo:
        signo, err, code = struct.unpack_from("<iii", t.siginfo)
    ppid, pgrp, sid = (int(stat[i]) for i in (1, 2, 3)) if stat else (0, 0, 0)
    utime, stime, cutime, cstime = (int(stat[i]) for i in (11, 12, 13, 14)) if stat else (0, 0, 0, 0)
    pend = int(status.get("SigPnd", "0"), 16)
    hold = int(status.get("SigBlk", "0"), 16)
    return (
        struct.pack("<iiihxxQQiiii", signo, code, err, signo, pend, hold, t.tid, ppid, pgrp, sid)
        + _timeval(utime) + _timeval(stime) + _timeval(cutime) + _timeval(cstime)
        + t.prstatus_regs
        + struct.pack("<ixxxx", 1 if t.fpregs else 0)
    )  # fmt: skip


def prpsinfo(pid: int) -> bytes:
    """elf_prpsinfo for x86_64 (136 bytes)."""
    stat = _proc_stat(pid, pid)
    status = _status(pid, pid)
    state = stat[0] if stat else "R"
    nice = int(stat[16]) if stat else 0
    flags = int(stat[6]) if stat else 0
    uid = int(status.get("Uid", "0").split()[0])
    gid = int(status.get("Gid", "0").split()[0])
    ppid, pgrp, sid = (int(stat[i]) for i in (1, 2, 3)) if stat else (0, 0, 0)
    comm = _read(f"/proc/{pid}/comm").rstrip("\n").encode(errors="surrogateescape")[:15]
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().replace(b"\0", b" ").rstrip()[:79]
    except OSError:
        args = b""
    sname = "RSDTZW".index(state) if state in "RSDTZW" else 0
    return struct.pack(
        "<bcbbxxxxQIIiiii16s80s", sname, state.encode()[:1], 1 if state == "Z" else 0, nice, flags,
        uid, gid, pid, ppid, pgrp, sid, comm, args,
    )  # fmt: skip


def file_note(maps: list[Mapping]) -> bytes:
    """NT_FILE: each file-backed mapping's range, its offset in pages, and its path."""
    files = [m for m in maps if m.file_backed or (m.path.startswith("/") and m.path.endswith(" (deleted)"))]
    head = struct.pack("<QQ", len(files), PAGE)
    ranges = b"".join(struct.pack("<QQQ", m.start, m.end, m.offset // PAGE) for m in files)
    names = b"".join(m.path.encode(errors="surrogateescape") + b"\0" for m in files)
    return head + ranges + names


def write_core(
    pid: int,
    out: BinaryIO,
    attached: Attached,
    signalled: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LiveCore:
    """Write the core of ``pid`` (all threads stopped by ``attached``) to ``out``, a new file open for
    writing (seekable). OSErrors of the writes are the caller's.

    ``signalled``: the thread whose signal delivery the dump was taken at (NT_SIGINFO and pr_cursig
    then say which signal). ``progress(done, total)`` is called as memory is written. A process
    killed during the dump (SIGKILL stops no tracer) ends the core where its memory went: the result
    says when (``died_after``) and how much it holds (``held`` of ``memory``).
    """
    if platform.machine() != "x86_64":
        raise DumpFailed(f"notmyfault dump writes x86_64 cores; this machine is {platform.machine()}")
    threads = []
    for tid in attached.seized:
        regs = thread_regs(tid)
        if tid == signalled:
            regs.siginfo = siginfo_of(tid)
        threads.append(regs)
    threads.sort(
        key=lambda t: (t.tid != signalled, t.tid != pid)
    )  # the signalled thread, else the leader, first
    maps = mappings(pid)
    sizes = [dumped_size(pid, m) for m in maps]
    if len(maps) > MAX_SEGMENTS:
        raise DumpFailed(f"process {pid} has {len(maps)} mappings: more than an ELF core's header can count")

    notes = bytearray()
    for i, t in enumerate(threads):
        notes += _note(b"CORE", NT_PRSTATUS, prstatus(pid, t))
        if i == 0:
            notes += _note(b"CORE", NT_PRPSINFO, prpsinfo(pid))
            if t.siginfo:
                notes += _note(b"CORE", NT_SIGINFO, t.siginfo)
            try:
                with open(f"/proc/{pid}/auxv", "rb") as f:
                    notes += _note(b"CORE", NT_AUXV, f.read())
            except OSError:
                pass
            notes += _note(b"CORE", NT_FILE, file_note(maps))
        if t.fpregs:
            notes += _note(b"CORE", NT_PRFPREG, t.fpregs)
        if t.xstate:
            notes += _note(b"LINUX", NT_X86_XSTATE, t.xstate)

    phnum = 1 + len(maps)
    note_off = 64 + 56 * phnum
    data_off = note_off + len(notes)
    data_off += -data_off % PAGE
    phdrs = [struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(notes), 0, 4)]  # PT_NOTE
    off = data_off
    for m, size in zip(maps, sizes, strict=True):
        flags = (4 if "r" in m.perms else 0) | (2 if "w" in m.perms else 0) | (1 if "x" in m.perms else 0)
        phdrs.append(struct.pack("<IIQQQQQQ", 1, flags, off, m.start, 0, size, m.end - m.start, PAGE))
        off += size
    ehdr = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"", 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0
    )  # fmt: skip
    total = sum(sizes)
    done = 0
    skipped: list[str] = []
    started = time.monotonic()
    died: float | None = None
    out.write(ehdr + b"".join(phdrs) + bytes(notes))
    out.seek(data_off)
    end = data_off
    buf = ctypes.create_string_buffer(CHUNK)  # one buffer, reused: memory stays flat however big the core
    view = memoryview(buf).cast("B")
    for m, size in zip(maps, sizes, strict=True):
        bad = False
        for at in range(m.start, m.start + size, CHUNK):
            n = min(CHUNK, m.start + size - at)
            if not read_into(pid, at, buf, n):  # some page unreadable: page by page, zeros for those
                if ended(pid):
                    died = time.monotonic() - started
                    break
                for p in range(at, at + n, PAGE):
                    if not read_into(pid, p, buf, PAGE):
                        ctypes.memset(buf, 0, PAGE)
                        bad = True
                    out.write(view[:PAGE])
            else:
                out.write(view[:n])
            done += n
            if progress:
                progress(done, total)
        if died is not None:
            break
        if bad:
            skipped.append(f"{m.start:#x}-{m.end:#x} {m.path}".rstrip())
    if died is None and ended(pid):  # died during the last reads: zeros may stand for its memory
        died = time.monotonic() - started
    end = data_off + done if died is not None else off
    out.truncate(end)
    signo = struct.unpack_from("<i", threads[0].siginfo)[0] if threads[0].siginfo else None
    return LiveCore("", pid, len(threads), len(maps), end, signo, skipped, total, done, died)
