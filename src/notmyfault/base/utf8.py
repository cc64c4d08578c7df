"""Text from a dump made valid UTF-8 for storage and JSON (a leaf module: every layer may use it).

A dump's strings are bytes; a file name that is not UTF-8 is decoded with ``surrogateescape`` so
that it still opens the file, which leaves lone surrogates that a database, a strict JSON reader or
a hash of the text refuse."""

from __future__ import annotations

from typing import Any


def storable(text: str) -> str:
    """``text`` as valid UTF-8: the bytes a string held that were not UTF-8 (surrogateescape's
    U+DC80..U+DCFF) become ``\\xNN``, any other lone surrogate ``\\uNNNN``; everything else stays
    exact."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return "".join(escape_surrogate(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def storable_tree(obj: Any) -> Any:
    """A JSON-like value (dicts, lists, tuples, scalars) with every string in it, keys included,
    made :func:`storable`; tuples become lists."""
    if isinstance(obj, str):
        return storable(obj)
    if isinstance(obj, dict):
        return {storable_tree(k): storable_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [storable_tree(v) for v in obj]
    return obj


def escape_surrogate(c: str) -> str:
    """A lone surrogate as text: ``\\xNN`` for a byte surrogateescape kept, else ``\\uNNNN``."""
    n = ord(c)
    return f"\\x{n - 0xDC00:02x}" if 0xDC80 <= n <= 0xDCFF else f"\\u{n:04x}"
