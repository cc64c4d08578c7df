"""The native module builds warning-free with the real flags, for this machine and for aarch64.

x86_64 is where the crashes run in CI; the aarch64 build is compiled with
Debian's cross compiler and its machine code checked, so the #if branches for
aarch64 are real code, not untested text.
"""

from __future__ import annotations

import ast
import platform
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from notmyfault.faults.catalog import CATALOG
from tests.conftest import REPO

NATIVE = REPO / "src" / "notmyfault" / "native" / "user"
SOURCES = sorted(NATIVE.glob("myfault*.c"))


def _cflags() -> list[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CFLAGS":
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no CFLAGS")


def _compile(cc: str, out: Path) -> None:
    """Compile every C source of myfault with the real flags and -Werror into one relocatable object."""
    objs = []
    for src in SOURCES:
        obj = out.with_name(f"{out.stem}-{src.stem}.o")
        include = sysconfig.get_paths()["include"]
        cmd = [cc, *_cflags(), "-Werror", "-fPIC", "-I", include, "-c", str(src), "-o", str(obj)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        objs.append(str(obj))
    ld = cc[: -len("gcc")] + "ld" if cc.endswith("gcc") else "ld"
    subprocess.run([ld, "-r", "-o", str(out), *objs], check=True)


def test_all_sources_are_built() -> None:
    setup_text = (REPO / "setup.py").read_text()
    assert [s.name for s in SOURCES] == ["myfault.c", "myfault_hang.c", "myfault_pool.c"]
    assert f'NATIVE = "{NATIVE.relative_to(REPO)}"' in setup_text
    for src in SOURCES:
        assert f'f"{{NATIVE}}/{src.name}"' in setup_text


def _functions(objdump: str, obj: Path) -> dict[str, str]:
    text = subprocess.run([objdump, "-d", str(obj)], capture_output=True, text=True, check=True).stdout
    bodies: dict[str, str] = {}
    for m in re.finditer(r"<(\w+)>:\n(.*?)(?=\n\n|\Z)", text, re.S):
        bodies[m.group(1)] = m.group(2)
    return bodies


def test_host_build_is_warning_free(tmp_path: Path) -> None:
    _compile("gcc", tmp_path / "myfault.o")


def test_flags_keep_frames() -> None:
    flags = _cflags()
    for flag in ("-fno-omit-frame-pointer", "-funwind-tables", "-fno-optimize-sibling-calls", "-g"):
        assert flag in flags


@pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the aarch64 cross build is checked from x86_64 hosts"
)
def test_aarch64_cross_build(tmp_path: Path) -> None:
    cc = shutil.which("aarch64-linux-gnu-gcc")
    assert cc, "install gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (./dev test does)"
    obj = tmp_path / "myfault-aarch64.o"
    _compile(cc, obj)
    bodies = _functions("aarch64-linux-gnu-objdump", obj)
    for c in CATALOG:
        assert c.function in bodies
    for fn in (
        "myfault_deadlock_a",
        "myfault_spin",
        "myfault_hang_unkillable",
        "myfault_watchdog",
        "myfault_leak_block",
    ):
        assert fn in bodies
    assert re.search(r"\sbrk\s", bodies["myfault_breakpoint"])
    assert re.search(r"\sudf\s", bodies["myfault_illegal_instruction"])
    # aarch64 division does not trap: myfault raises SIGFPE itself there
    assert "raise" in bodies["myfault_divide_by_zero"]
    # the x86 instructions did not leak into the aarch64 build (and the reverse below)
    _compile("gcc", tmp_path / "host.o")
    host = _functions("objdump", tmp_path / "host.o")
    assert "int3" in host["myfault_breakpoint"]
    assert "ud2" in host["myfault_illegal_instruction"]
    assert "idiv" in host["myfault_divide_by_zero"]


def test_missing_compiler_names_the_packages(tmp_path: Path) -> None:
    import os
    import sys

    env = dict(os.environ, CC="/nonexistent/cc")
    r = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "-q",
            "build_ext",
            "--build-temp",
            str(tmp_path / "t"),
            "--build-lib",
            str(tmp_path / "l"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode != 0
    assert "needs a C compiler ('/nonexistent/cc' is not on PATH)" in r.stderr
    assert "apt-get install gcc python3-dev" in r.stderr
    assert "Traceback" not in r.stderr
