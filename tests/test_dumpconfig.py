"""notmyfault dumpconfig: against this machine's real settings, and against given patterns."""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
from pathlib import Path

import pytest

from notmyfault.capture.config import Verdict, assess, probe, read_systemd_coredump, with_pattern
from tests.conftest import run_json, run_nmf

SYSTEMD = "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h"
APPORT = "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E"


def test_real_settings_match_proc(dump_dir: Path) -> None:
    r, data = run_json("dumpconfig", "--dump-dir", str(dump_dir))
    assert r.returncode == 0
    assert data["kind"] == "dumpconfig"
    assert data["schema_version"] == 4
    assert data["core_pattern"]["raw"] == Path("/proc/sys/kernel/core_pattern").read_text().rstrip("\n")
    assert data["core_uses_pid"] == bool(int(Path("/proc/sys/kernel/core_uses_pid").read_text()))
    assert data["core_pipe_limit"] == int(Path("/proc/sys/kernel/core_pipe_limit").read_text())
    assert data["suid_dumpable"] == int(Path("/proc/sys/fs/suid_dumpable").read_text())
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)  # inherited by the command
    assert data["rlimit_core"]["soft"] == (None if soft == resource.RLIM_INFINITY else soft)
    assert data["rlimit_core"]["hard"] == (None if hard == resource.RLIM_INFINITY else hard)
    assert int(data["coredump_filter"], 16) == int(Path("/proc/self/coredump_filter").read_text(), 16)
    assert data["dump_dir"] == str(dump_dir)
    assert data["dump_dir_writable"] is True
    assert abs(data["free_bytes"] - shutil.disk_usage(dump_dir).free) < 256 * 1024 * 1024
    assert data["assessment"]["verdict"] in {v.value for v in Verdict}


def test_real_verdict_agrees_with_a_real_crash(dump_dir: Path) -> None:
    """The verdict is a promise: if it says will-dump, a crash leaves a file, and vice versa."""
    _, config = run_json("dumpconfig", "--dump-dir", str(dump_dir))
    r, crash = run_json("crash", "abort", "--dump-dir", str(dump_dir))
    if config["assessment"]["verdict"] == "will-dump":
        assert crash["dump"] is not None
        assert Path(crash["dump"]["path"]).is_file()
    elif config["assessment"]["verdict"] == "no-dump":
        assert crash["dump"] is None
        assert r.returncode == 1


def test_text_page(dump_dir: Path) -> None:
    r = run_nmf("dumpconfig", "--dump-dir", str(dump_dir))
    assert r.returncode == 0
    for label in (
        "core_pattern",
        "core_uses_pid",
        "core_pipe_limit",
        "core size limit",
        "coredump_filter",
        "free space there",
        "kernel crash dump",
        "Verdict:",
    ):
        assert label in r.stdout


def _settings(dump_dir: Path, raw: str):
    return with_pattern(probe(str(dump_dir)), raw)


def test_relative_file_pattern(dump_dir: Path) -> None:
    a = assess(_settings(dump_dir, "core.%e.%p"))
    assert a.verdict is Verdict.WILL_DUMP
    assert a.where == str(dump_dir)


def test_absolute_writable_pattern(tmp_path: Path, dump_dir: Path) -> None:
    a = assess(_settings(dump_dir, f"{tmp_path}/core.%p"))
    assert a.verdict is Verdict.WILL_DUMP
    assert a.where == f"{tmp_path}/core.%p"


def test_absolute_missing_directory(dump_dir: Path) -> None:
    a = assess(_settings(dump_dir, "/nonexistent-notmyfault/cores/core.%p"))
    assert a.verdict is Verdict.NO_DUMP
    assert "cannot write" in a.problems[0]


@pytest.mark.parametrize("raw", ["", "|/bin/false"])
def test_disabled_patterns(raw: str, dump_dir: Path) -> None:
    a = assess(_settings(dump_dir, raw))
    assert a.verdict is Verdict.NO_DUMP
    assert a.where is None
    assert "sysctl -w kernel.core_pattern=core" in a.problems[0]


def test_systemd_pattern(dump_dir: Path) -> None:
    s = _settings(dump_dir, SYSTEMD)
    a = assess(s)
    assert s.systemd is not None
    if s.systemd.storage == "none":
        assert a.verdict is Verdict.NO_DUMP
    else:
        assert a.verdict is Verdict.WILL_DUMP
        assert "/var/lib/systemd/coredump" in (a.where or "")
    if shutil.which("coredumpctl") is None:
        assert any("coredumpctl is not installed" in n for n in a.notes)
    none = dataclasses.replace(s, systemd=dataclasses.replace(s.systemd, storage="none"))
    assert assess(none).verdict is Verdict.NO_DUMP
    assert "Storage=none" in assess(none).problems[0]


