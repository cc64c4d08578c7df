"""Strings from a dump are hostile: a program whose file name holds a terminal escape (OSC: retitle
the window) crashes, and no page of ours writes that escape to the terminal raw; gdb shows such
bytes as escapes too.  JSON stays valid and keeps the string exact."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests import hostile
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


# ---------------------------------------------------------------- the hostile-strings generator


@pytest.fixture(scope="module")
def cores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tests/hostile.py's program (HTML, SQL, escapes and invalid UTF-8 in its file name and command
    line; a 64 KB function name; an assert message with all of them and a NUL), crashed two ways."""
    return hostile.make(tmp_path_factory.mktemp("hostile"))


def _nmf(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "notmyfault", *args], capture_output=True, timeout=180,
                          check=False)  # fmt: skip


def _raw(data: bytes) -> list[str]:
    """What a terminal must never be sent: a dump's escapes, C1 controls, bidi overrides, bytes that
    are not UTF-8 (the page must decode)."""
    text = data.decode()  # raises on invalid UTF-8
    return [c for c in hostile.RAW if c in text] + [
        f"{ord(c):#x}" for c in text if not c.isprintable() and c not in "\n\t"
    ]


PAGES = (["analyze"], ["analyze", "-v"], ["stack"], ["modules"], ["regs"], ["vm"], ["search", "pwned"],
         ["disasm", "main"], ["poolused"], ["stack", "--all"])  # fmt: skip


@pytest.mark.parametrize("which", [0, 1], ids=["segv", "abort"])
def test_hostile_strings_reach_no_terminal_raw(cores: tuple[Path, Path], which: int) -> None:
    core = str(cores[which])
    for command in PAGES:
        r = _nmf(command[0], core, *command[1:])
        assert r.returncode == 0, (command, r.stderr[-400:])
        assert _raw(r.stdout) == [], command
        assert _raw(r.stderr) == [], command
    page = _nmf("analyze", core).stdout.decode()
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202e\\xff\\xfe" in page  # escaped, as gdb shows them
    assert hostile.HTML in page  # text on a terminal: shown as it is
    if which == 1:  # the message up to its NUL, as glibc reads it; its last byte was not UTF-8
        shown = next(line for line in page.splitlines() if line.startswith("ABORT_MESSAGE: "))
        assert shown == (f"ABORT_MESSAGE: {hostile.HTML} {hostile.SQL} "
                         "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202e\\xff")  # fmt: skip
    else:
        assert "NULL_POINTER_WRITE" in page  # the code was read from the file the odd name names
        bucket = next(line for line in page.splitlines() if line.startswith("BUCKET_ID: "))
        assert len(bucket) < 600
        assert "...[65536 chars, " in bucket  # a 64 KB name cut, with a digest of the whole


def test_hostile_strings_in_json_database_and_html(cores: tuple[Path, Path], tmp_path: Path) -> None:
    segv, abort = (str(c) for c in cores)
    exe_shown = hostile.NAME[:-2].decode() + "\\xff\\xfe"  # the bytes that are not UTF-8 as \xNN
    for core in (segv, abort):
        r = _nmf("analyze", core, "--json")
        assert r.returncode == 0
        a = json.loads(r.stdout.decode())  # strict UTF-8, valid JSON
        json.dumps(a, ensure_ascii=False).encode()  # and no lone surrogate in any string
        assert a["process"]["executable"].endswith("/" + exe_shown)
    db = tmp_path / "t.db"
    r = _nmf("triage", "ingest", "--db", str(db), segv, abort)
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as conn:  # the SQL in the names was a parameter, never a statement
        rows = conn.execute("SELECT executable, status FROM dumps ORDER BY path").fetchall()
    assert rows == [(rows[0][0], "ok"), (rows[0][0], "ok")]
    assert rows[0][0].endswith("/" + exe_shown)
    for command in (["buckets"], ["buckets", "--examples", "5"], ["show"]):
        out = _nmf("triage", *command, "--db", str(db))
        if command[0] == "show":
            bucket = json.loads(_nmf("triage", "buckets", "--json", "--db", str(db)).stdout)["buckets"][0][
                "id"
            ]
            out = _nmf("triage", "show", bucket, "--db", str(db))
        assert out.returncode == 0, (command, out.stderr)
        assert _raw(out.stdout) == [], command
    page = tmp_path / "r.html"
    assert _nmf("triage", "report", "--html", str(page), "--db", str(db)).returncode == 0
    text = page.read_text()
    tags = _Tags()
    tags.feed(text)
    assert "img" not in tags.seen  # the HTML in a name is text, not a tag
    assert tags.seen <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "thead",
                         "tbody", "tr", "th", "td", "span", "div", "code", "svg", "rect", "text", "line",
                         "input", "script", "section", "details", "summary", "a", "g", "ul", "li", "small",
                         "b", "polyline", "path", "label", "br", "em", "strong", "header", "footer", "pre"}  # fmt: skip
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert [c for c in hostile.RAW if c in text] == []


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)


def test_hostile_windows_driver_names(tmp_path: Path) -> None:
    """The same strings as a Windows kernel dump's driver name (UTF-16 in the module list): blamed,
    bucketed and shown, never raw."""
    from tests.windump_synth import seed_d1

    d = seed_d1(64)
    evil = f"\\??\\C:\\{hostile.HTML}{hostile.SQL}{hostile.ESCAPES}.sys"
    d.drivers[1] = (evil, *d.drivers[1][1:])
    dump = str(d.write(tmp_path / "evil.dmp"))
    for command in PAGES[:3]:
        r = _nmf(command[0], dump, *command[1:])
        assert r.returncode == 0, (command, r.stderr)
        assert _raw(r.stdout) == [], command
    page = _nmf("analyze", dump).stdout.decode()
    assert "\\x1b]0;pwned\\x07" in page
    a = json.loads(_nmf("analyze", dump, "--json").stdout)
    assert f"{hostile.HTML}{hostile.SQL}{hostile.ESCAPES}.sys" in a["probably_caused_by"]  # JSON: exact
    db = tmp_path / "t.db"
    assert _nmf("triage", "ingest", "--db", str(db), dump).returncode == 0
    assert _raw(_nmf("triage", "buckets", "--db", str(db)).stdout) == []
    page_file = tmp_path / "r.html"
    assert _nmf("triage", "report", "--html", str(page_file), "--db", str(db)).returncode == 0
    text = page_file.read_text()
    assert [c for c in hostile.RAW if c in text] == []
    assert "&lt;img src=x onerror" in text
