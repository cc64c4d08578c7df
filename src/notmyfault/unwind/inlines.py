"""Qualified names of the functions at a pc, inlined ones included, read from DWARF with pyelftools.

drgn names an inlined frame by its DIE's ``DW_AT_name``, which is bare (``at``, ``~Report``), and
finds no inlined frames at all in Rust's units. A name that identifies the function comes from the
DIE the inlined subroutine stands for (``DW_AT_abstract_origin``): its linkage name, demangled, or
else its declaration (``DW_AT_specification``) and the namespaces, classes and structures that
enclose that declaration, as gdb and addr2line build them (``std::map<...>::at``,
``Report::~Report``, ``p::find``).

``InlineChains(path).at(address)`` gives the chain at a file address (the pc minus the module's
bias), innermost first: the inlined subroutines, then the function that holds them. Only units
of C++ and Rust are read (a C name is already whole), and only units up to ``MAX_UNIT`` bytes of
DIEs (the walk is Python's), so a vast unit costs nothing and keeps drgn's names.

``InlineChains(path).tail_calls(return_address, callee)`` names the functions that tail-called
their way from a call site to a callee (``DW_TAG_call_site``: ``DW_AT_call_origin``,
``DW_AT_call_tail_call``; GCC's DWARF 4 ``DW_TAG_GNU_call_site`` alike), as gdb's tail-call frames
do, in units of any language up to ``MAX_CALL_SITE_UNIT`` bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from notmyfault.unwind.names import demangle

MAX_UNIT = 8 << 20
"""Larger compilation units are not read (their frames keep the names drgn gave)."""
QUALIFIED_LANGUAGES = {0x04, 0x1A, 0x21, 0x2A, 0x1C}
"""DW_LANG_C_plus_plus, _03, _11, _14 and DW_LANG_Rust: the languages whose DWARF names are bare."""
_SCOPES = {
    "DW_TAG_namespace", "DW_TAG_class_type", "DW_TAG_structure_type", "DW_TAG_union_type",
    "DW_TAG_enumeration_type",
}  # fmt: skip


def _name(die: Any, attr: str) -> str | None:
    a = die.attributes.get(attr)
    if a is None:
        return None
    v = a.value
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _ref(die: Any, attr: str) -> Any | None:
    if attr not in die.attributes:
        return None
    try:
        return die.get_DIE_from_attribute(attr)
    except Exception:  # a reference pyelftools cannot follow (another file: DWARF supplementary)
        return None


def _scope_prefix(die: Any) -> str:
    """``ns::Class::`` for the scopes that enclose ``die``."""
    parts: list[str] = []
    parent = die.get_parent()
    while parent is not None and parent.tag in _SCOPES:
        name = _name(parent, "DW_AT_name")
        parts.append(name or ("(anonymous namespace)" if parent.tag == "DW_TAG_namespace" else "{anonymous}"))
        parent = parent.get_parent()
    return "".join(f"{p}::" for p in reversed(parts))


def qualified_name(die: Any) -> str | None:
    """The full name of the function a subprogram or inlined-subroutine DIE stands for."""
    seen = 0
    target = die
    while seen < 8:  # concrete -> abstract instance -> declaration, bounded against cycles
        seen += 1
        linkage = _name(target, "DW_AT_linkage_name") or _name(target, "DW_AT_MIPS_linkage_name")
        if linkage:
            return demangle(linkage)
        nxt = _ref(target, "DW_AT_abstract_origin") or _ref(target, "DW_AT_specification")
        if nxt is None:
            break
        target = nxt
    name = _name(target, "DW_AT_name")
    if name is None:
        return None
    return _scope_prefix(target) + name


MAX_CACHED = 1 << 16
"""Answers kept per file (see ``InlineChains._tails``)."""


class InlineChains:
    """The DWARF of one ELF file, read on demand; see the module's docstring."""

    def __init__(self, path: str) -> None:
        from elftools.elf.elffile import ELFFile

        self._file = open(path, "rb")  # noqa: SIM115 - kept open for pyelftools' lazy reads
        elf = ELFFile(self._file)
        self._dwarf: Any = elf.get_dwarf_info() if elf.has_dwarf_info() else None
        self._aranges: Any = self._dwarf.get_aranges() if self._dwarf is not None else None
        self._ranges: Any = None
        self._locations: Any = None
        self._tails: dict[tuple[int, frozenset[str]], list[str] | None] = {}
        """tail_calls' answers: the threads of a process share their call sites (10,000 threads
        walked the same DIEs 10,000 times, 8 s)."""

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def _contains(self, die: Any, address: int, cu: Any) -> bool:
        attrs = die.attributes
        if "DW_AT_low_pc" in attrs and "DW_AT_high_pc" in attrs:
            low = attrs["DW_AT_low_pc"].value
            high = attrs["DW_AT_high_pc"]
            end = high.value if high.form == "DW_FORM_addr" else low + high.value
            return bool(low <= address < end)
        if "DW_AT_ranges" in attrs:
            if self._ranges is None:
                self._ranges = self._dwarf.range_lists()
            if self._ranges is None:
                return False
            base = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
            base_addr = base.value if base is not None else 0
            try:
                entries = self._ranges.get_range_list_at_offset(attrs["DW_AT_ranges"].value, cu=cu)
            except Exception:
                return False
            for e in entries:
                if hasattr(e, "base_address"):
                    base_addr = e.base_address
                    continue
                begin, end = e.begin_offset, e.end_offset
                if not getattr(e, "is_absolute", False):
                    begin, end = begin + base_addr, end + base_addr
                if begin <= address < end:
                    return True
        return False

    def _unit(self, address: int, any_language: bool = False, limit: int = MAX_UNIT) -> Any | None:
        if self._dwarf is None:
            return None
        offset = self._aranges.cu_offset_at_addr(address) if self._aranges is not None else None
        cu: Any
        if offset is not None:
            cu = self._dwarf.get_CU_at(offset)
        elif any_language:  # a search of every unit's top DIE: only for the languages we name
            return None
        else:  # no .debug_aranges (rustc writes none): the units whose top DIE covers the address
            cu = next(
                (u for u in self._dwarf.iter_CUs() if self._contains(u.get_top_DIE(), address, u)), None
            )
            if cu is None:
                return None
        if cu["unit_length"] > limit:
            return None
        lang = cu.get_top_DIE().attributes.get("DW_AT_language")
        if not any_language and (lang is None or lang.value not in QUALIFIED_LANGUAGES):
            return None
        return cu

    def at(self, address: int) -> list[str] | None:
        """The qualified names at ``address``, innermost first (inlined subroutines, then the function
        that holds them); None when no C++ or Rust unit of at most ``MAX_UNIT`` bytes covers it."""
        try:
            cu = self._unit(address)
            if cu is None:
                return None
            top = cu.get_top_DIE()
            chain = [d for d in self._scopes(cu, address) if d is not top and d.tag != "DW_TAG_lexical_block"]
            names = [qualified_name(d) for d in reversed(chain)]
        except Exception:  # DWARF pyelftools cannot read: keep drgn's names
            return None
        if not names or any(n is None for n in names):
            return None
        return [n for n in names if n is not None]

    def _inside(self, scope: Any, address: int, cu: Any) -> Any | None:
        for child in scope.iter_children():
            if child.tag == "DW_TAG_subprogram" and self._contains(child, address, cu):
                return child
            if child.tag in _SCOPES and child.has_children:
                found = self._inside(child, address, cu)
                if found is not None:
                    return found
        return None

    def tail_calls(self, return_address: int, callee: set[str]) -> list[str] | None:
        """The functions a call made tail calls through before reaching ``callee`` (its names: the
        symbol and the debug info's, any spelling), as gdb finds them: the call site that returns to
        ``return_address`` (a file address) names the function it called (``DW_AT_call_origin``);
        if that is not the callee, the tail-call sites (``DW_AT_call_tail_call``) of that function,
        followed for up to ``MAX_TAIL_CALLS`` steps, must lead to the callee by one path only. The
        functions on that path, outermost last; [] when the call reached the callee directly; None
        when the debug info does not say (no call site, no origin, several paths)."""
        key = (return_address, frozenset(callee))
        if key not in self._tails:
            found = self._tail_calls(return_address, callee)
            if len(self._tails) >= MAX_CACHED:
                return found
            self._tails[key] = found
        found = self._tails[key]
        return None if found is None else list(found)

    def _tail_calls(self, return_address: int, callee: set[str]) -> list[str] | None:
        try:
            cu = self._unit(return_address - 1, any_language=True, limit=MAX_CALL_SITE_UNIT)
            if cu is None:
                return None
            site = self._call_site(cu, return_address)
            if site is None:
                return None
            origin = _ref(site, "DW_AT_call_origin") or _ref(site, "DW_AT_abstract_origin")
            if origin is None:
                return None
            wanted = {_plain(n) for n in callee if n}
            if _matches(origin, wanted):
                return []
            paths = self._tail_paths(cu, origin, wanted, MAX_TAIL_CALLS)
        except Exception:  # DWARF pyelftools cannot read: no tail calls named
            return None
        if len({tuple(p) for p in paths}) != 1:
            return None
        names = [qualified_name(d) for d in paths[0]]
        if any(n is None for n in names):
            return None
        return [n for n in reversed(names) if n is not None]

    def _call_site(self, cu: Any, return_address: int) -> Any | None:
        """The call-site DIE whose return address is ``return_address``, in the scope that holds it."""
        for scope in self._scopes(cu, return_address - 1):
            for child in scope.iter_children():
                if child.tag in _CALL_SITES:
                    ret = child.attributes.get("DW_AT_call_return_pc") or child.attributes.get("DW_AT_low_pc")
                    if ret is not None and ret.value == return_address:
                        return child
        return None

    def _scopes(self, cu: Any, address: int) -> Iterator[Any]:
        """The DIEs that hold ``address``, outermost first: the unit's top DIE, then each function,
        inlined subroutine and lexical block inside the one before (Rust and some C++ producers
        nest the functions' bodies in their namespaces)."""
        scope = cu.get_top_DIE()
        yield scope
        while True:
            for child in scope.iter_children():
                if child.tag in _BODIES:
                    if self._contains(child, address, cu):
                        scope = child
                        break
                elif child.tag in _SCOPES and child.has_children:
                    found = self._inside(child, address, cu)
                    if found is not None:
                        scope = found
                        break
            else:
                return
            yield scope

    def _definition(self, cu: Any, die: Any) -> Any | None:
        """The subprogram DIE with code for the function ``die`` stands for (a declaration's
        definition in the same unit)."""
        if "DW_AT_low_pc" in die.attributes or "DW_AT_ranges" in die.attributes:
            return die
        for child in cu.iter_DIEs():
            if child.tag == "DW_TAG_subprogram" and (
                "DW_AT_low_pc" in child.attributes or "DW_AT_ranges" in child.attributes
            ):
                spec = _ref(child, "DW_AT_specification") or _ref(child, "DW_AT_abstract_origin")
                if spec is not None and spec.offset == die.offset:
                    return child
        return None

    def _tail_paths(self, cu: Any, function: Any, wanted: set[str], depth: int) -> list[list[Any]]:
        """Every path of tail calls from ``function`` to a function named in ``wanted``."""
        if depth <= 0:
            return []
        body = self._definition(cu, function)
        if body is None:
            return []
        out: list[list[Any]] = []
        for site in body.iter_children():
            if site.tag not in _CALL_SITES:
                continue
            if "DW_AT_call_tail_call" not in site.attributes and "DW_AT_GNU_tail_call" not in site.attributes:
                continue
            target = _ref(site, "DW_AT_call_origin") or _ref(site, "DW_AT_abstract_origin")
            if target is None:
                continue
            if _matches(target, wanted):
                out.append([function])
            else:
                out += [[function, *p] for p in self._tail_paths(cu, target, wanted, depth - 1)]
        return out

    def _function_at(self, address: int) -> tuple[Any, Any] | None:
        """The unit (of at most ``MAX_CALL_SITE_UNIT`` bytes) and the innermost subprogram DIE whose
        code holds the file address ``address``; None where none does."""
        cu = self._unit(address, any_language=True, limit=MAX_CALL_SITE_UNIT)
        if cu is None:
            return None
        function = next(
            (d for d in reversed(list(self._scopes(cu, address))) if d.tag == "DW_TAG_subprogram"), None
        )
        return (cu, function) if function is not None else None

    def parameter_registers(self, address: int) -> dict[str, tuple[int, list[Any] | None]] | None:
        """For the function whose code holds the file address ``address`` (a frame's pc, or a
        return address minus one), each formal parameter whose location at the function's entry
        is a register (gdb asks there where a parameter arrived): name -> (DWARF register number,
        the operations of its location at ``address``, None where it has none). None when no unit
        of at most ``MAX_CALL_SITE_UNIT`` bytes covers the address."""
        try:
            found = self._function_at(address)
            if found is None:
                return None
            cu, function = found
            entry = function.attributes.get("DW_AT_low_pc")
            start = entry.value if entry is not None else None
            out: dict[str, tuple[int, list[Any] | None]] = {}
            for child in function.iter_children():
                if child.tag != "DW_TAG_formal_parameter" or "DW_AT_location" not in child.attributes:
                    continue
                name = _name(child, "DW_AT_name")
                origin = _ref(child, "DW_AT_abstract_origin")
                name = name or (_name(origin, "DW_AT_name") if origin is not None else None)
                if not name or start is None:
                    continue
                at_entry = self._location_at(cu, child, start)
                arrived = _register_of(at_entry) if at_entry is not None else None
                if arrived is None or arrived[1]:
                    continue
                out[name] = (arrived[0], self._location_at(cu, child, address))
            return out
        except Exception:  # DWARF pyelftools cannot read: no entry values
            return None

    def call_site_values(self, return_address: int) -> dict[int, list[Any]] | None:
        """The call site that returns to the file address ``return_address``: for each parameter
        it passed, the DWARF register it passed it in -> the expression (pyelftools' operations)
        that gives its value in the caller (``DW_AT_call_value``); None without such a site."""
        try:
            cu = self._unit(return_address - 1, any_language=True, limit=MAX_CALL_SITE_UNIT)
            site = self._call_site(cu, return_address) if cu is not None else None
            if cu is None or site is None:
                return None
            from elftools.dwarf.dwarf_expr import DWARFExprParser

            parser = DWARFExprParser(cu.structs)
            out: dict[int, list[Any]] = {}
            for child in site.iter_children():
                if child.tag not in ("DW_TAG_call_site_parameter", "DW_TAG_GNU_call_site_parameter"):
                    continue
                where, value = (
                    child.attributes.get("DW_AT_location"),
                    (
                        child.attributes.get("DW_AT_call_value")
                        or child.attributes.get("DW_AT_GNU_call_site_value")
                    ),
                )
                if where is None or value is None or not isinstance(where.value, list):
                    continue
                found = _register_of(parser.parse_expr(where.value))
                if found is not None:
                    out[found[0]] = parser.parse_expr(value.value)
            return out
        except Exception:
            return None

    def frame_base(self, address: int) -> list[Any] | None:
        """The operations of ``DW_AT_frame_base`` of the function whose code holds the file address
        ``address`` (``DW_OP_fbreg`` offsets are from it); None where the DWARF does not say."""
        try:
            found = self._function_at(address)
            if found is None:
                return None
            cu, function = found
            attr = function.attributes.get("DW_AT_frame_base")
            if attr is None or not isinstance(attr.value, list):
                return None
            from elftools.dwarf.dwarf_expr import DWARFExprParser

            return list(DWARFExprParser(cu.structs).parse_expr(attr.value))
        except Exception:
            return None

    def _location_at(self, cu: Any, die: Any, address: int) -> list[Any] | None:
        """The operations of ``die``'s location at the file address ``address``; None where its
        location list has no entry for it."""
        from elftools.dwarf.dwarf_expr import DWARFExprParser
        from elftools.dwarf.locationlists import LocationParser

        if self._locations is None:
            self._locations = LocationParser(self._dwarf.location_lists())
        attr = die.attributes["DW_AT_location"]
        loc = self._locations.parse_from_attribute(attr, cu.header.version, die)
        parser = DWARFExprParser(cu.structs)
        if hasattr(loc, "loc_expr"):
            return list(parser.parse_expr(loc.loc_expr))
        top = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
        base = top.value if top is not None else 0
        for entry in loc:
            if hasattr(entry, "base_address"):
                base = entry.base_address
                continue
            if not hasattr(entry, "loc_expr"):
                continue
            begin, end = entry.begin_offset, entry.end_offset
            if not getattr(entry, "is_absolute", False):
                begin, end = begin + base, end + base
            if begin <= address < end:
                return list(parser.parse_expr(entry.loc_expr))
        return None


