"""core_pattern: what it means, and where a given crash's dump will be.

The kernel reads /proc/sys/kernel/core_pattern at every core dump
(fs/coredump.c, format_corename()):

- ``|program args``: pipe the dump to a helper (systemd-coredump, apport,
  abrt ...); the arguments are split on spaces *before* %-expansion.
- ``@/path`` (Linux 6.17+; ``@@`` asks for the socket protocol): send the dump
  to a coredump server listening on that AF_UNIX socket.
- anything else: a file name, relative to the crashing process's working
  directory unless it starts with ``/``.  An empty pattern is a file dump with
  an empty name: the open fails and no dump is written.
- In file patterns with no ``%p``, ``kernel.core_uses_pid=1`` appends ``.PID``.

Everything here is pure: it takes the pattern as a string, so it is tested on
patterns this machine does not use.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

# %-specifiers of core(5) and what they stand for.
SPECIFIERS: Mapping[str, str] = {
    "%": "a literal %",
    "c": "core file size soft resource limit",
    "C": "core file size soft resource limit (cgroup-aware helpers)",
    "d": "dump mode (as PR_GET_DUMPABLE)",
    "e": "process or thread name (comm), '/' replaced",
    "E": "path of the executable, '/' replaced by '!'",
    "f": "file name of the executable",
    "F": "pidfd of the crashing process (pipes only)",
    "g": "real GID",
    "h": "hostname",
    "i": "TID of the crashing thread, in its PID namespace",
    "I": "TID of the crashing thread, in the initial PID namespace",
    "p": "PID, in its PID namespace",
    "P": "PID, in the initial PID namespace",
    "s": "number of the signal",
    "t": "time of the dump, seconds since the Epoch",
    "u": "real UID",
}

CORENAME_MAX = 127
"""The longest core_pattern the kernel accepts (CORENAME_MAX_SIZE - 1)."""


class PatternKind(str, Enum):
    """How the kernel delivers the dump."""

    FILE = "file"
    PIPE = "pipe"
    SOCKET = "socket"
    DISABLED = "disabled"


class Handler(str, Enum):
    """Who receives a dump that is piped or sent to a socket."""

    KERNEL_FILE = "kernel-file"
    SYSTEMD_COREDUMP = "systemd-coredump"
    APPORT = "apport"
    ABRT = "abrt"
    DISCARD = "discard"
    OTHER = "other"
    NONE = "none"


# Programs that accept a piped dump and throw it away.
_DISCARDERS = {"false", "true", "cat"}


@dataclass(frozen=True)
class CorePattern:
    """A parsed core_pattern."""

    raw: str
    kind: PatternKind
    handler: Handler
    program: str | None
    """The helper program (PIPE) or the socket path (SOCKET)."""
    args: tuple[str, ...]
    specifiers: tuple[str, ...]
    """The %-specifiers used, in order, without the %."""
    relative: bool
    """FILE patterns only: the name is relative to the crashing process's cwd."""

    @property
    def pid_in_pattern(self) -> bool:
        """True if the pattern names the PID (so core_uses_pid adds nothing)."""
        return "p" in self.specifiers

    def meaning(self, core_uses_pid: bool = False) -> str:
        """One sentence that says what the kernel does with a dump under this pattern."""
        if self.kind is PatternKind.DISABLED:
            return "core_pattern is empty: the kernel opens a file with an empty name, which fails, so no dump is written"
        if self.kind is PatternKind.SOCKET:
            return (
                f"the kernel sends the dump to the coredump server listening on the socket {self.program} "
                "(Linux 6.17+); that server decides where it is kept"
            )
        if self.kind is PatternKind.PIPE:
            who = {
                Handler.SYSTEMD_COREDUMP: "systemd-coredump, which stores it as coredumpctl shows",
                Handler.APPORT: "apport, which writes a crash report for packaged programs and may keep the core",
                Handler.ABRT: "abrt, which keeps it as a problem directory",
                Handler.DISCARD: f"{self.program}, which reads nothing: the dump is thrown away",
                Handler.OTHER: f"{self.program}, which decides what to keep",
            }[self.handler]
            return f"the kernel pipes the dump to {who}"
        where = "in the crashing process's working directory" if self.relative else "at that absolute path"
        suffix = ""
        if core_uses_pid and not self.pid_in_pattern:
            suffix = ", with '.PID' appended (core_uses_pid=1)"
        return f"the kernel writes the dump to a file named {self.raw!r} {where}{suffix}"


