"""Linux capabilities of this process, as /proc/self/status states them.

Shared by capture (may the core limit be raised?) and the injector (may memory
be locked?); imports nothing from the rest of the package.
"""

from __future__ import annotations

from pathlib import Path

CAP_IPC_LOCK = 14
CAP_SYS_RESOURCE = 24


def has_capability(bit: int, unknown: bool = False) -> bool:
    """True if this process holds capability number ``bit`` (CapEff); ``unknown`` when /proc does not say."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return unknown
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << bit))
    return unknown
