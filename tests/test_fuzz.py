"""Mutated corpus dumps (ELF cores, minidumps, a Windows kernel dump) through the readers: one-line
errors only, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS

FUZZER = Path(__file__).with_name("fuzz_reader.py")


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus is not here")
@pytest.mark.parametrize(
    ("kind", "count"), [("elf", 10000), ("minidump", 10000), ("windows", 3000), ("sym", 300)]
)
def test_readers_survive_mutations(kind: str, count: int) -> None:
    """windows: 3,000 (its one seed is a 1.2 MB triage dump; 10,000 copies take over a minute);
    sym: 300 mutated Breakpad symbol files (each is parsed whole, up to 800 KB) walking two dumps."""
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