def register_number(op: Any) -> int | None:
    """The DWARF register a register operation names (``DW_OP_reg5``, ``DW_OP_regx 17``,
    ``DW_OP_regval_type 17 <type>``); None for any other operation."""
    name = op.op_name
    if name in ("DW_OP_regx", "DW_OP_regval_type", "DW_OP_GNU_regval_type"):
        return int(op.args[0])
    found = re.fullmatch(r"DW_OP_reg(\d+)", name)
    return int(found.group(1)) if found else None


def _register_of(ops: list[Any]) -> tuple[int, bool] | None:
    """(register, entry) for a location that is a register (``DW_OP_regN``, ``DW_OP_regx``) or the
    value a register held at entry (``DW_OP_entry_value(DW_OP_regN), DW_OP_stack_value``)."""
    if len(ops) == 1 and ops[0].op_name != "DW_OP_regval_type":  # a value, not a location
        number = register_number(ops[0])
        return (number, False) if number is not None else None
    if len(ops) == 2 and ops[0].op_name in ("DW_OP_entry_value", "DW_OP_GNU_entry_value"):
        inner = ops[0].args[-1] if ops[0].args else None
        if ops[1].op_name != "DW_OP_stack_value" or not isinstance(inner, list) or len(inner) != 1:
            return None
        number = register_number(inner[0])
        return (number, True) if number is not None else None
    return None


