"""Renderers: text for people and JSON for programs.  They format results; they never analyse.

- ``analysis``, ``memory``, ``kernel``: the analyzer's pages (WinDbg-like text) and their JSON;
- ``capture``, ``catalog``, ``leakview``: the injector's and capture's output;
- ``report``: a whole dump's story as headed sections (the demo and the window share it);
- ``safe``: escaping of hostile strings for the terminal; ``common``: shared formatting.

May import: api, kernel, memory, analysis, unwind, dumps, capture, faults, base.
"""

SCHEMA_VERSION = 4
"""Version of the JSON contract in docs/json-schema.md; bumped on incompatible changes."""
