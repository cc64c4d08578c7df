"""Renderers: text for people and JSON for programs.  They format results; they never analyse."""

SCHEMA_VERSION = 2
"""Version of the JSON contract in docs/json-schema.md; bumped on incompatible changes."""