MAX_CALL_SITE_UNIT = 1 << 20
"""Tail calls are looked for in units of at most this many bytes of DIEs (a C file's; a Python
process's interpreter units and template-heavy C++ ones are larger, and reading them would cost a
triage worker more time and memory than the frames are worth)."""
MAX_TAIL_CALLS = 3
"""How many tail calls in a row ``InlineChains.tail_calls`` follows."""
_CALL_SITES = {"DW_TAG_call_site", "DW_TAG_GNU_call_site"}
_BODIES = {"DW_TAG_subprogram", "DW_TAG_inlined_subroutine", "DW_TAG_lexical_block"}


def _plain(name: str) -> str:
    """A function's name without parameters, glibc's aliases (``__GI___libc_free`` -> ``free``) and
    leading underscores, to compare a symbol with the debug info's name."""
    name = name.split("(", 1)[0].split("@", 1)[0]
    name = re.sub(r"^__GI_", "", name)
    return re.sub(r"^_*(?:libc_)?", "", name)


def _matches(die: Any, wanted: set[str]) -> bool:
    """True if the function ``die`` stands for is one of ``wanted`` (plain names), or a variant of
    it that glibc picks at load time (``strlen`` and ``__strlen_evex``)."""
    names = _plain_names(die)
    return any(w == n or w.startswith(n + "_") for n in names for w in wanted)


