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
from dataclasses import dataclass
from typing import Any

from notmyfault.unwind.inlines import register_number

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
    text = "".join('\\"' if b == 34 else "'" if b == 39 else _char(b) for b in data)  # gdb: "it's"
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


_DWARF_REGISTERS = {
    "x86_64": (
        "rax",
        "rdx",
        "rcx",
        "rbx",
        "rsi",
        "rdi",
        "rbp",
        "rsp",
        *(f"r{i}" for i in range(8, 16)),
        "rip",
    ),
    "aarch64": (*(f"x{i}" for i in range(31)), "sp"),
}
"""drgn's register names by DWARF register number (the System V psABIs' numbering)."""
_VECTORS = {"x86_64": (17, "xmm"), "aarch64": (64, "v")}
"""The first DWARF number of each architecture's vector registers, and their names' prefix."""


@dataclass
class Callers:
    """What a parameter's value at its function's entry is read from, as gdb reads it (``p@entry``):
    the call site in the caller's DWARF that returns to the frame (``DW_TAG_call_site_parameter``
    gives each register's value at the call as an expression in the caller)."""

    arch: str
    frames: list[Any]
    """drgn's concrete frames of the walk, innermost first."""
    dwarf: Callable[[int], tuple[Any, int] | None]
    """A pc -> its module's DWARF (``unwind.inlines.InlineChains``) and load bias, if found."""
    vectors: dict[str, int]
    """The thread's vector registers (xmm0 ..., v0 ...): the caller's too, as gdb takes them."""
    read: Reader
    """The process's memory (``DW_OP_deref`` of a caller's stack slot)."""

    def register(self, k: int, number: int) -> int | None:
        """DWARF register ``number`` in frame ``k``: drgn's unwound value, else the value of the
        nearest inner frame that has it (gdb's rule for a register the unwind info leaves alone)."""
        names = _DWARF_REGISTERS.get(self.arch, ())
        first, prefix = _VECTORS.get(self.arch, (-1, ""))
        if 0 <= number - first < 32:
            return self.vectors.get(f"{prefix}{number - first}")
        if number >= len(names):
            return None
        for f in reversed(self.frames[: k + 1]):
            try:
                return int(f.register(names[number]))
            except (LookupError, ValueError):
                continue
        return None

    def entry_value(self, k: int, number: int, depth: int = 0) -> int | bytes | None:
        """The value DWARF register ``number`` held when frame ``k``'s function was entered, from
        its caller's call site; None where the DWARF does not say or the caller's registers lack it."""
        if k + 1 >= len(self.frames) or depth > 2:
            return None
        caller = self.frames[k + 1]
        found = self.dwarf(caller.pc)
        sites = found[0].call_site_values(caller.pc - found[1]) if found is not None else None
        ops = sites.get(number) if sites else None
        return self.evaluate(ops, k + 1, found[1] if found else 0, depth) if ops else None

    def evaluate(self, ops: list[Any], k: int, bias: int, depth: int = 0) -> int | bytes | None:
        """A DWARF expression's value in frame ``k``, or the register a location names: the
        operations that call-site values and register locations use; None for any other."""
        stack: list[int] = []
        mask = (1 << 64) - 1
        for op in ops:
            name, args = op.op_name, op.args
            if name.startswith("DW_OP_lit"):
                stack.append(int(name[9:]))
            elif name.startswith("DW_OP_const") and name != "DW_OP_const_type":
                stack.append(int(args[0]) & mask)
            elif name == "DW_OP_addr":
                stack.append(int(args[0]) + bias)
            elif name.startswith("DW_OP_breg") or name == "DW_OP_bregx":
                number = int(args[0]) if name == "DW_OP_bregx" else int(name[10:])
                value = self.register(k, number)
                if value is None:
                    return None
                stack.append((value + int(args[-1])) & mask)
            elif register_number(op) is not None:
                value = self.register(k, register_number(op) or 0)
                if value is None:
                    return None
                stack.append(value)
            elif name in ("DW_OP_entry_value", "DW_OP_GNU_entry_value"):
                inner = args[-1] if args else None
                reg = register_number(inner[0]) if isinstance(inner, list) and len(inner) == 1 else None
                entry = self.entry_value(k, reg, depth + 1) if reg is not None else None
                if isinstance(entry, bytes):
                    return entry  # a typed value (a floating-point register's): the value itself
                if entry is None:
                    return None
                stack.append(entry)
            elif name == "DW_OP_fbreg":
                base = self._frame_base(k, bias)
                if base is None:
                    return None
                stack.append((base + int(args[0])) & mask)
            elif (
                name in ("DW_OP_deref", "DW_OP_deref_size", "DW_OP_deref_type", "DW_OP_GNU_deref_type")
                and stack
            ):
                size = 8 if name == "DW_OP_deref" else int(args[0])
                data = self.read(stack.pop(), size)
                if data is None or len(data) < size:
                    return None
                if name.endswith("deref_type"):
                    return data  # a typed value (a double spilled to the stack): its bytes
                stack.append(int.from_bytes(data, "little"))
            elif name in ("DW_OP_const_type", "DW_OP_GNU_const_type"):
                return bytes(args[-1])  # a typed constant's bytes: a floating-point value
            elif name == "DW_OP_plus_uconst" and stack:
                stack.append((stack.pop() + int(args[0])) & mask)
            elif name in ("DW_OP_plus", "DW_OP_minus") and len(stack) >= 2:
                b, a = stack.pop(), stack.pop()
                stack.append((a + b if name == "DW_OP_plus" else a - b) & mask)
            elif name == "DW_OP_implicit_value":
                return bytes(args[-1])
            elif name != "DW_OP_stack_value":
                return None  # an operation call sites rarely use (a frame base, memory): not known
        return stack[-1] if stack else None

    def _frame_base(self, k: int, bias: int) -> int | None:
        """Frame ``k``'s ``DW_AT_frame_base``: the canonical frame address (the caller's sp after
        the call returns: frame ``k + 1``'s sp) or a register."""
        found = self.dwarf(self.frames[k].pc)
        ops = found[0].frame_base(self.frames[k].pc - 1 - found[1]) if found is not None else None
        if not ops or len(ops) != 1:
            return None
        if ops[0].op_name == "DW_OP_call_frame_cfa":
            if k + 1 >= len(self.frames):
                return None
            try:
                return int(self.frames[k + 1].sp)
            except (LookupError, ValueError):
                return None
        number = register_number(ops[0])
        return self.register(k, number) if number is not None else None


