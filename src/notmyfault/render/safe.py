"""Strings from a dump made safe for a terminal (they are hostile: a program's name can hold escapes)."""

from __future__ import annotations


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
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape: the byte n - 0xDC00 was not UTF-8
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n < 256 else f"\\u{n:04x}"


def storable(text: str) -> str:
    """``text`` as valid UTF-8 for a database or a JSON consumer: the bytes a file name held that were
    not UTF-8 (surrogateescape) become \\xNN; everything else stays exact."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return "".join(_escape(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text
