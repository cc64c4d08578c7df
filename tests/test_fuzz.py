"""10,000 mutated corpus cores, and 10,000 mutated corpus minidumps, through the readers: one-line
errors only, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS

FUZZER = Path(__file__).with_name("fuzz_reader.py")


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus is not here")
@pytest.mark.parametrize("kind", ["elf", "minidump"])
def test_reader_survives_10000_mutations(kind: str) -> None:
    r = subprocess.run(
        [sys.executable, str(FUZZER), "--count", "10000", "--kind", kind],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "10000 inputs" in r.stdout
    assert ", 0 failures" in r.stdout