def test_systemd_config_files(tmp_path: Path) -> None:
    conf = tmp_path / "etc/systemd/coredump.conf.d"
    conf.mkdir(parents=True)
    (tmp_path / "etc/systemd/coredump.conf").write_text("[Coredump]\nStorage=journal\nCompress=no\n")
    (conf / "50-x.conf").write_text("[Coredump]\nStorage=none\n")
    sd = read_systemd_coredump(str(tmp_path))
    assert (sd.storage, sd.compress, sd.process_size_max) == ("none", "no", "2G")


def test_apport_and_socket(dump_dir: Path) -> None:
    a = assess(_settings(dump_dir, APPORT))
    assert a.verdict is Verdict.MAY_DUMP
    assert "apport" in a.summary
    s = assess(_settings(dump_dir, "@/run/coredump.socket"))
    assert s.verdict is Verdict.MAY_DUMP
    assert "/run/coredump.socket" in s.summary


def test_hard_limit_zero_without_privilege(dump_dir: Path) -> None:
    s = dataclasses.replace(_settings(dump_dir, "core"), rlimit_core=(0, 0), can_raise_hard_limit=False)
    a = assess(s)
    assert a.verdict is Verdict.NO_DUMP
    assert "hard core size limit is 0" in a.problems[0]
    tiny = dataclasses.replace(s, rlimit_core=(4096, 4096))
    assert "cut off" in assess(tiny).problems[0]
    sd = dataclasses.replace(_settings(dump_dir, SYSTEMD), rlimit_core=(0, 0), can_raise_hard_limit=False)
    assert assess(sd).verdict is Verdict.NO_DUMP


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [("core", "will-dump"), ("|/bin/false", "no-dump"), ("", "no-dump"), (APPORT, "may-dump")],
)
def test_cli_pattern_option(raw: str, verdict: str, dump_dir: Path) -> None:
    r, data = run_json("dumpconfig", "--pattern", raw, "--dump-dir", str(dump_dir))
    assert r.returncode == 0
    assert data["core_pattern"]["raw"] == raw
    assert data["assessment"]["verdict"] == verdict


needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to drop CAP_SYS_RESOURCE",
)


@needs_setpriv
def test_real_crash_with_unraisable_zero_limit(dump_dir: Path) -> None:
    """A real crash where the core limit is 0 and may not be raised: no dump, and the reason."""
    import subprocess
    import sys

    def zero_core() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    cmd = [
        "setpriv",
        "--bounding-set",
        "-sys_resource",
        "--inh-caps",
        "-sys_resource",
        "--",
        sys.executable,
        "-m",
        "notmyfault",
        "crash",
        "1",
        "--json",
        "--dump-dir",
        str(dump_dir),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=zero_core, timeout=60, check=False)
    import json

    data = json.loads(r.stdout)
    assert r.returncode == 1
    assert data["signal"] == 11
    assert data["core_dumped"] is False
    assert data["dump"] is None
    assert "hard core size limit is 0" in data["reason"]
    assert list(dump_dir.iterdir()) == []


def test_unwritable_dump_dir() -> None:
    r = run_nmf("crash", "1", "--dump-dir", "/dev/null/dumps")
    assert r.returncode == 2
    assert "cannot write the dump directory /dev/null/dumps" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@needs_setpriv
def test_crash_needs_no_privilege(dump_dir: Path) -> None:
    """With every capability dropped, crash still leaves its dump (it only touches its own process)."""
    import json
    import subprocess
    import sys

    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("the hard core limit is 0 here, so an unprivileged crash cannot dump")
    no_caps = ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all", "--no-new-privs", "--"]
    nmf = [sys.executable, "-m", "notmyfault"]
    cmd = [*no_caps, *nmf, "crash", "1", "--json", "--dump-dir", str(dump_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    data = json.loads(r.stdout)
    assert r.returncode == 0, data["reason"]
    assert Path(data["dump"]["path"]).is_file()
    cfg = subprocess.run(
        [*no_caps, *nmf, "dumpconfig", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(cfg.stdout)["can_raise_hard_limit"] is False


def test_a_nearly_full_filesystem_is_no_dump(dump_dir: Path) -> None:
    """The kernel cuts a core short on a full disk (and still says it dumped one): the verdict says so
    instead of promising a dump ("free space 0 B" used to come with will-dump)."""
    import dataclasses

    s = dataclasses.replace(_settings(dump_dir, "core.%e.%p"), free_bytes=5_000_000)
    a = assess(s)
    assert a.verdict is Verdict.NO_DUMP
    assert a.problems[0].startswith(f"the filesystem of {dump_dir} has 5000000 bytes free")
    assert assess(dataclasses.replace(s, free_bytes=10**10)).verdict is Verdict.WILL_DUMP
