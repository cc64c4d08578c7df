"""Readable names: C++ (Itanium), Rust (legacy and v0) and Swift symbols demangled, and modules
named as WinDbg names them (``myfault`` for ``.../myfault.cpython-311-x86_64-linux-gnu.so``).

pydemumble wraps LLVM's demanglers (the ones ``llvm-cxxfilt`` and demumble
use); a name it cannot read is kept as it is.  Names from a dump are hostile:
one longer than ``MAX_MANGLED`` is not handed to the demangler.
"""

from __future__ import annotations

import os
from functools import lru_cache

MAX_MANGLED = 4096
"""Longer symbols are left mangled rather than given to a recursive demangler."""
_PREFIXES = ("_Z", "__Z", "_R", "$s", "$S", "_$s", "_$S")


def is_mangled(name: str) -> bool:
    """Whether ``name`` looks like a mangled C++, Rust or Swift symbol."""
    return name.startswith(_PREFIXES)


@lru_cache(maxsize=8192)
def demangle(name: str) -> str:
    """The readable form of ``name`` (node::Abort(v8::FunctionCallbackInfo<v8::Value> const&)), or
    ``name`` itself when it is not mangled or cannot be demangled."""
    if not is_mangled(name) or len(name) > MAX_MANGLED or "\0" in name:
        return name
    from pydemumble import demangle as llvm_demangle  # type: ignore[import-untyped]

    try:
        out = llvm_demangle(name)
    except Exception:  # the extension's errors are not part of its contract: keep the raw name
        return name
    return out if out and out != name else name


def base_name(path: str) -> str:
    """The file name of a module path, Linux or Windows (c:\\windows\\system32\\ntdll.dll -> ntdll.dll)."""
    return os.path.basename(path.replace("\\", "/"))


def short_name(path: str | None) -> str:
    """A module's short name, as WinDbg prints it: the file name up to its first dot (myfault)."""
    if not path:
        return "?"
    name = base_name(path)
    return name.split(".", 1)[0] or name


def module_matches(path: str | None, name: str) -> bool:
    """True if the module at ``path`` is the one called ``name``: its short name, its file name, or its path."""
    if not path:
        return False
    return short_name(path) == name or base_name(path) == name or path.endswith("/" + name) or path == name
