"""Strings from a dump are hostile: a program whose file name holds a terminal escape (OSC: retitle
the window) crashes, and no page of ours writes that escape to the terminal raw; gdb shows such
bytes as escapes too.  JSON stays valid and keeps the string exact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_json, run_nmf
from tests.coretools import NULL_WRITE_SOURCE, crash_program

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
EVIL = "nw\x1b]0;pwned\x07\u202egnp"  # OSC retitle, BEL, a right-to-left override


def test_no_page_writes_a_dumps_escapes_raw(tmp_path: Path) -> None:
    (tmp_path / "nw.c").write_text(NULL_WRITE_SOURCE)
    exe = tmp_path / EVIL
    core = crash_program(["gcc", "-g", "-O1", str(tmp_path / "nw.c"), "-o", str(exe)], exe, tmp_path)
    _, a = run_json("analyze", str(core))
    assert EVIL in a["process"]["executable"]  # JSON keeps the string exact (the encoder escapes it)
    assert a["blamed"]["function"] == "store"
    for command in (["analyze"], ["stack"], ["modules"], ["regs"], ["search", "pwned"], ["vm"]):
        r = run_nmf(command[0], str(core), *command[1:])
        assert r.returncode == 0, (command, r.stderr)
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in r.stdout, command
    page = run_nmf("analyze", str(core)).stdout
    assert "nw\\x1b]0;pwned\\x07\\u202egnp" in page  # shown as escapes, as gdb shows them
    db = str(tmp_path / "t.db")
    r = run_nmf("triage", "ingest", str(core), "--db", db)
    assert r.returncode == 0, r.stderr
    buckets = run_nmf("triage", "buckets", "--db", db).stdout
    assert "\x1b" not in buckets
    bucket_id = json.loads(run_nmf("triage", "buckets", "--db", db, "--json").stdout)["buckets"][0]["id"]
    shown = run_nmf("triage", "show", bucket_id, "--db", db).stdout
    assert "\x1b" not in shown
    assert "\\x1b]0;pwned" in shown
    shutil.rmtree(tmp_path, ignore_errors=True)
