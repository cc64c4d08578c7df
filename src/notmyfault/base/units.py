"""Sizes as people write them: ``64KB``, ``200MB``, ``1.5GiB``, ``4096``.

Decimal units (KB, MB, GB, TB) are powers of 1000 and binary units (KiB, MiB,
GiB, TiB) powers of 1024, as their names say; a bare number is bytes.  The
seed's "1000 KB" therefore means 1,000,000 bytes.
"""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Return the number of bytes in ``text``; raise ValueError naming the accepted forms.

    ``K``, ``M`` and ``G`` alone are binary (as in ``ulimit`` and ``dd``).
    """
    m = _SIZE.match(text)
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(
            f"cannot read size {text!r}: write a number with an optional unit, "
            "e.g. 4096, 64KB, 200MB, 1GiB (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)"
        )
    return int(float(m.group(1)) * _UNITS[unit])


def format_size(n: int) -> str:
    """Format ``n`` bytes for people, in binary units (``195.3 MiB``)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