def _plain_names(die: Any) -> set[str]:
    """Every plain spelling of the function ``die`` stands for: its name, linkage name, qualified name."""
    out = set()
    target, seen = die, 0
    while target is not None and seen < 8:
        seen += 1
        for attr in ("DW_AT_name", "DW_AT_linkage_name", "DW_AT_MIPS_linkage_name"):
            n = _name(target, attr)
            if n:
                out.add(_plain(n))
        target = _ref(target, "DW_AT_abstract_origin") or _ref(target, "DW_AT_specification")
    q = qualified_name(die)
    if q:
        out.add(_plain(q))
    return out


@lru_cache(maxsize=32)
def chains(path: str) -> InlineChains | None:
    """The ``InlineChains`` of ``path`` (cached), or None if it cannot be read as ELF."""
    try:
        return InlineChains(path)
    except Exception:
        return None


SHT_SYMTAB, SHT_DYNSYM = 2, 11
MANGLED = (b"\0_Z", b"\0_R")
"""How a C++ (Itanium ABI) or Rust (legacy and v0) symbol's name starts, after the NUL of the one
before it in a string table."""


@lru_cache(maxsize=256)
def names_namespaces(path: str) -> bool:
    """Whether the ELF file at ``path`` may hold functions with qualified names: one of its symbols
    is C++'s or Rust's (mangled). A C library's inlined functions are named right by drgn already,
    and reading its DWARF again with pyelftools for nothing took 0.25 s (glibc's aranges) of an
    analysis. True when it cannot tell (no symbol table, or not ELF): the DWARF is read, as before."""
    import struct

    from notmyfault.dumps.linkmap import header_tables

    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
                return True
            wide, e, _, _, _, shoff, shentsize, shnum = header_tables(head)
            shdr, size = (e + "IIQQQQIIQQ", 64) if wide else (e + "IIIIIIIIII", 40)
            if not shoff or shentsize < size or not 0 < shnum <= 1 << 16:
                return True
            f.seek(shoff)
            table = f.read(shnum * shentsize)
            sections = [
                struct.unpack_from(shdr, table, i * shentsize) for i in range(len(table) // shentsize)
            ]
            links = {s[6] for s in sections if s[1] in (SHT_SYMTAB, SHT_DYNSYM)}
            if not links:
                return True
            for link in links:
                if not 0 <= link < len(sections):
                    return True
                f.seek(sections[link][4])
                strings = f.read(sections[link][5])
                if strings.startswith((b"_Z", b"_R")) or any(m in strings for m in MANGLED):
                    return True
            return False
    except (OSError, struct.error, ValueError):
        return True
