"""Build-ids read from ELF files by hand (dumps.buildid: the ELF header, the program headers, the
notes), checked against binutils' readelf on every kind of ELF file the machine has: 64- and 32-bit,
little- and big-endian (the cross toolchains' libraries), kernel modules (sections, no segments),
separate debug files, Go programs where there are some (a Go program's GNU note is in a section its
PT_NOTE does not cover), and the corpus's files."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from notmyfault.dumps.buildid import file_build_id
from tests.conftest import CORPUS

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None, reason="needs binutils' readelf")

PATTERNS = (
    "/usr/lib/x86_64-linux-gnu/*.so*",
    "/usr/bin/*",
    "/lib/modules/*/kernel/fs/*/*.ko*",
    "/usr/lib/debug/.build-id/*/*.debug",
    "/usr/*-linux-gnu*/lib/*.so*",
)
PER_PATTERN = 120


def _elf_files() -> list[str]:
    files: list[str] = []
    for pattern in PATTERNS:
        found = sorted(f for f in glob.glob(pattern) if os.path.isfile(f) and not os.path.islink(f))
        files += found[:PER_PATTERN]
    files += sorted(str(p) for p in Path(CORPUS).rglob("*") if p.is_file() and p.stat().st_size < 64 << 20)
    out = []
    for f in files:
        try:
            with open(f, "rb") as h:
                if h.read(4) == b"\x7fELF":
                    out.append(f)
        except OSError:
            continue
    return out


def _readelf_build_id(path: str) -> str | None:
    r = subprocess.run(
        ["readelf", "-n", "--wide", path], capture_output=True, text=True, timeout=60, check=False
    )
    m = re.search(r"Build ID: ([0-9a-f]+)", r.stdout)
    return m.group(1) if m else None


def test_build_ids_equal_readelfs() -> None:
    files = _elf_files()
    assert len(files) > 300
    differ = []
    with_id = 0
    for f in files:
        theirs = _readelf_build_id(f)
        with_id += theirs is not None
        if file_build_id(f) != theirs:
            differ.append((f, file_build_id(f), theirs))
    assert differ == []
    assert with_id > 250
