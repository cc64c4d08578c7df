"""``notmyfault list`` / ``info``: the crashes a machine kept, from every place Linux keeps them.

This machine runs no systemd-coredump and no apport, so their places are laid out here as those
tools leave them, around a real core: systemd-coredump's store (core.COMM.UID.BOOT_ID.PID.USEC.zst,
zstd-compressed, its fields in user.coredump.* extended attributes where the file system keeps
them), a journal export of its entries (``journalctl -o json``: one for the stored core, one whose
core was not stored), an apport report (/var/crash/*.crash), and notmyfault's own dump directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_json, run_nmf
from tests.coretools import null_write_core
from tests.test_packed_dumps import apport_report

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
BOOT = "0123456789abcdef0123456789abcdef"
T0 = 1764600000  # 2025-12-01 14:40 UTC


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("machine")
    core = null_write_core(root)
    store, crash_dir, dumps = root / "coredump", root / "crash", root / "dumps"
    for d in (store, crash_dir, dumps):
        d.mkdir()
    stored = store / f"core.nw.1000.{BOOT}.4242.{T0 * 1_000_000}.zst"
    subprocess.run(["zstd", "-q", str(core), "-o", str(stored)], check=True)
    xattrs = True
    try:
        for key, value in {"pid": "4242", "uid": "1000", "signal": "11", "exe": "/usr/bin/nw"}.items():
            os.setxattr(stored, f"user.coredump.{key}", value.encode())
    except OSError:
        xattrs = False
    entries = [
        {
            "MESSAGE_ID": "fc2e22bc6ee647b6b90729ab34a250b1",
            "MESSAGE": "Process 4242 (nw) of user 1000 dumped core.",
            "COREDUMP_PID": "4242",
            "COREDUMP_UID": "1000",
            "COREDUMP_SIGNAL": "11",
            "COREDUMP_EXE": "/usr/bin/nw",
            "COREDUMP_COMM": "nw",
            "COREDUMP_TIMESTAMP": str(T0 * 1_000_000),
            "COREDUMP_FILENAME": str(stored),
            "__REALTIME_TIMESTAMP": str(T0 * 1_000_000 + 5),
        },
        {
            "MESSAGE_ID": "fc2e22bc6ee647b6b90729ab34a250b1",
            "MESSAGE": "Process 5151 (big) of user 0 dumped core.",
            "COREDUMP_PID": "5151",
            "COREDUMP_UID": "0",
            "COREDUMP_SIGNAL": "6",
            "COREDUMP_EXE": "/usr/bin/big",
            "COREDUMP_TIMESTAMP": str((T0 + 60) * 1_000_000),
            "__REALTIME_TIMESTAMP": str((T0 + 60) * 1_000_000),
        },
        {"MESSAGE_ID": "something else", "MESSAGE": "unrelated"},
    ]
    journal = root / "journal.json"
    journal.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    report = apport_report(
        core,
        crash_dir / "_usr_bin_nw.1000.crash",
        {"Date": "Mon Dec  1 15:00:00 2025", "ExecutablePath": "/usr/bin/nw", "Signal": "11",
         "ProcStatus": "Name:\tnw\nPid:\t6161\nUid:\t1000\t1000\t1000\t1000"},
    )  # fmt: skip
    ours = dumps / "core.null-deref.7272.20251201-160000"
    shutil.copy(core, ours)
    os.utime(ours, (T0 + 7200, T0 + 7200))
    args = ["--coredump-dir", str(store), "--crash-dir", str(crash_dir), "--dump-dir", str(dumps)]
    return {
        "args": args,
        "journal": str(journal),
        "stored": stored,
        "report": report,
        "ours": ours,
        "xattrs": xattrs,
    }


def _list(machine: dict[str, Any], *more: str) -> list[dict[str, Any]]:
    r, out = run_json("list", *machine["args"], "--journal", machine["journal"], *more)
    assert r.returncode == 0, r.stderr
    crashes: list[dict[str, Any]] = out["crashes"]
    return crashes


def test_list_shows_every_kept_crash_newest_first(machine: dict[str, Any]) -> None:
    crashes = _list(machine)
    got = [(c["source"], c["pid"], c["signal_name"], c["executable"], c["present"]) for c in crashes]
    assert got == [
        ("notmyfault", crashes[0]["pid"], "SIGSEGV", crashes[0]["executable"], True),
        ("apport", 6161, "SIGSEGV", "/usr/bin/nw", True),
        ("journal", 5151, "SIGABRT", "/usr/bin/big", False),
        ("systemd-coredump", 4242, "SIGSEGV", "/usr/bin/nw", True),  # the journal entry and its file: one
    ]
    stored = crashes[3]
    assert stored["path"] == str(machine["stored"])
    assert stored["size"] == machine["stored"].stat().st_size
    assert stored["uid"] == 1000
    assert stored["time"] == pytest.approx(1764600000)
    assert "not stored" in crashes[2]["note"]
    assert crashes[0]["executable"].endswith("nw")


def test_list_verdicts_and_text(machine: dict[str, Any]) -> None:
    crashes = _list(machine, "--verdict")
    present = [c for c in crashes if c["present"]]
    assert [c["verdict"]["class"] for c in present] == ["NULL_POINTER_WRITE"] * 3  # bare, apport, zstd
    assert {c["verdict"]["blamed"] for c in present} == {"nw!store+0x0"}
    assert "verdict" not in crashes[2]
    text = run_nmf("list", *machine["args"], "--journal", machine["journal"]).stdout
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "TIME", "PID", "SIG", "COREFILE", "SIZE", "SOURCE", "EXE"]
    assert "missing" in lines[3]
    assert "/usr/bin/big" in lines[3]
    assert len(lines) == 5


def test_info_by_id_pid_path_and_name(machine: dict[str, Any]) -> None:
    """info takes what coredumpctl matches: an ID from list (or a unique prefix), a pid, a path, an
    executable's name; and shows the record, then the dump's whole analysis page."""
    crashes = _list(machine)
    stored = crashes[3]
    assert re.fullmatch(r"[0-9a-f]{8}", stored["id"])
    journal = ["--journal", machine["journal"]]
    for ident in (stored["id"], stored["id"][:5], "4242", str(machine["stored"])):
        r, one = run_json("info", ident, *machine["args"], *journal)
        assert r.returncode == 0, (ident, r.stderr)
        assert (one["kind"], one["id"], one["pid"]) == ("crash-info", stored["id"], 4242), ident
        assert one["verdict"]["class"] == "NULL_POINTER_WRITE"
        assert one["analysis"]["blamed"]["function"] == "store"  # the whole analysis, not one line
    _, by_pid = run_json("info", "6161", *machine["args"], *journal)
    assert by_pid["source"] == "apport"
    _, by_path = run_json("info", str(machine["ours"]), *machine["args"], *journal)
    assert by_path["source"] == "notmyfault"
    _, by_name = run_json("info", "big", *machine["args"], *journal)  # the executable's name
    assert (by_name["pid"], by_name["analysis"], by_name["verdict"]) == (5151, None, None)
    text = run_nmf("info", stored["id"], *machine["args"], *journal).stdout
    assert f"          id: {stored['id']}\n" in text
    assert "verdict: NULL_POINTER_WRITE nw!store+0x0" in text
    assert "Crash Analysis (notmyfault analyze)" in text
    assert "Probably caused by" in text
    for nothing in ("99999", "nosuch", "ffff"):
        r = run_nmf("info", nothing, *machine["args"], *journal)
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1
        assert "no kept crash" in r.stderr


def test_ids_stay_as_crashes_come_and_list_matches_and_since(machine: dict[str, Any], tmp_path: Path) -> None:
    """IDs are not positions: a newer crash, listed first, leaves every other ID as it was (and the
    journal entry of a stored core keeps the core's ID once the core is gone). MATCH and --since
    narrow the list, --since in journalctl's forms."""
    before = {c["pid"]: c["id"] for c in _list(machine)}
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    for f in Path(machine["args"][-1]).iterdir():
        shutil.copy2(f, dumps / f.name)
    newer = dumps / "core.abort.9393.20261201-000000"
    shutil.copy(machine["ours"], newer)  # now: the newest
    args = [*machine["args"][:-1], str(dumps)]
    r, out = run_json("list", *args, "--journal", machine["journal"])
    after = out["crashes"]
    assert after[0]["path"] == str(newer)
    assert {c["pid"]: c["id"] for c in after[1:]} == before
    assert len({c["id"] for c in after}) == len(after)
    gone = tmp_path / "journal-only.json"  # the stored core vacuumed: its journal entry remains
    gone.write_text(
        Path(machine["journal"]).read_text().replace(str(machine["stored"]), str(tmp_path / "vacuumed"))
    )
    _, only = run_json("list", "--coredump-dir", str(tmp_path / "none"), "--journal", str(gone),
                       "--crash-dir", str(tmp_path / "none"), "--dump-dir", str(tmp_path / "none"))  # fmt: skip
    assert {c["pid"]: c["id"] for c in only["crashes"]}[4242] == before[4242]

    def pids(*more: str) -> list[int]:
        r, listed = run_json("list", *machine["args"], "--journal", machine["journal"], *more)
        assert r.returncode == 0, r.stderr
        return [c["pid"] for c in listed["crashes"]]

    assert pids("4242") == [4242]
    assert pids("big", "6161") == [6161, 5151]
    assert pids("/usr/bin/nw") == [6161, 4242]
    assert pids(before[5151]) == [5151]
    assert pids("--since", f"@{T0 + 30}") == [pids()[0], 6161, 5151]
    assert pids("--since", "2025-12-01 14:40:30Z") == pids("--since", f"@{T0 + 30}")
    assert pids("--since", "1 hour ago") == pids("--since", "-1h") == pids("--since", "today") == []
    assert pids("--since", "2000-01-01") == pids()
    for bad in ("garbage", "", "@nan", "1 fortnight ago"):
        r = run_nmf("list", *machine["args"], "--journal", machine["journal"], "--since", bad)
        assert r.returncode == 2, bad
        assert "is not a time" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_truncated_core_says_so_in_list_and_info(machine: dict[str, Any], tmp_path: Path) -> None:
    """A core cut short (here by half; and one systemd-coredump says it cut) is 'truncated', not
    'present', in list's COREFILE column and JSON, and info's page starts with the warning."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    whole = Path(machine["ours"]).read_bytes()
    cut = dumps / "core.null-deref.8484.20251201-170000"
    cut.write_bytes(whole[: len(whole) // 2])
    os.utime(cut, (T0 + 9000, T0 + 9000))
    journal = tmp_path / "journal.json"
    entry = {"MESSAGE_ID": "fc2e22bc6ee647b6b90729ab34a250b1", "COREDUMP_PID": "5252", "COREDUMP_SIGNAL": "11",
             "COREDUMP_EXE": "/usr/bin/huge", "COREDUMP_TIMESTAMP": str((T0 + 100) * 1_000_000),
             "COREDUMP_TRUNCATED": "1"}  # fmt: skip
    journal.write_text(json.dumps(entry) + "\n")
    args = ["--coredump-dir", str(tmp_path / "none"), "--crash-dir", str(tmp_path / "none"),
            "--dump-dir", str(dumps), "--journal", str(journal)]  # fmt: skip
    _, out = run_json("list", *args)
    ours, logged = out["crashes"]
    assert (ours["path"], ours["present"], ours["truncated"]) == (str(cut), True, True)
    assert ours["truncation"].startswith("the core is truncated: the file ends at")
    assert (logged["pid"], logged["present"], logged["truncated"]) == (5252, False, True)
    assert "cut the core short" in logged["truncation"]
    assert _list(machine)[0]["truncated"] is False  # a whole core says so
    lines = run_nmf("list", *args).stdout.splitlines()
    assert lines[1].split()[5] == "truncated"
    page = run_nmf("info", str(cut), *args).stdout
    assert page.startswith("WARNING: the core is truncated: the file ends at"), page[:200]
    assert "   truncated: True" in page


def test_store_fields_come_from_xattrs(machine: dict[str, Any], tmp_path: Path) -> None:
    """Without the journal, the store file alone: its xattrs give the executable's path (the file
    name has only the command name)."""
    empty = tmp_path / "empty.json"
    empty.write_text("")
    r, out = run_json("list", *machine["args"], "--journal", str(empty))
    assert r.returncode == 0
    stored = next(c for c in out["crashes"] if c["source"] == "systemd-coredump")
    assert stored["pid"] == 4242
    assert stored["executable"] == ("/usr/bin/nw" if machine["xattrs"] else "nw")
    assert stored["signal"] == (11 if machine["xattrs"] else None)
