"""Breakpad symbol files (``.sym``): names, lines and the unwind rules (``STACK CFI``, ``STACK WIN``).

The format is Breakpad's ``symbol_files.md``: ``MODULE``, ``FILE``, ``FUNC`` with
its line records, ``PUBLIC``, ``STACK CFI INIT`` / ``STACK CFI`` (DWARF CFI as
postfix rules, for x86_64 and ARM) and ``STACK WIN`` (Windows frame data for x86:
sizes and a program string).  A malformed record is skipped, as Breakpad skips
it.  Files are found in the layout of symbol stores:
``DIR/<debug file>/<debug id>/<debug file without .pdb>.sym``, in local directories, a cache, and
symbol servers that serve the same layout over HTTP (:class:`SymbolStore`).
"""

from __future__ import annotations

import bisect
import ntpath
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from notmyfault.base import SafeFile, WriteFailed

MAX_SYM_BYTES = 512 << 20
"""A symbol file larger than this is not read (Firefox's libxul.sym is about 300 MB)."""


@dataclass(frozen=True)
class WinRecord:
    """One ``STACK WIN`` record: the frame data of an x86 function (sizes in bytes)."""

    kind: int
    """4: frame data with a program string; 0: FPO (no program string)."""
    rva: int
    size: int
    prolog: int
    params: int
    saved_regs: int
    locals: int
    program: str | None
    allocates_base_pointer: bool


@dataclass(frozen=True)
class CfiEntry:
    """One ``STACK CFI INIT`` range with its later rows: the rules at each address."""

    rva: int
    size: int
    init: str
    rows: tuple[tuple[int, str], ...]
    """(rva, rules) rows that change the rules from that address on, by address."""

    def rules_at(self, rva: int) -> dict[str, str]:
        """The rules in force at ``rva``: register (or .cfa, .ra) -> postfix expression."""
        rules = parse_rules(self.init)
        for at, text in self.rows:
            if at > rva:
                break
            rules.update(parse_rules(text))
        return rules


def parse_rules(text: str) -> dict[str, str]:
    """'.cfa: $rsp 8 + .ra: .cfa -8 + ^' -> {'.cfa': '$rsp 8 +', '.ra': '.cfa -8 + ^'}."""
    out: dict[str, str] = {}
    name: str | None = None
    expr: list[str] = []
    for token in text.split():
        if token.endswith(":") and len(token) > 1:
            if name is not None:
                out[name] = " ".join(expr)
            name, expr = token[:-1], []
        else:
            expr.append(token)
    if name is not None:
        out[name] = " ".join(expr)
    return out


@dataclass(frozen=True)
class SymbolFile:
    """What a Breakpad .sym file says: functions with their lines, public symbols, unwind rules."""

    funcs: list[tuple[int, int, str]]
    """(rva, size, name), sorted."""
    lines: list[tuple[int, int, int, str]]
    """(rva, size, line, file), sorted."""
    publics: list[tuple[int, str]]
    cfi: list[CfiEntry] = field(default_factory=list)
    """STACK CFI INIT ranges, sorted by address."""
    win: list[WinRecord] = field(default_factory=list)
    """STACK WIN records (type 4 preferred over type 0 at the same address), sorted."""

    def lookup(self, rva: int) -> tuple[str | None, int | None, str | None, int | None]:
        """(function, offset from it, file, line) for ``rva``."""
        i = bisect.bisect_right(self.funcs, (rva, 1 << 64, "")) - 1
        if i >= 0 and self.funcs[i][0] <= rva < self.funcs[i][0] + self.funcs[i][1]:
            start, _size, name = self.funcs[i]
            j = bisect.bisect_right(self.lines, (rva, 1 << 64, 0, "")) - 1
            file = line = None
            if j >= 0 and self.lines[j][0] <= rva < self.lines[j][0] + self.lines[j][1]:
                line, file = self.lines[j][2], self.lines[j][3]
            return name, rva - start, file, line
        k = bisect.bisect_right(self.publics, (rva, "\uffff")) - 1
        if k >= 0:
            return self.publics[k][1], rva - self.publics[k][0], None, None
        return None, None, None, None

    def has_code_at(self, rva: int) -> bool:
        """Whether a FUNC covers ``rva``, or a PUBLIC precedes it (what a stack scan accepts)."""
        i = bisect.bisect_right(self.funcs, (rva, 1 << 64, "")) - 1
        if i >= 0 and self.funcs[i][0] <= rva < self.funcs[i][0] + self.funcs[i][1]:
            return True
        return bool(self.publics) and self.publics[0][0] <= rva

    @cached_property
    def _cfi_starts(self) -> list[int]:
        return [e.rva for e in self.cfi]

    @cached_property
    def _win_starts(self) -> list[int]:
        return [w.rva for w in self.win]

    def cfi_at(self, rva: int) -> dict[str, str] | None:
        """The STACK CFI rules for ``rva``, or None where no range covers it."""
        i = bisect.bisect_right(self._cfi_starts, rva) - 1
        if i >= 0 and self.cfi[i].rva <= rva < self.cfi[i].rva + self.cfi[i].size:
            return self.cfi[i].rules_at(rva)
        return None

    def win_at(self, rva: int) -> WinRecord | None:
        """The STACK WIN record covering ``rva`` (frame data before FPO), or None."""
        hi = bisect.bisect_right(self._win_starts, rva)
        best = None
        for w in reversed(self.win[max(0, hi - 8) : hi]):
            if w.rva <= rva < w.rva + w.size and (best is None or (w.kind == 4 and best.kind != 4)):
                best = w
        return best


