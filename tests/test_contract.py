"""The JSON contract as published JSON Schemas (notmyfault/schemas): each is a valid schema for
its own kind, every kind the code can print has one, and what the tests' commands printed
validates (tests/conftest.py checks every --json object every test runs; here the schemas
themselves, and that they reject what the contract forbids)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from notmyfault.render import SCHEMA_VERSION
from notmyfault.render.contract import SCHEMA_DIR, kinds, schema
from tests.conftest import REPO, run_json


def test_every_schema_is_valid_and_names_its_kind() -> None:
    assert len(kinds()) >= 35
    assert [k for k in kinds() if not re.fullmatch(r"[a-z]+(-[a-z]+)*", k)] == []  # hyphens, as every kind
    for kind in kinds():
        s = schema(kind)
        jsonschema.Draft202012Validator.check_schema(s)
        assert s["properties"]["kind"] == {"const": kind}
        assert s["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
        assert {"kind", "schema_version"} <= set(s["required"])


def test_every_kind_the_code_prints_has_a_schema() -> None:
    """A kind written in the source (``"kind": "..."``, and the kinds made from a pattern) without
    a published schema fails here, before any user sees it."""
    found: set[str] = set()
    for path in (REPO / "src" / "notmyfault").rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'"kind": "([a-z][a-z_-]*)"', text))
        found |= {m for m in re.findall(r'_say\(\s*as_json,\s*"([a-z-]+)"', text)}
    found |= {"triage-failed", "triage-truncated"}  # triage show failed|truncated: f"triage-{bucket}"
    assert len(found) >= 30
    assert found - set(kinds()) == set()


def test_the_schemas_reject_what_the_contract_forbids() -> None:
    """A field that disappears or changes type fails validation: the schemas bite."""
    _, out = run_json("dumpconfig")
    validator = jsonschema.Draft202012Validator(schema("dumpconfig"))
    assert not list(validator.iter_errors(out))
    gone = next(k for k in schema("dumpconfig")["required"] if k not in ("kind", "schema_version"))
    for broken in (
        {k: v for k, v in out.items() if k != gone},
        {**out, "schema_version": SCHEMA_VERSION - 1},
        {**out, "kind": "crash"},
    ):
        assert list(validator.iter_errors(broken)), broken
    typed = next(k for k, v in out.items() if isinstance(v, dict) and k in schema("dumpconfig")["required"])
    assert list(validator.iter_errors({**out, typed: 12}))


@pytest.mark.parametrize("kind", ["analysis", "stacks", "crash", "registers", "modules"])
def test_the_schemas_ship_in_the_package(kind: str) -> None:
    assert (SCHEMA_DIR / f"{kind}.json").is_file()
    assert json.loads((SCHEMA_DIR / f"{kind}.json").read_text())["title"].endswith(kind)


def test_every_kind_is_documented_and_every_json_command_is_accounted_for() -> None:
    """docs/json-schema.md names every kind, and every command that takes --json is either run by
    the suite with its output validated (tests/conftest.py fails a whole CI run otherwise) or named,
    with the reason, as not run here."""
    from tests.conftest import NOT_RUN_HERE, json_commands

    doc = (REPO / "docs" / "json-schema.md").read_text()
    assert [k for k in kinds() if f'"{k}"' not in doc and f"`{k}`" not in doc] == []
    commands = json_commands()
    assert len(commands) >= 30
    assert set(NOT_RUN_HERE) <= set(commands)  # no stale exception
    assert {"analyze", "triage buckets", "lab run", "demo", "dump"} <= set(commands)
