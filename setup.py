"""Build the native modules ``notmyfault.native.myfault`` (the analog of myfault.sys) and
``notmyfault.native.scan`` (the analyzer's pointer scan).

Everything else about the package is in pyproject.toml; this file exists only
because the C extension needs compile flags and a clear message when the
compiler or the Python headers are missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile

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

NATIVE = "src/notmyfault/native/user"
"""The C sources of the user-mode module myfault."""

MISSING_TOOLS = (
    "notmyfault builds its native module 'myfault' at install time and needs {what}. "
    "On Debian/Ubuntu: sudo apt-get install gcc python3-dev (or python{ver}-dev), then install again."
)


def _version() -> str:
    text = open(os.path.join("src", "notmyfault", "__init__.py")).read()
    found = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    return found.group(1) if found else "0"


def _package_note(cc: str) -> list[str]:
    """The linker flags for an ELF package note (the FDO "package metadata" spec), if the linker has them.

    ``notmyfault modules -v myfault`` reads the note back from the module, as
    WinDbg's lmvm reads a driver's version resource.
    """
    meta = json.dumps({"type": "pypi", "name": "notmyfault", "version": _version()}, separators=(",", ":"))
    flags = ["-Xlinker", f"--package-metadata={meta}"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("int notmyfault_probe(void) { return 0; }\n")
        probe = [cc, "-shared", "-fPIC", src, "-o", os.path.join(tmp, "t.so"), *flags]
        ok = subprocess.run(probe, capture_output=True).returncode == 0
    return flags if ok else []


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
        for ext in self.extensions:
            ext.extra_link_args = [*ext.extra_link_args, *_package_note(cc)]
        super().run()


setup(
    ext_modules=[
        Extension(
            "notmyfault.native.myfault",
            sources=[f"{NATIVE}/myfault.c", f"{NATIVE}/myfault_pool.c", f"{NATIVE}/myfault_hang.c"],
            depends=[f"{NATIVE}/myfault.h"],
            extra_compile_args=CFLAGS,
        ),
        # the analyzer's pointer scan (unwind.pycore): no fault, so built for speed
        Extension(
            "notmyfault.native.scan",
            sources=[f"{NATIVE}/scan.c"],
            extra_compile_args=["-O2", "-g", "-Wall", "-Wextra"],
        ),
    ],
    cmdclass={"build_ext": CheckedBuildExt},
)
