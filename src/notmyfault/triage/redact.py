"""What triage keeps out of its database: the redaction rules, as data.

A fleet's dumps come from other people's machines.  Their environment is never stored (the page
triage stores has none); beyond that, paths and command lines can name a person (``/home/alice``)
or carry a secret (``--token=ghp_...``).  Before a row is stored, each rule's pattern is replaced
in the stored text: ``paths`` rules in every path and in the whole ``!analyze`` page (its
executable, modules, source files), ``command_line`` rules in the command lines only (the
process's, and an apport report's ProcCmdline: a token-like rule over a whole page would eat symbol
names).  A path's home directory is matched from the path's start (``/tmp/x/home/.local`` is none),
and ``$HOME`` in a pattern stands for the crashed process's own ``HOME``, wherever it lies.  Buckets
are made before redaction and never change with it.

The built-in rules are :data:`DEFAULT_REDACTIONS`; ``triage redactions`` prints them as JSON, and
``triage ingest --redact FILE`` takes a file of that shape instead (``--redact none`` keeps
everything).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

SCOPES = ("paths", "command_line")
HOME = "$HOME"
"""In a rule's pattern: the home directory of the process that crashed (its ``HOME``), as the
regular expression ``(?P<home_parent>PARENT)/NAME``. A rule that names it is left out for a dump
without one (no environment, no ``HOME``, or ``HOME=/``)."""
_PATH_START = r"(?<![\w.~/-])"
"""A path's first character: none of a path's own characters comes before it."""


@dataclass(frozen=True)
class Redaction:
    """One rule: ``pattern`` (a Python regular expression) replaced by ``replace`` (which may use
    the pattern's groups, ``\\1``) in the texts of its ``scope``."""

    name: str
    pattern: str
    replace: str
    scope: str = "paths"

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern."""
        return re.compile(self.pattern)


DEFAULT_REDACTIONS: tuple[Redaction, ...] = (
    # first: the process's own HOME, wherever it lies (/srv/alice), whole and at a path's start
    Redaction("the user's HOME", _PATH_START + HOME + r"(?![^/\s:\]'\"])", r"\g<home_parent>/<user>"),
    # a path starts where no path character comes before it: /tmp/x/home/.local is no home
    Redaction("home directory", _PATH_START + r"(/home/|/Users/|/var/home/)[^/\s:\]'\"]+", r"\1<user>"),
    Redaction("Windows profile", r"(?i)(?<![\w\\])([a-z]:\\users\\)[^\\\s]+", r"\1<user>"),
    Redaction("credentials in a URL", r"(\w://)[^/\s:@]+:[^/\s@]+@", r"\1<credentials>@", "command_line"),
    Redaction(
        "secret option",
        r"(?i)((?:--?|\b)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth)[=:])\S+",
        r"\1<redacted>",
        "command_line",
    ),
    Redaction(  # an option naming a secret, its value the next argument: --password hunter2
        "secret option's argument",
        r"(?i)((?<![\w-])--?(?:[\w-]*[_-])?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
        r"auth|credentials?)\s+)(?!-)\S+",
        r"\1<redacted>",
        "command_line",
    ),
    Redaction(
        "known token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|xox[abprs]-[\w-]{10,}|AKIA[0-9A-Z]{16}|"
        r"sk-[A-Za-z0-9_-]{20,}|glpat-[\w-]{20,}|eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,})",
        "<token>",
        "command_line",
    ),
    Redaction(
        "token-like argument",  # 24+ characters mixing upper case, lower case and digits
        r"(?<![\w/.-])(?=[\w-]*[A-Z])(?=[\w-]*[a-z])(?=[\w-]*\d)[\w-]{24,}(?![\w/.-])",
        "<token>",
        "command_line",
    ),
)


def load_redactions(path: str) -> tuple[Redaction, ...]:
    """Rules from a JSON file (the shape ``triage redactions`` prints); ``none``: no rules.

    ValueError (one line) for an unreadable file or a bad rule."""
    if path == "none":
        return ()
    try:
        data = json.loads(Path(path).read_text())
        out = tuple(
            Redaction(
                str(r["name"]),
                str(r["pattern"]),
                str(r.get("replace", "<redacted>")),
                str(r.get("scope", "paths")),
            )
            for r in data["redactions"]
        )
        for r in out:
            if r.scope not in SCOPES:
                raise ValueError(f"rule {r.name!r}: scope must be one of {', '.join(SCOPES)}")
            for e in with_home((r,), "/home/x"):  # compiles, and the replacement's groups exist
                e.regex.sub(e.replace, "x")
    except OSError as e:
        raise ValueError(f"--redact {path}: {e.strerror}") from e
    except (KeyError, TypeError, ValueError, re.error) as e:
        raise ValueError(f"--redact {path}: bad redaction rules: {e}") from e
    return out


def redactions_data(rules: tuple[Redaction, ...]) -> dict[str, Any]:
    """``rules`` in the file's shape."""
    return {"redactions": [{"name": r.name, "pattern": r.pattern, "replace": r.replace, "scope": r.scope}
                           for r in rules]}  # fmt: skip


def with_home(rules: tuple[Redaction, ...], home: str | None) -> tuple[Redaction, ...]:
    """``rules`` with ``HOME`` in their patterns standing for ``home``; those naming it are left out
    when ``home`` is None, relative, or the root."""
    parent, _, name = (home or "").rstrip("/").rpartition("/")
    known = bool(home and home.startswith("/") and name)
    mine = f"(?P<home_parent>{re.escape(parent)})/{re.escape(name)}"
    return tuple(
        r if HOME not in r.pattern else Redaction(r.name, r.pattern.replace(HOME, mine), r.replace, r.scope)
        for r in rules
        if known or HOME not in r.pattern
    )


def redact(text: str, rules: tuple[Redaction, ...], scope: str, home: str | None = None) -> str:
    """``text`` with the rules of ``scope`` (and for a command line, the path rules too) applied;
    ``home`` is the crashed process's ``HOME``, for the rules that name it."""
    for r in with_home(rules, home):
        if r.scope == scope or r.scope == "paths":
            text = r.regex.sub(r.replace, text)
    return text


COMMAND_LINE = re.compile(r"^(COMMAND_LINE: |  ProcCmdline: )(.*)$", re.M)
"""The page's command lines: the process's, and that of an apport report's ProcCmdline."""


def redact_row(row: dict[str, Any], rules: tuple[Redaction, ...], home: str | None = None) -> dict[str, Any]:
    """The row with its paths and its page's command lines redacted (bucket fields untouched);
    ``home`` is the crashed process's ``HOME``, for the rules that name it (``with_home``)."""
    rules = with_home(rules, home)
    if not rules:
        return row
    out = dict(row)
    for column in ("path", "executable", "error", "blamed"):
        if isinstance(out.get(column), str):
            out[column] = redact(out[column], rules, "paths")
    page = out.get("analysis_text")
    if isinstance(page, str):
        page = COMMAND_LINE.sub(lambda m: m.group(1) + redact(m.group(2), rules, "command_line"), page)
        out["analysis_text"] = redact(page, rules, "paths")
    return out
