"""Draft the JSON Schemas of the --json contract from what the commands printed.

    NOTMYFAULT_RECORD_JSON=/tmp/record.jsonl ./dev test        # every --json object the tests saw
    python tools/json_schemas.py /tmp/record.jsonl src/notmyfault/schemas

One schema per ``kind`` (JSON Schema 2020-12): ``schema_version`` and ``kind`` as constants; at the
top level the keys every object of the kind had are required; each field's type is the union of
the types seen, and null, since the contract lets any field be null (events, kinds with an
``event`` field, require only it: each event has its own fields); objects whose keys are data
(paths, registers of one architecture) say only what their values are. A schema in the output
directory that a person has edited is kept: only kinds without one are written (``--force``
rewrites them all). The schemas are the contract (docs/json-schema.md), reviewed and edited by
hand; this script only drafts them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string",
         list: "array", dict: "object"}  # fmt: skip


class Shape:
    """What the values seen at one place in the JSON had in common."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.seen = 0
        self.keys: dict[str, Shape] = {}
        self.key_counts: dict[str, int] = {}
        self.objects = 0
        self.items: Shape | None = None

    def add(self, value: Any) -> None:
        """Take one more value seen here."""
        self.seen += 1
        self.types.add(TYPES[type(value)])
        if isinstance(value, dict):
            self.objects += 1
            for k, v in value.items():
                self.keys.setdefault(k, Shape()).add(v)
                self.key_counts[k] = self.key_counts.get(k, 0) + 1
        elif isinstance(value, list):
            self.items = self.items or Shape()
            for v in value:
                self.items.add(v)

    def schema(self, top: bool = False) -> dict[str, Any]:
        """The JSON Schema of the values seen (``top``: the kind's own object: its keys required)."""
        types = set(self.types)
        if "integer" in types and "number" in types:
            types.discard("integer")
        types.add("null")  # the contract: a field may be null where its value cannot be had
        out: dict[str, Any] = {"type": sorted(types) if len(types) > 1 else types.pop()}
        if "object" in self.types:
            if self.keys and not all(IDENTIFIER.match(k) for k in self.keys):  # a map: data as keys
                merged = Shape()
                for shape in self.keys.values():
                    merged.merge(shape)
                out["additionalProperties"] = merged.schema()
            elif self.keys:
                out["properties"] = {k: s.schema() for k, s in sorted(self.keys.items())}
                if top:
                    out["required"] = sorted(k for k, n in self.key_counts.items() if n == self.objects)
        if "array" in self.types and self.items is not None and self.items.seen:
            out["items"] = self.items.schema()
        return out

    def merge(self, other: Shape) -> None:
        """Fold ``other`` (the values at another key of a map) into this shape."""
        self.types |= other.types
        self.seen += other.seen
        self.objects += other.objects
        for k, s in other.keys.items():
            self.keys.setdefault(k, Shape()).merge(s)
            self.key_counts[k] = self.key_counts.get(k, 0) + other.key_counts.get(k, 0)
        if other.items is not None:
            self.items = self.items or Shape()
            self.items.merge(other.items)


def draft(kind: str, shape: Shape, version: int) -> dict[str, Any]:
    """The whole schema file of ``kind`` (a kind of JSON Lines events, with ``event``, requires
    only that: each event has its own fields)."""
    body = shape.schema(top=True)
    if "event" in shape.keys:
        body["required"] = ["event"]
    props = body.get("properties", {})
    props["schema_version"] = {"const": version}
    props["kind"] = {"const": kind}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://notmyfault.invalid/schemas/{kind}.json",
        "title": f"notmyfault --json: {kind}",
        "type": "object",
        "properties": props,
        "required": sorted(set(body.get("required", [])) | {"schema_version", "kind"}),
    }


def main() -> int:
    """Draft the schemas of the kinds in the record that have none yet."""
    ap = argparse.ArgumentParser(description="Draft JSON Schemas from recorded --json objects.")
    ap.add_argument("record", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--force", action="store_true", help="rewrite the schemas that exist too")
    a = ap.parse_args()
    shapes: dict[str, Shape] = {}
    version = 0
    for line in a.record.read_text().splitlines():
        obj = json.loads(line)["obj"]
        if not isinstance(obj.get("kind"), str):
            continue
        shapes.setdefault(obj["kind"], Shape()).add(obj)
        version = max(version, int(obj.get("schema_version") or 0))
    a.out.mkdir(parents=True, exist_ok=True)
    for kind, shape in sorted(shapes.items()):
        path = a.out / f"{kind}.json"
        if path.exists() and not a.force:
            continue
        path.write_text(json.dumps(draft(kind, shape, version), indent=1) + "\n")
        print(f"{path}: {shape.objects} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