def _typed(prog: Any, like: Any, value: int | bytes, read: Reader) -> str | None:
    """``value`` (a register's bits, or bytes) as a value of ``like``'s type, printed as gdb prints it."""
    import drgn

    try:
        t = like.type_
        size = drgn.sizeof(t)
        raw = (
            value if isinstance(value, bytes) else (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        )
        return value_text(drgn.Object.from_bytes_(prog, t, raw[:size].ljust(size, b"\0")), read)
    except (ValueError, TypeError, OverflowError, LookupError):
        return None


def frame_variables(
    prog: Any,
    frame: Any,
    read: Reader,
    callers: Callers | None = None,
    k: int = 0,
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """The arguments and the locals of drgn's ``frame``, each (name, value as gdb prints it), in the
    order DWARF declares them; ((), ()) where there is no debug information for it. ``read``: as
    for ``value_text``. With ``callers`` (``frame`` is ``callers.frames[k]``), an argument that
    arrived in a register also has the value it had at the function's entry where the caller's
    call site says, as gdb's ``bt`` shows it: ``a=a@entry=42`` when both are known and equal,
    ``a=1, a@entry=42`` when they differ, ``a@entry=42`` when only that is known."""
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
    registers: dict[str, tuple[int, list[Any] | None]] = {}
    bias = 0
    if callers is not None and parameters and not frame.is_inline:
        found = callers.dwarf(frame.pc)
        if found is not None:
            pc = frame.pc if frame.interrupted or k == 0 else frame.pc - 1
            registers, bias = found[0].parameter_registers(pc - found[1]) or {}, found[1]
    arguments: list[tuple[str, str]] = []
    local: list[tuple[str, str]] = []
    for name in names:
        try:
            obj = frame[name]
            text = value_text(obj, read)
        except Exception:  # drgn could not make the object at all
            obj, text = None, "<optimized out>"
        if name not in parameters:
            local.append((name, text))
            continue
        entry = None
        if callers is not None and obj is not None and name in registers:
            bits = callers.entry_value(k, registers[name][0])
            entry = _typed(prog, obj, bits, read) if bits is not None else None
            here = registers[name][1]
            if text == "<optimized out>" and here is not None:
                # drgn knows no caller-saved register past frame 0 (gdb takes the inner frame's),
                # nor evaluates every DW_OP_entry_value: the location is evaluated here as gdb does
                value = callers.evaluate(here, k, bias)
                text = (_typed(prog, obj, value, read) if value is not None else None) or text
        known = text != "<optimized out>"
        if entry is None:
            arguments.append((name, text))
        elif not known:  # only its value at entry is known
            arguments.append((f"{name}@entry", entry))
        elif entry == text:
            arguments.append((name, f"{name}@entry={entry}"))
        else:
            arguments += [(name, text), (f"{name}@entry", entry)]
    return tuple(arguments), tuple(local)