def _specifiers(text: str) -> tuple[str, ...]:
    found: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "%" and i + 1 < len(text):
            found.append(text[i + 1])
            i += 2
        else:
            i += 1
    return tuple(found)


def _classify_helper(program: str) -> Handler:
    base = os.path.basename(program)
    if base == "systemd-coredump" or "systemd-coredump" in program:
        return Handler.SYSTEMD_COREDUMP
    if "apport" in program:
        return Handler.APPORT
    if "abrt" in program:
        return Handler.ABRT
    if base in _DISCARDERS or program == "/dev/null":
        return Handler.DISCARD
    return Handler.OTHER


def parse_pattern(raw: str) -> CorePattern:
    """Parse a core_pattern string (as read from /proc, trailing newline allowed)."""
    text = raw.rstrip("\n")
    if text.strip() == "":
        return CorePattern(text, PatternKind.DISABLED, Handler.NONE, None, (), (), False)
    if text.startswith("|"):
        words = text[1:].split()
        if not words:
            return CorePattern(text, PatternKind.DISABLED, Handler.NONE, None, (), (), False)
        program, args = words[0], tuple(words[1:])
        return CorePattern(
            text, PatternKind.PIPE, _classify_helper(program), program, args, _specifiers(text), False
        )
    if text.startswith("@"):
        path = text.lstrip("@").split()[0] if text.lstrip("@").split() else ""
        return CorePattern(text, PatternKind.SOCKET, Handler.OTHER, path, (), (), False)
    return CorePattern(
        text, PatternKind.FILE, Handler.KERNEL_FILE, None, (), _specifiers(text), not text.startswith("/")
    )


@dataclass(frozen=True)
class CrashFacts:
    """What is known, before or after a crash, about the process that crashes.

    A value left as None is not known; expansion turns it into a glob ``*``.
    """

    pid: int | None = None
    tid: int | None = None
    uid: int | None = None
    gid: int | None = None
    signal: int | None = None
    comm: str | None = None
    exe: str | None = None
    hostname: str | None = None
    time: int | None = None
    core_limit: int | None = None
    dumpable: int | None = None


def _glob_escape(text: str) -> str:
    return glob.escape(text)


def expand(pattern: CorePattern, facts: CrashFacts, core_uses_pid: bool, as_glob: bool = False) -> str:
    """Expand a FILE pattern into the file name the kernel will use.

    With ``as_glob``, unknown values become ``*`` and known ones are escaped,
    so the result can be matched against the directory after the crash.
    Without it, unknown values raise ValueError.
    """
    if pattern.kind is not PatternKind.FILE:
        raise ValueError(f"only file patterns name a file; this one is a {pattern.kind.value}")

    def value(spec: str) -> str:
        known: Mapping[str, object | None] = {
            "p": facts.pid,
            "P": facts.pid,
            "i": facts.tid,
            "I": facts.tid,
            "u": facts.uid,
            "g": facts.gid,
            "s": facts.signal,
            "t": facts.time,
            "h": facts.hostname,
            "e": (facts.comm or "").replace("/", "!") if facts.comm is not None else None,
            "E": facts.exe.replace("/", "!") if facts.exe is not None else None,
            "f": os.path.basename(facts.exe) if facts.exe is not None else None,
            "c": facts.core_limit,
            "C": facts.core_limit,
            "d": facts.dumpable,
        }
        if spec == "%":
            return "%" if not as_glob else "[%]"
        if spec not in known:
            return ""  # the kernel drops an unknown specifier
        v = known[spec]
        if v is None:
            if as_glob:
                return "*"
            raise ValueError(f"cannot predict %{spec} ({SPECIFIERS.get(spec, '?')}) before the crash")
        return _glob_escape(str(v)) if as_glob else str(v)

    out: list[str] = []
    text = pattern.raw
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%" and i + 1 < len(text):
            out.append(value(text[i + 1]))
            i += 2
            continue
        if ch == "%":  # a trailing lone % is dropped
            i += 1
            continue
        out.append(_glob_escape(ch) if as_glob else ch)
        i += 1
    name = "".join(out)
    if core_uses_pid and not pattern.pid_in_pattern:
        pid = "*" if facts.pid is None and as_glob else str(facts.pid)
        if facts.pid is None and not as_glob:
            raise ValueError("cannot predict the .PID suffix before the crash")
        name += f".{pid}"
    return name
