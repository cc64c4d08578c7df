"""notmyfault demo: the seed's story from a real dump, with the leak's own numbers."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_nmf


def test_demo_tells_the_seed_story(dump_dir: Path) -> None:
    r = run_nmf("demo", "--stop-at", "32MB", "--dump-dir", str(dump_dir), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    for heading in (
        "kd> !analyze -v",
        "kd> .trap",
        "kd> kvL",
        "kd> !vm",
        "kd> !poolused",
        'kd> s -a myfault "Leak"',
        "kd> lmvm myfault",
    ):
        assert heading in out
    assert "INVALID_MEMORY_READ (SIGSEGV / SEGV_MAPERR)" in out
    assert "Probably caused by : myfault." in out
    assert "( myfault!myfault_high_irql+0x" in out
    # the Python line that called myfault.do_bug, and the Python frames between the native ones
    import notmyfault.faults.crash as crash_module

    source = Path(crash_module.__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "myfault.do_bug(" in text)
    assert f'PYTHON_CALLER: File "{crash_module.__file__}", line {line}, in commit' in out
    assert "STACK_TEXT (native and Python frames, holds the GIL):" in out
    # the leak's own numbers, as the leaking process reported them before the crash ...
    m = re.search(r"leaked (\d+) bytes in (\d+) blocks tagged 'Leak' \((nonpaged|paged) pool\)", out)
    assert m
    leaked, blocks, pool = int(m.group(1)), int(m.group(2)), m.group(3)
    assert 32_000_000 - 64 * 1024 < leaked <= 32_000_000
    # ... are the numbers !poolused reads from the dump
    assert re.search(rf"^Leak\s+{pool}\s+{blocks}\s+{leaked}\s", out, re.M)
    assert re.search(
        r"^[0-9a-f]{16}\s+myfault\+0x[0-9a-f]+\s+\(file\)", out, re.M
    )  # the tag found in myfault
    assert "Build-id:" in out
    assert len(list(dump_dir.glob("core.*"))) == 1


def test_demo_as_json_lines(dump_dir: Path) -> None:
    """--json: the start, the crash object, then the report (its sections' text, and the analysis
    object); nothing else on stdout."""
    import json

    r = run_nmf("demo", "--stop-at", "16MB", "--dump-dir", str(dump_dir), "--json", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(line) for line in r.stdout.splitlines()]  # every line is JSON
    started, crash, report = lines[0], lines[-2], lines[-1]
    assert {x["kind"] for x in lines[1:-2]} == {"leak"}  # the leak's own events between
    assert any(x["event"] == "limit" for x in lines[1:-2])  # it leaked to its limit, then crashed
    assert (started["kind"], started["event"], started["stop_at"], started["tag"]) == (
        "demo",
        "started",
        "16MB",
        "Leak",
    )
    assert (crash["kind"], crash["crash_type"]) == ("crash", "leak-then-high-irql")
    assert (report["kind"], report["event"], report["dump"]) == ("demo", "report", crash["dump"]["path"])
    assert [x["key"] for x in report["sections"]] == [
        "analyze",
        "trap",
        "stack",
        "vm",
        "poolused",
        "search",
        "modules",
    ]
    assert report["analysis"]["blamed"]["function"] == "myfault_high_irql"
    assert "Probably caused by : myfault." in report["sections"][0]["text"]


def test_demo_bad_options() -> None:
    r = run_nmf("demo", "--exact", "--rate", "5MB")
    assert r.returncode == 2
    assert "--exact uses the walkthrough's numbers" in r.stderr
    r = run_nmf("demo", "--stop-at", "lots")
    assert r.returncode == 2
    assert "cannot read size" in r.stderr
