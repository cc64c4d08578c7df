"""Lazy public faces: a package exports names of its modules without importing them up front.

A face (``notmyfault``, ``notmyfault.faults``, ...) lists what it exports and where each lives; a
name is imported on first use (PEP 562), so ``import notmyfault`` stays cheap and importing one
module of a package never loads its siblings. Type checkers read the same names from the face's
``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each public name to
    ``"module:attribute"`` (or ``"module"`` for a module itself)."""

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = where.partition(":")
        value = importlib.import_module(module)
        if attribute:
            value = getattr(value, attribute)
        setattr(sys.modules[package], name, value)  # once found, a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
