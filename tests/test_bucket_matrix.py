"""The bucket variation bench's short form (bench/bucket_matrix.py --random 0 --only c,python): 34
C bugs under gcc and clang, -O0/-O2/-O3, PIE and static, with and without frame pointers, stripped
with symbols from a loopback debuginfod; 10 Python bugs on each interpreter here, faulthandler on
and off; every case with two inputs in two working directories. The long form (random builds,
C++ and Rust) is the bench itself."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_bench

pytestmark = [
    pytest.mark.skipif(
        Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
        reason="needs the plain 'core' pattern",
    ),
    pytest.mark.skipif(shutil.which("debuginfod") is None, reason="needs elfutils' debuginfod"),
]


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    return run_bench("bucket_matrix.py", "--random", "0", "--only", "c,python", timeout=1100)


def test_one_bug_one_bucket_across_builds_inputs_and_interpreters(matrix: dict[str, Any]) -> None:
    assert matrix["no_core"] == []
    assert matrix["failed"] == []
    assert matrix["purity"] == 1.0, matrix["merged"]
    # a split is allowed only where its cause is known: the compiler kept no record of the frame
    assert matrix["unexplained_splits"] == [], {b: matrix["split"][b] for b in matrix["unexplained_splits"]}
    assert matrix["completeness"] >= 0.9
    assert matrix["unclean"] == []
    assert matrix["analyze_disagrees"] == []
    assert matrix["bugs"] >= 40
    builds = matrix["builds"]
    for build in (
        "gcc-O2-pie-nofp-debug",
        "gcc-O2-pie-nofp-stripped",
        "gcc-O0-pie-nofp-debug",
        "gcc-O2-static-nofp-debug",
    ):
        assert build in builds


def test_the_signatures_name_the_programs_functions(matrix: dict[str, Any]) -> None:
    table = {bug: buckets for bug, buckets in matrix["table"].items()}
    for program in ("orders", "stock"):  # one source, two programs: two bugs each
        assert table[f"{program}: store"] == [f"FAULT:{program}:store"]  # two callers, one bug
        # two bugs in one function, told apart by their kind
        assert table[f"{program}: apply_delta: NULL item"] == [f"FAULT:{program}:apply_delta"]
        assert table[f"{program}: apply_delta: assert"] == [f"ABORT:{program}:apply_delta"]
        assert table[f"{program}: by_price (qsort callback)"] == [f"FAULT:{program}:by_price"]
        assert table[f"{program}: on_signal (handler)"] == [f"FAULT:{program}:on_signal"]
        assert table[f"{program}: tally_worker"] == [f"FAULT:{program}:tally_worker"]
        assert table[f"{program}: count_chars: strlen(NULL)"] == [f"FAULT:{program}:strlen | count_chars"]
        # one overflow, glibc's messages and a static link's malloc internals: one bucket
        assert table[f"{program}: drop_pair: corrupt chunk"] == [f"ABORT:{program}:free | drop_pair"]
        assert table[f"{program}: dispatch: NULL handler"] == [f"FAULT:{program}:?? | dispatch"]
    assert table["jobs: read_header"] == ["FAULT:python3:memcpy | ctypes.string_at | read_header"]
    assert table["jobs: shutdown"] == ["ABORT:python3:shutdown"]
    assert table["jobs: crash"] == ["KILLED_BY_SIGNAL(SIGSEGV):python3:crash"]
    assert table["jobs: call_plugin"] == ["FAULT:python3:?? | call_plugin"]
    # faulthandler on and off
    assert matrix["axes"]["faulthandler"]["joined"] == 1.0
    assert matrix["axes"]["symbols"]["joined"] == 1.0
