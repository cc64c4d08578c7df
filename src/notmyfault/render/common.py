"""Small formatting helpers shared by the renderers."""

from __future__ import annotations

import resource


def limit_text(value: int) -> str:
    """Format a resource limit: 'unlimited' or a byte count."""
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def limit_json(value: int) -> int | None:
    """A resource limit for JSON: null for unlimited."""
    return None if value == resource.RLIM_INFINITY else value
