"""Mutated dumps through every reader and unpacking path (ELF cores, minidumps, Windows kernel
dumps, Breakpad symbol files; compressed cores, apport reports, makedumpfile vmcores): one-line
errors only, never a traceback.  This is the short form, for CI; bench/fuzz.py runs 10,000 inputs of
each kind (the README gives its figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("cpu_hogs")  # they must hold on a machine at full load

FUZZER = Path(__file__).with_name("fuzz_reader.py")


SHORT = {
    "elf": 2000,
    "minidump": 2000,
    "windows": 500,
    "sym": 100,
    "packed": 1000,
    "apport": 500,
    "kdump": 1000,
}
"""Inputs per kind in CI."""


@pytest.mark.shared
@pytest.mark.parametrize(("kind", "count"), SHORT.items())
def test_readers_survive_mutations(kind: str, count: int) -> None:
    """sym: mutated Breakpad symbol files (each is parsed whole, up to 800 KB) walking two dumps;
    packed: the corpus' small cores as gz, xz, zst and lz4 (a corrupt zstd frame escaped as
    ZstdError before)."""
    r = subprocess.run(
        [sys.executable, str(FUZZER), "--count", str(count), "--kind", kind],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert f"{count} inputs" in r.stdout
    assert ", 0 failures" in r.stdout
