"""The catalog as data, the CLI around it, and bad input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from notmyfault import __version__
from notmyfault.base.sigcodes import parse_signal, si_code_name, si_code_value
from notmyfault.base.units import format_size, parse_size
from notmyfault.faults.catalog import CATALOG, UnknownCrashType, lookup
from notmyfault.native import myfault
from tests.conftest import run_json, run_nmf

SPEC_TYPES = [
    (1, "high-irql"),
    (2, "buffer-overflow"),
    (3, "code-overwrite"),
    (4, "stack-trash"),
    (5, "null-deref"),
    (6, "stack-overflow"),
    (7, "breakpoint"),
    (8, "double-free"),
]
SPEC_MORE = [
    "use-after-free",
    "abort",
    "divide-by-zero",
    "illegal-instruction",
    "bus-error",
    "jump-to-null",
    "signal",
]


def test_catalog_has_exactly_the_specified_types() -> None:
    assert [(c.number, c.name) for c in CATALOG if c.number is not None] == SPEC_TYPES
    assert [c.name for c in CATALOG if c.number is None] == SPEC_MORE


def test_catalog_matches_the_native_table() -> None:
    assert tuple(c.name for c in CATALOG) == myfault.faults()


def test_catalog_functions_are_exported_by_myfault() -> None:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", myfault.__file__], capture_output=True, text=True, check=True
    )
    exported = set(re.findall(r" T (myfault_\w+)", out.stdout))
    for c in CATALOG:
        assert c.function in exported
        assert c.frame is None or c.frame in exported
        assert c.scan_frame is None or c.scan_frame in exported
    assert "myfault_do_bug" in exported


def test_catalog_entries_are_complete() -> None:
    for c in CATALOG:
        assert c.summary
        assert c.fault
        assert c.analog
        assert re.fullmatch(r"[A-Z][A-Z_]+", c.outcome.crash_class)
        si_code_value(c.outcome.signal, c.outcome.si_code_for("x86_64"))  # a real si_code name
        si_code_value(c.outcome.signal, c.outcome.si_code_for("aarch64"))


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("1", "high-irql"),
        ("high-irql", "high-irql"),
        ("HIGH_IRQL", "high-irql"),
        ("8", "double-free"),
        ("jump-to-null", "jump-to-null"),
    ],
)
def test_lookup_by_number_or_name(key: str, name: str) -> None:
    assert lookup(key).name == name


@pytest.mark.parametrize("key", ["0", "9", "42", "nope", ""])
def test_lookup_unknown_lists_valid(key: str) -> None:
    with pytest.raises(UnknownCrashType, match="valid types: 1 high-irql, 2 buffer-overflow"):
        lookup(key)


def test_version_and_module_entry() -> None:
    r = run_nmf("--version")
    assert r.returncode == 0
    assert __version__ in r.stdout
    r2 = subprocess.run(
        [sys.executable, "-m", "notmyfault", "--help"], capture_output=True, text=True, check=False
    )
    assert r2.returncode == 0
    assert "crash" in r2.stdout
    assert "dumpconfig" in r2.stdout


def test_crash_help_lists_catalog() -> None:
    r = run_nmf("crash", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for c in CATALOG:
        assert c.name in text


def test_crash_list_text_and_json() -> None:
    r = run_nmf("crash", "--list", "-v")
    assert r.returncode == 0
    for c in CATALOG:
        assert c.name in r.stdout
        assert c.summary in r.stdout
    assert "SIGSEGV/SEGV_MAPERR INVALID_MEMORY_READ, blames myfault_high_irql" in r.stdout
    _r2, data = run_json("crash", "--list")
    assert data["schema_version"] == 4
    assert data["kind"] == "catalog"
    assert [t["name"] for t in data["crash_types"]] == [c.name for c in CATALOG]
    assert data["crash_types"][0]["number"] == 1
    assert data["crash_types"][0]["signal"] == "SIGSEGV"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crash", "99"], "unknown crash type '99'; valid types: 1 high-irql"),
        (["crash", "bogus"], "valid types:"),
        (["crash"], "give a crash type"),
        (["crash", "1", "--signal", "9"], "--signal applies only to the crash type 'signal'"),
        (["crash", "signal", "--signal", "SIGCHLD"], "SIGCHLD does not end a process by default"),
        (["crash", "signal", "--signal", "FOO"], "unknown signal 'FOO'"),
        (["crash", "signal", "--signal", "99"], "out of range"),
        (["crash", "5", "--ballast", "lots"], "cannot read size 'lots'"),
        (["crash", "5", "--ballast", "100TB"], "below the safety floor"),
    ],
)
def test_bad_input_one_line_error(args: list[str], message: str, dump_dir) -> None:
    r = run_nmf(*args, "--dump-dir", str(dump_dir))
    assert r.returncode == 2
    assert r.stderr.startswith("notmyfault: error: ")
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert list(dump_dir.iterdir()) == []  # nothing crashed


def test_unknown_flag_is_usage_error() -> None:
    r = run_nmf("crash", "1", "--no-such-flag")
    assert r.returncode == 2
    assert "No such option" in r.stderr
    assert "Traceback" not in r.stderr


def test_signal_vocabulary() -> None:
    assert parse_signal("9") == 9
    assert parse_signal("sigquit") == signal.SIGQUIT
    assert parse_signal("QUIT") == signal.SIGQUIT
    assert parse_signal("SIGRTMIN+2") == signal.SIGRTMIN + 2
    assert si_code_name(11, 1) == "SEGV_MAPERR"
    assert si_code_name(11, 2) == "SEGV_ACCERR"
    assert si_code_name(7, 2) == "BUS_ADRERR"
    assert si_code_name(5, 0x80) == "SI_KERNEL"
    assert si_code_name(6, -6) == "SI_TKILL"
    assert si_code_name(11, 0) == "SI_USER"


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("4096", 4096),
        ("64KB", 64000),
        ("64KiB", 65536),
        ("1000KB", 1_000_000),
        ("200MB", 200_000_000),
        ("1.5GiB", 1610612736),
        ("2M", 2 * 1024 * 1024),
        ("10 mb", 10_000_000),
    ],
)
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "MB", "-5MB", "5XB", "1e9"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read size"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(200 * 1024 * 1024) == "200.0 MiB"


def test_json_report_is_valid_json_on_no_dump(dump_dir) -> None:
    r = run_nmf("crash", "signal", "--signal", "TERM", "--json", "--dump-dir", str(dump_dir))
    data = json.loads(r.stdout)
    assert data["dump"] is None
    assert data["reason"]
    assert r.returncode == 1