def _win(parts: list[str]) -> WinRecord:
    kind = int(parts[2], 16)
    rva, size, prolog, _epilog, params, saved, local, _max = (int(p, 16) for p in parts[3:11])
    has_program = parts[11] != "0"
    rest = " ".join(parts[12:])
    return WinRecord(
        kind, rva, size, prolog, params, saved, local,
        rest if has_program else None,
        (not has_program) and rest.strip() not in ("", "0"),
    )  # fmt: skip


def parse_sym(text: str) -> SymbolFile:
    """Parse a Breakpad symbol file."""
    files: dict[int, str] = {}
    funcs, lines, publics = [], [], []
    cfi: list[CfiEntry] = []
    win: dict[tuple[int, int], WinRecord] = {}
    init: tuple[int, int, str] | None = None
    rows: list[tuple[int, str]] = []
    in_func = False

    def close_cfi() -> None:
        if init is not None:
            cfi.append(CfiEntry(init[0], init[1], init[2], tuple(sorted(rows))))

    for raw in text.splitlines():
        parts = raw.split(" ")
        try:
            head = parts[0]
            if head == "FILE":
                files[int(parts[1])] = " ".join(parts[2:])
            elif head == "FUNC":
                rest = parts[2:] if parts[1] == "m" else parts[1:]
                funcs.append((int(rest[0], 16), int(rest[1], 16), " ".join(rest[3:])))
                in_func = True
            elif head == "PUBLIC":
                rest = parts[2:] if parts[1] == "m" else parts[1:]
                publics.append((int(rest[0], 16), " ".join(rest[2:])))
                in_func = False
            elif head == "STACK" and parts[1] == "CFI":
                in_func = False
                if parts[2] == "INIT":
                    close_cfi()
                    init, rows = (int(parts[3], 16), int(parts[4], 16), " ".join(parts[5:])), []
                elif init is not None:
                    rows.append((int(parts[2], 16), " ".join(parts[3:])))
            elif head == "STACK" and parts[1] == "WIN":
                in_func = False
                rec = _win(parts)
                key = (rec.rva, rec.kind)
                win.setdefault(key, rec)
            elif head in ("MODULE", "INFO", "STACK", "INLINE", "INLINE_ORIGIN"):
                in_func = head.startswith("INLINE") and in_func
            elif in_func and len(parts) == 4:
                lines.append(
                    (int(parts[0], 16), int(parts[1], 16), int(parts[2]), files.get(int(parts[3]), "?"))
                )
        except (IndexError, ValueError):
            continue  # a malformed record is skipped, as Breakpad does
    close_cfi()
    return SymbolFile(
        sorted(funcs),
        sorted(lines),
        sorted(publics),
        sorted(cfi, key=lambda e: e.rva),
        sorted(win.values(), key=lambda w: (w.rva, w.kind)),
    )


