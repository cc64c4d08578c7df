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


def test_info_by_id_pid_and_path(machine: dict[str, Any]) -> None:
    r, one = run_json("info", "4", *machine["args"], "--journal", machine["journal"])
    assert r.returncode == 0, r.stderr
    assert one["kind"] == "crash-info"
    assert one["pid"] == 4242
    assert one["verdict"]["class"] == "NULL_POINTER_WRITE"
    _, by_pid = run_json("info", "6161", *machine["args"], "--journal", machine["journal"])
    assert by_pid["source"] == "apport"
    _, by_path = run_json("info", str(machine["ours"]), *machine["args"], "--journal", machine["journal"])
    assert by_path["source"] == "notmyfault"
    text = run_nmf("info", "4", *machine["args"], "--journal", machine["journal"]).stdout
    assert "verdict: NULL_POINTER_WRITE nw!store+0x0" in text
    r = run_nmf("info", "99999", *machine["args"], "--journal", machine["journal"])
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "no kept crash" in r.stderr


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
