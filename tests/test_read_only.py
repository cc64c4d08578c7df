"""No side effects from reading (issue 18, item 4): the commands that only read leave no file or
directory anywhere (not in the working directory, nor under HOME's state and cache directories),
and a database that does not exist is one line and exit 2, not a new empty one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CORPUS, run_nmf
from tests.coretools import null_write_core

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)


@pytest.mark.shared
def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    core = str(null_write_core(tmp_path / "build"))
    minidump = str(CORPUS / "breakpad-linux_null_read_av" / "linux_null_read_av.dmp")
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "NOTMYFAULT_"))}
    env["HOME"] = str(home)
    commands = [
        *(["analyze", d] for d in (core, minidump)),
        ["analyze", core, "--json"], ["stack", core], ["modules", core], ["regs", core], ["vm", core],
        ["search", core, "store"], ["disasm", core, "store"], ["poolused", core], ["list"], ["dumpconfig"],
        ["crash", "--list"], ["hang", "--list"], ["leak", "--list"], ["triage", "rules"],
        ["triage", "redactions"],
    ]  # fmt: skip
    for command in commands:
        r = run_nmf(*command, cwd=cwd, env=env)
        assert r.returncode == 0, (command, r.stderr)
    for missing in ("sqlite:///nosuch/dir/t.db", str(tmp_path / "nosuch.db")):
        for command in (["buckets"], ["show", "abc"], ["report", "--html", str(tmp_path / "r.html")]):
            r = run_nmf("triage", *command, "--db", missing, cwd=cwd, env=env)
            assert r.returncode == 2, (command, r.stderr)
            assert r.stderr.count("\n") == 1, r.stderr
    assert sorted(p.relative_to(tmp_path) for p in home.rglob("*")) == []
    assert sorted(p.relative_to(tmp_path) for p in cwd.rglob("*")) == []
    assert not (tmp_path / "nosuch").exists()
    assert not (tmp_path / "nosuch.db").exists()
    assert not (tmp_path / "r.html").exists()
