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
    """A string from a dump made safe for a terminal: control characters as \\xNN escapes."""
    return "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text
    )
