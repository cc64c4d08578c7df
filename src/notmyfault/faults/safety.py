"""Safety limits for faults that take memory: never push the machine below a floor."""

from __future__ import annotations

from pathlib import Path

from notmyfault.base.units import format_size

FLOOR_MIN = 512 * 1024 * 1024
"""The least memory left available, whatever the machine's size."""
FLOOR_FRACTION = 0.10
"""The share of total memory left available on large machines."""


def meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """Read /proc/meminfo into bytes per field."""
    out: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def floor_bytes(total: int) -> int:
    """The memory that must stay available on a machine with ``total`` bytes."""
    return max(FLOOR_MIN, int(total * FLOOR_FRACTION))


def check_floor(request: int, info: dict[str, int] | None = None) -> None:
    """Raise ValueError if taking ``request`` bytes would leave MemAvailable below the floor."""
    info = meminfo() if info is None else info
    available, total = info.get("MemAvailable", 0), info.get("MemTotal", 0)
    floor = floor_bytes(total)
    if available - request < floor:
        raise ValueError(
            f"{format_size(request)} would leave {format_size(max(available - request, 0))} available, "
            f"below the safety floor of {format_size(floor)} (MemAvailable is {format_size(available)}); "
            "ask for less"
        )
