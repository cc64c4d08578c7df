"""The frames of a stack, native and Python, as every unwinder and every view sees them.

The types live apart from the unwinders so that each unwinder (ELF cores, minidumps, Windows, Python)
imports them and none imports another for its types.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

from notmyfault.unwind.names import demangle, short_name


@dataclass(frozen=True)
class PythonFrame:
    """One Python frame."""

    function: str
    """The code object's name (its qualified name from 3.11)."""
    file: str
    line: int
    arguments: tuple[tuple[str, str], ...] = ()
    """Name and repr of each argument, when locals were asked for."""
    locals: tuple[tuple[str, str], ...] = ()
    entry: bool = False
    """The first frame of one call of the eval loop."""

    @property
    def _library_path(self) -> list[str] | None:
        """For a file of the interpreter's own library (under lib/pythonX.Y, not in its site-packages):
        its path from there (``["ctypes", "__init__.py"]``); None for any other file."""
        parts = self.file.replace("\\", "/").split("/")
        if any(p in ("site-packages", "dist-packages") for p in parts):
            return None
        at = [
            i
            for i, p in enumerate(parts)
            if i > 0 and parts[i - 1] == "lib" and p.startswith("python") and p[6:7].isdigit()
        ]
        return [p for p in parts[at[-1] + 1 :] if p] if at else None

    @property
    def stdlib(self) -> bool:
        """True for a frame of the interpreter's own library (lib/pythonX.Y, not its site-packages)."""
        return self._library_path is not None

    @property
    def qualified(self) -> str:
        """module.function for a library frame (ctypes.string_at), the bare function for the program's."""
        names = self._library_path
        if not names:
            return self.function
        names[-1] = names[-1].removesuffix(".py")
        if names[-1] == "__init__":
            names.pop()
        return ".".join([*names, self.function])

    def where(self) -> str:
        """``app.py:13 parse``: the file's name, the line and the function."""
        return f"{os.path.basename(self.file)}:{self.line} {self.function}"


CODE_KINDS = {
    "jit": "JIT code",
    "unknown": "unknown code",
    "non-executable": "non-executable memory",
    "unmapped": "unmapped",
}
"""How a frame outside every module is shown, by its ``code``."""


@dataclass(frozen=True)
class Frame:
    """One frame of a stack."""

    index: int
    pc: int
    sp: int | None
    module: str | None
    """Path of the module holding pc, if any."""
    function: str | None
    offset: int | None
    """pc minus the start of the function's symbol."""
    file: str | None
    line: int | None
    how: str
    """context, unwound, inline, frame pointer, return address at sp, or scan."""
    module_base: int | None = None
    """Load address of the module (its lowest mapping)."""
    raw_function: str | None = None
    """The symbol as the binary or symbol file spells it, where ``function`` is its demangled form."""
    code: str | None = None
    """For a pc in no module: ``jit`` (anonymous executable memory: JIT-compiled code), ``unknown``
    (executable, in a mapped file that is no module), ``non-executable`` or ``unmapped``."""
    python: tuple[PythonFrame, ...] = ()
    """For an eval-loop frame of a CPython process: the Python frames it runs, innermost first."""
    arguments: tuple[tuple[str, str], ...] = ()
    """When asked for (``stack -v``): the function's arguments from DWARF, (name, value as gdb
    prints it), in declaration order (``unwind.variables``)."""
    locals: tuple[tuple[str, str], ...] = ()
    """When asked for: the locals in scope at the frame's pc, as ``arguments``."""

    def __post_init__(self) -> None:
        """Demangle the function's name (C++, Rust, Swift), keeping the raw one beside it."""
        if self.function and self.raw_function is None:
            readable = demangle(self.function)
            if readable != self.function:
                object.__setattr__(self, "raw_function", self.function)
                object.__setattr__(self, "function", readable)

    def symbolic(self) -> str:
        """module!function, or module+0xoff without symbols: stable across runs and ASLR."""
        if self.function:
            return f"{short_name(self.module)}!{self.function}" if self.module else self.function
        if self.module and self.module_base is not None:
            return f"{short_name(self.module)}+{self.pc - self.module_base:#x}"
        return f"{self.pc:#x}"

    def location(self) -> str:
        """module!function+0xoff, or module+0xoff without symbols, or the bare address (marked
        ``[JIT code]`` or ``[unmapped]`` where the dump says which)."""
        if self.function:
            return f"{self.symbolic()}+{self.offset or 0:#x}"
        if self.code and not self.module:
            return f"[{CODE_KINDS.get(self.code, self.code)}] {self.pc:#x}"
        return self.symbolic()


def renumbered(frames: Iterable[Frame]) -> list[Frame]:
    """``frames`` with each one's ``index`` its place in the list; a frame already at its place is
    kept as it is (a deep stack of 100,000 frames is copied only past where one was put in)."""
    return [f if f.index == i else replace(f, index=i) for i, f in enumerate(frames)]
