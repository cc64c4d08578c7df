"""A native frame's arguments and locals, read from DWARF through drgn, written as gdb writes them
(``bt full``, ``info args``, ``info locals``): ``42``, ``120 'x'``, ``2.5``, ``0x7ffd... "ab"``,
``{x = 3, y = 4}``, ``<optimized out>``.

Which names are arguments is the function's own type's (its DWARF formal parameters); the rest of
what drgn finds in scope at the frame's pc are locals. Values are hostile (a dump's memory): they
are strings made here, escaped by the renderers like every other string from a dump.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Reader = Callable[[int, int], "bytes | None"]
"""Bytes at an address, or None where neither the dump nor a mapped file holds them."""

MAX_STRING = 200
"""Characters of a string a ``char *`` points to, at most (gdb's ``print elements`` is 200)."""
MAX_ELEMENTS = 200
"""Elements of an array or members of a structure shown, at most."""
MAX_DEPTH = 4
"""Nesting of structures and arrays shown; deeper ones are ``{...}``."""
_CHARS = ("char", "signed char", "unsigned char")


def _char(code: int) -> str:
    """A character as gdb quotes it: 'x', '\\n', '\\000'."""
    escapes = {
        7: "\\a",
        8: "\\b",
        9: "\\t",
        10: "\\n",
        11: "\\v",
        12: "\\f",
        13: "\\r",
        39: "\\'",
        92: "\\\\",
    }
    code &= 0xFF
    if code in escapes:
        return escapes[code]
    return chr(code) if 32 <= code < 127 else f"\\{code:03o}"


def _string(data: bytes) -> str:
    """Bytes up to the first NUL as a gdb string literal."""
    text = "".join('\\"' if b == 34 else _char(b) for b in data)
    return f'"{text}"'


def _float(value: float, size: int) -> str:
    if math.isnan(value):
        return "nan(0x8000000000000)" if size == 8 else "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.9g}" if size == 4 else f"{value:.17g}"


def value_text(obj: Any, read: Reader, depth: int = 0) -> str:
    """``obj`` (a drgn Object) as gdb prints a value; ``read`` reads the memory a pointer points
    to (the dump's, else the mapped file's: string literals lie in files a core leaves out)."""
    import drgn

    try:
        if obj.absent_:
            return "<optimized out>"
        t = obj.type_.unqualified()
        while t.kind == drgn.TypeKind.TYPEDEF:
            t = t.type.unqualified()
        kind = t.kind
        if kind == drgn.TypeKind.BOOL:
            return "true" if obj.value_() else "false"
        if kind == drgn.TypeKind.INT:
            v = obj.value_()
            return f"{v} '{_char(v)}'" if t.name in _CHARS else str(v)
        if kind == drgn.TypeKind.FLOAT:
            return _float(float(obj.value_()), t.size or 8)
        if kind == drgn.TypeKind.ENUM:
            v = obj.value_()
            names = [e.name for e in (t.enumerators or ()) if e.value == v]
            return names[0] if names else str(v)
        if kind == drgn.TypeKind.POINTER:
            return _pointer(obj, t, read)
        if kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION, drgn.TypeKind.CLASS):
            if depth >= MAX_DEPTH:
                return "{...}"
            parts = []
            for m in (t.members or ())[:MAX_ELEMENTS]:
                if m.name is None:
                    continue
                parts.append(f"{m.name} = {value_text(obj.member_(m.name), read, depth + 1)}")
            return "{" + ", ".join(parts) + "}"
        if kind == drgn.TypeKind.ARRAY:
            return _array(obj, t, read, depth)
        if kind == drgn.TypeKind.FUNCTION:
            return f"{{{t}}} {obj.address_:#x}" if obj.address_ is not None else "<function>"
        return str(obj.format_(type_name=False))
    except drgn.FaultError as e:
        return f"<error: Cannot access memory at address {e.address:#x}>"
    except (drgn.ObjectAbsentError, LookupError, ValueError, TypeError, OverflowError):
        return "<optimized out>"


def _symbol_at(prog: Any, address: int) -> str:
    """`` <name+off>`` where ``address`` lies in a symbol (a function, a global), as gdb's ``print
    symbol`` shows it beside a pointer; "" elsewhere (the stack, the heap)."""
    try:
        symbol = prog.symbol(address)
    except LookupError:
        return ""
    offset = address - symbol.address
    return f" <{symbol.name}{f'+{offset}' if offset else ''}>"


def _pointer(obj: Any, t: Any, read: Reader) -> str:
    """A pointer as gdb prints it: its address, the symbol it points into, and for ``char *`` the
    string it points to."""
    import drgn

    address = obj.value_()
    text = f"{address:#x}" + (_symbol_at(obj.prog_, address) if address else "")
    target = t.type.unqualified()
    while target.kind == drgn.TypeKind.TYPEDEF:
        target = target.type.unqualified()
    if address and target.kind == drgn.TypeKind.INT and target.name in _CHARS:
        data = b""
        while len(data) < MAX_STRING and b"\0" not in data:
            chunk = read(address + len(data), 16)
            if not chunk:
                break
            data += chunk
        if not data:
            return f"{text} <error: Cannot access memory at address {address:#x}>"
        end = data.find(b"\0")
        whole = end >= 0 and end < MAX_STRING
        return f"{text} {_string(data[: end if whole else MAX_STRING])}" + ("" if whole else "...")
    return text


def _array(obj: Any, t: Any, read: Reader, depth: int) -> str:
    import drgn

    length = t.length or 0
    element = t.type.unqualified()
    if element.kind == drgn.TypeKind.INT and element.name in _CHARS:
        data = (
            obj.prog_.read(obj.address_, min(length, MAX_STRING), False) if obj.address_ is not None else b""
        )
        body = data.rstrip(b"\0")
        tail = "\\000" * (len(data) - len(body) - 1) if len(data) - len(body) > 1 else ""
        return _string(body)[:-1] + tail + '"'
    if depth >= MAX_DEPTH:
        return "{...}"
    shown = [value_text(obj[i], read, depth + 1) for i in range(min(length, MAX_ELEMENTS))]
    return "{" + ", ".join(shown) + ("..." if length > MAX_ELEMENTS else "") + "}"


def frame_variables(
    prog: Any, frame: Any, read: Reader
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """The arguments and the locals of drgn's ``frame``, each (name, value as gdb prints it), in the
    order DWARF declares them; ((), ()) where there is no debug information for it. ``read``: as
    for ``value_text``."""
    try:
        names = list(frame.locals())
    except Exception:  # drgn has no scope for this pc
        return (), ()
    if not names:
        return (), ()
    try:
        parameters = {p.name for p in prog.function(frame.name).type_.parameters}
    except Exception:  # no such function object (a symbol without DWARF): none is an argument
        parameters = set()
    arguments: list[tuple[str, str]] = []
    local: list[tuple[str, str]] = []
    for name in names:
        try:
            text = value_text(frame[name], read)
        except Exception:  # drgn could not make the object at all
            text = "<optimized out>"
        (arguments if name in parameters else local).append((name, text))
    return tuple(arguments), tuple(local)
