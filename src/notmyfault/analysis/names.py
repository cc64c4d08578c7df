"""Readable function names: C++ (Itanium), Rust (legacy and v0) and Swift symbols demangled.

pydemumble wraps LLVM's demanglers (the ones ``llvm-cxxfilt`` and demumble
use); a name it cannot read is kept as it is.  Names from a dump are hostile:
one longer than ``MAX_MANGLED`` is not handed to the demangler.
"""

from __future__ import annotations

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