def load_sym(path: str) -> SymbolFile | None:
    """The parsed symbol file at ``path`` (cached while it is unchanged), or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # misses are not cached: they must not push real files out of the cache
    if st.st_size > MAX_SYM_BYTES:
        return None
    return _parse_file(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=32)
def _parse_file(path: str, _mtime: int, _size: int) -> SymbolFile | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_sym(f.read())
    except OSError:
        return None


_DEBUG_ID = re.compile(r"[0-9A-Za-z]{1,64}")


def store_names_valid(debug_file: str, debug_id: str) -> bool:
    """True if a dump's debug file name and debug id can name a symbol file: the id is letters and
    digits (hex and the age, as Breakpad writes it), and the file's base name (after any Windows or
    POSIX directory) is one plain path component: not empty, '.', '..', and with no control
    character. Names from a dump are hostile: 'c:\\..' would lead out of the store."""
    base = ntpath.basename(debug_file) or os.path.basename(debug_file)
    return (
        bool(_DEBUG_ID.fullmatch(debug_id))
        and base not in ("", ".", "..")
        and "/" not in base
        and "\\" not in base
        and base.isprintable()
        and len(base.encode(errors="surrogateescape")) <= 255
    )


def sym_path(symbols: str, debug_file: str, debug_id: str) -> str:
    """Where a symbol store keeps a module's .sym file."""
    base = ntpath.basename(debug_file) or os.path.basename(debug_file)
    stem = base[:-4] if base.lower().endswith(".pdb") else base
    return os.path.join(symbols, base, debug_id, stem + ".sym")


MAX_FETCH = 1 << 30
"""A symbol file larger than this is not fetched."""


class SymbolStore:
    """Where Breakpad symbol files are looked for: local directories, then a cache, then symbol
    servers (``--symbols-url``: HTTP, in the same DIR/<debug file>/<debug id>/<name>.sym layout, as
    Mozilla's and most companies' servers serve them).  A file fetched once is kept in the cache; a
    file a server does not have is asked for once per process.
    """

    def __init__(
        self,
        dirs: list[str] | None = None,
        urls: list[str] | None = None,
        cache: str | None = None,
        say: Callable[[str], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Look in ``dirs``, then ``cache``, then fetch from ``urls`` into ``cache``."""
        self.dirs = list(dirs or [])
        self.urls = [u.rstrip("/") for u in urls or []]
        self.cache = cache
        self.say = say
        self.timeout = timeout
        self.missed: set[tuple[str, str]] = set()
        self.fetched: list[str] = []
        """The URLs fetched (into the cache) so far."""

    def find(self, debug_file: str, debug_id: str) -> SymbolFile | None:
        """The parsed symbol file of a module, or None where no place has it (or where the dump's
        names for it could not be a file's: they become a path and a URL)."""
        if not store_names_valid(debug_file, debug_id):
            if self.say and (debug_file, debug_id) not in self.missed:
                self.say(f"symbols: not looked up: {debug_file!r} {debug_id!r} cannot name a symbol file")
            self.missed.add((debug_file, debug_id))
            return None
        for root in [*self.dirs, *([self.cache] if self.cache else [])]:
            found = load_sym(sym_path(root, debug_file, debug_id))
            if found is not None:
                return found
        if not self.urls or not self.cache or (debug_file, debug_id) in self.missed:
            return None
        import urllib.parse  # only when a symbol server is asked: urllib costs 20 ms of every start

        target = sym_path(self.cache, debug_file, debug_id)
        rel = os.path.relpath(target, self.cache)
        for url in self.urls:
            if self._fetch(f"{url}/{'/'.join(urllib.parse.quote(p) for p in rel.split(os.sep))}", target):
                return load_sym(target)
        self.missed.add((debug_file, debug_id))
        return None

    def _fetch(self, url: str, target: str) -> bool:
        import urllib.error
        import urllib.request

        if not url.startswith(("http://", "https://")):
            return False
        if self.say:
            self.say(f"symbols: fetching {url}")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                size = 0
                with SafeFile(target) as out:  # whole or nothing, under a name nobody can predict
                    while chunk := r.read(1 << 20):
                        size += len(chunk)
                        if size > MAX_FETCH:
                            raise OSError(f"larger than {MAX_FETCH >> 20} MiB")
                        out.file.write(chunk)
        except (OSError, ValueError, WriteFailed) as e:
            if self.say and not (isinstance(e, urllib.error.HTTPError) and e.code == 404):
                self.say(f"symbols: {url}: {e}")
            return False
        self.fetched.append(url)
        if self.say:
            self.say(f"symbols: kept {size >> 10} KiB in {target}")
        return True
