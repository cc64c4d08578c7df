"""Strings from a dump made safe for a terminal (they are hostile: a program's name can hold escapes)."""

from __future__ import annotations

from notmyfault.base.utf8 import escape_surrogate


def terminal_safe(text: str) -> str:
    """A page of text made safe for a terminal: every control or format character (ESC, BEL, CR,
    bidi overrides ...) shown as a \\xNN or \\uNNNN escape, as gdb shows them; newlines and tabs kept.
    Strings from a dump (paths, names, messages) are hostile: this is applied to every page."""
    if text.isprintable():
        return text
    return "\n".join("\t".join(printable(part) for part in line.split("\t")) for line in text.split("\n"))


def printable(text: str) -> str:
    """A string from a dump made safe for a terminal: control characters as \\xNN escapes, and bytes
    that were not UTF-8 (decoded with surrogateescape) as the \\xNN of the byte, as gdb shows them."""
    if text.isprintable():  # the common case, at C speed (a 10,000-thread page took 7 s char by char)
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    n = ord(c)
    if 0xD800 <= n <= 0xDFFF:  # a lone surrogate: surrogateescape keeps a byte that was not UTF-8 so
        return escape_surrogate(c)
    return f"\\x{n:02x}" if n < 256 else f"\\u{n:04x}"
