"""Who to blame: the documented rule, with its skip list kept as data.

The rule ("Probably caused by"): the first frame of the crashing thread,
innermost first, that lies in a known module whose file name does not match
SKIP_MODULES.  System modules (the C library, the loader, the C++ and GCC
runtimes, the vdso, the Python interpreter) only carry out what their caller
asked, the way WinDbg skips ntoskrnl for myfault.sys.  Frames in no module
(a wild program counter) are passed over.  When every frame is skipped, the
innermost frame in a module is blamed and the rule says so; in a CPython
process the analysis then names the Python frame that made the call
(``analysis.crash.python_blame``).
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from notmyfault.unwind.names import base_name

SKIP_MODULES: tuple[str, ...] = (
    "libc.so*",
    "libc-*.so",
    "ld-linux*.so*",
    "ld-*.so*",
    "ld64.so*",
    "libpthread.so*",
    "libpthread-*.so",
    "libdl.so*",
    "librt.so*",
    "libm.so*",
    "libgcc_s.so*",
    "libstdc++.so*",
    "libc++.so*",
    "libc++abi.so*",
    "linux-vdso.so*",
    "linux-gate.so*",
    "[vdso]",
    "python3*",
    "python",
    "libpython3*.so*",
    # the interpreter's foreign-function calls (ctypes): they call what the Python code asked for
    "_ctypes*.so",
    "libffi.so*",
    # Windows (minidumps), matched without regard to case
    "ntdll.dll",
    "kernel32.dll",
    "kernelbase.dll",
    "msvcrt.dll",
    "ucrtbase.dll",
    "vcruntime*.dll",
    "msvcp*.dll",
    "user32.dll",
    "win32u.dll",
)


@functools.lru_cache(maxsize=4096)
def is_system_module(path: str | None) -> bool:
    """True if the module at ``path`` matches the skip list (remembered: every thread's frames ask)."""
    if not path:
        return False
    name = base_name(path)
    if name.lower().endswith((".dll", ".exe", ".sys")):
        name = name.lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SKIP_MODULES)


@dataclass(frozen=True)
class BlameChoice:
    """Which frame the rule picked, and why."""

    index: int | None
    reason: str


def choose(modules: Sequence[str | None]) -> BlameChoice:
    """Apply the rule to the frames' module paths, innermost first."""
    for i, m in enumerate(modules):
        if m and not is_system_module(m):
            return BlameChoice(i, "first frame outside the system modules")
    for i, m in enumerate(modules):
        if m:
            return BlameChoice(i, "every frame is in a system module: the innermost one is blamed")
    return BlameChoice(None, "no frame lies in a known module")
