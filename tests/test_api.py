"""The public API: docs/api.md's examples run on a real core, and the API tells what the CLI prints."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import notmyfault
from tests.conftest import run_json

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "api.md"
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The core that ``notmyfault crash null-deref`` leaves (the one docs/api.md reads)."""
    d = tmp_path_factory.mktemp("api-dump")
    _, report = run_json("crash", "null-deref", "--dump-dir", str(d))
    assert report["dump"] is not None, report["reason"]
    return str(report["dump"]["path"])


def doc_examples() -> str:
    """The ``pycon`` blocks of docs/api.md, in order, as one doctest text."""
    blocks = re.findall(r"^```pycon\n(.*?)^```", DOC.read_text(), re.M | re.S)
    assert len(blocks) >= 8
    return "\n".join(blocks)


def test_the_api_page_examples_run(core: str) -> None:
    test = doctest.DocTestParser().get_doctest(doc_examples(), {"core": core}, "docs/api.md", str(DOC), 0)
    assert len(test.examples) >= 35
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of docs/api.md's examples failed (see the output above)"


def test_a_wrong_example_fails(core: str) -> None:
    """The doc runner bites: an example whose output differs is counted as failed."""
    test = doctest.DocTestParser().get_doctest(
        ">>> notmyfault.open(core).kind\n'minidump'\n", {"core": core, "notmyfault": notmyfault}, "x", None, 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=lambda s: None)
    assert runner.summarize(verbose=False).failed == 1


def test_the_api_says_what_analyze_prints(core: str) -> None:
    r, printed = run_json("analyze", core)
    assert r.returncode == 0, r.stderr
    with notmyfault.open(core) as dump:
        a = dump.analysis()
        assert (a.crash_class, a.bucket, a.signature) == (
            printed["crash_class"],
            printed["bucket"],
            printed["signature"],
        )
        assert dump.bucket() == printed["bucket"]
        assert [f.location() for f in dump.frames(python=False)] == [
            f["location"] for f in printed["frames"]
        ][: len(dump.frames(python=False))]


@pytest.mark.shared
def test_every_kind_of_dump_opens() -> None:
    """A minidump, a Windows kernel dump and a Linux vmcore's kind; each answers with its own views or
    one line."""
    minidump = CORPUS / "breakpad-linux_null_read_av" / "linux_null_read_av.dmp"
    with notmyfault.open(minidump) as dump:
        assert dump.kind == "minidump"
        assert dump.analysis().crash_class == "NULL_POINTER_READ"
        assert dump.modules().kind == "minidump"
        with pytest.raises(notmyfault.DumpError, match="holds no system memory counters"):
            dump.memory()
    windows = next(CORPUS.glob("rizin-dmp-triage_arm64/*.dmp"))
    with notmyfault.open(windows) as dump:
        assert dump.kind == "windows-kernel-dump"
        assert dump.analysis().crash_class == "MANUALLY_INITIATED_POWER_BUTTON_HOLD"
    with pytest.raises(notmyfault.DumpError, match=r"is a minidump: .* read minidumps"):
        notmyfault.open_core(minidump)


def test_importing_notmyfault_loads_no_analysis() -> None:
    """``import notmyfault`` is cheap: the API's modules load on first use."""
    import subprocess
    import sys

    code = "import sys, notmyfault; print(sorted(m for m in sys.modules if m.startswith('notmyfault')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['notmyfault', 'notmyfault.base', 'notmyfault.base.lazy']"
