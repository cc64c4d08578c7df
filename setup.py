"""Build the native module ``notmyfault.myfault`` (the analog of myfault.sys).

Everything else about the package is in pyproject.toml; this file exists only
because the C extension needs compile flags and a clear message when the
compiler or the Python headers are missing.
"""

from __future__ import annotations

import os
import shutil
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Frame pointers, unwind tables and debug info so that every debugger can walk
# through a fault; no inlining or sibling calls so each fault keeps its own
# frame; no stack protector and no _FORTIFY_SOURCE so that distributions'
# hardening defaults (Ubuntu turns both on) do not change which fault happens.
CFLAGS = [
    "-O1",
    "-g",
    "-fno-omit-frame-pointer",
    "-funwind-tables",
    "-fasynchronous-unwind-tables",
    "-fno-optimize-sibling-calls",
    "-fno-inline-functions",
    "-fno-stack-protector",
    "-U_FORTIFY_SOURCE",
    "-D_FORTIFY_SOURCE=0",
    "-Wall",
    "-Wextra",
    "-pthread",
]

MISSING_TOOLS = (
    "notmyfault builds its native module 'myfault' at install time and needs {what}. "
    "On Debian/Ubuntu: sudo apt-get install gcc python3-dev (or python{ver}-dev), then install again."
)


class CheckedBuildExt(build_ext):
    """build_ext that names the missing packages instead of failing obscurely."""

    def run(self) -> None:
        """Check for a C compiler and Python.h, then build."""
        ver = sysconfig.get_python_version()
        cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
        cc = os.environ.get("CC", cc).split()[0]
        if shutil.which(cc) is None:
            raise SystemExit(MISSING_TOOLS.format(what=f"a C compiler ('{cc}' is not on PATH)", ver=ver))
        include = sysconfig.get_paths()["include"]
        if not os.path.exists(os.path.join(include, "Python.h")):
            raise SystemExit(
                MISSING_TOOLS.format(what=f"the Python headers ({include}/Python.h is missing)", ver=ver)
            )
        super().run()


setup(
    ext_modules=[
        Extension(
            "notmyfault.myfault",
            sources=["src/notmyfault/myfault.c", "src/notmyfault/myfault_pool.c", "src/notmyfault/myfault_hang.c"],
            depends=["src/notmyfault/myfault.h"],
            extra_compile_args=CFLAGS,
        )
    ],
    cmdclass={"build_ext": CheckedBuildExt},
)
