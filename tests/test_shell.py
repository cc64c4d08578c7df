"""``notmyfault shell DUMP``: drgn's REPL on the dump, with notmyfault's pages as helpers; it answers
what the pages do not (a local variable, an expression)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CORPUS, run_nmf
from tests.coretools import null_write_core

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)


def test_shell_answers_with_drgn_and_the_helpers(tmp_path: Path) -> None:
    core = null_write_core(tmp_path, ("-g", "-O0"))
    script = "\n".join(
        [
            "print('class=' + analysis().crash_class)",
            "frame = prog.crashed_thread().stack_trace()[0]",
            "print('p=' + hex(frame['p'].value_()))",  # a local variable: what no page shows
            "print('blamed=' + analysis().blamed.function)",
            "stack()",
            "",
        ]
    )
    out = run_nmf("shell", str(core), input=script)
    assert out.returncode == 0, out.stderr
    assert "class=NULL_POINTER_WRITE" in out.stdout
    assert "p=0x0" in out.stdout
    assert "blamed=store" in out.stdout
    assert "nw!store+0x" in out.stdout
    assert "analyze(), stack(tid=None)" in out.stdout + out.stderr  # the banner names the helpers


@pytest.mark.shared
def test_shell_refuses_dumps_drgn_does_not_read() -> None:
    r = run_nmf("shell", str(CORPUS / "rust-minidump" / "test.dmp"), input="")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "drgn" in r.stderr
