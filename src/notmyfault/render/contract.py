"""The JSON contract (docs/json-schema.md) as JSON Schema files: ``notmyfault/schemas/KIND.json``,
one for each ``kind`` a ``--json`` output has, shipped in the package. A program that reads our
JSON can validate it with any JSON Schema (2020-12) validator; the tests validate every object
every command printed for them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
"""Where the schemas lie in the installed package."""


def kinds() -> list[str]:
    """Every kind the contract has a schema for, sorted."""
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of ``kind``; KeyError when the contract has none."""
    path = SCHEMA_DIR / f"{kind}.json"
    if not path.is_file():
        raise KeyError(kind)
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
