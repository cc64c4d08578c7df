"""Command-line front end.

Built on the public API alone: ``notmyfault`` (``notmyfault.api``) and the faces of the other
packages, never their modules, and the renderers.

May import: api (face), render, faults (face), capture (face), triage (face), lab (face), ui (face), pipeline (face), web (face), base (face).
"""
