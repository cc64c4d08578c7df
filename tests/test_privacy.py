"""Privacy (issue 18, item 3; issue 29): a dump's environment is never shown or stored unless asked
(--show-environment), and triage's redaction rules keep home directories and secrets on command
lines out of its database and report.  The program runs from /…/privacy0/home/alice, its HOME, with
a secret in its environment and tokens and passwords on its command line (after '=', as an option's
next argument, in a URL); the database file itself is searched byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from notmyfault.triage.redact import DEFAULT_REDACTIONS, redact, redact_row
from tests.conftest import run_json, run_nmf
from tests.coretools import NULL_WRITE_SOURCE, unlimited_cores
from tests.test_packed_dumps import apport_report

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
SECRET = "s3cr3t-e7b1c0de"
TOKEN = "Zq8Lw2Vn5Rt7Yp1Kd4Hs9Gm3"  # 24 characters mixing cases and digits
PASSWORDS = ("hunter2", "pw-two-9f3", "pw-three-77", "pw-four-1c")
"""Secrets the command line passes as an option's next argument, after '=', and in a URL."""
ARGS = (f"--token={TOKEN}", TOKEN, "--password", PASSWORDS[0], "--db-password=" + PASSWORDS[1],
        f"https://bob:{PASSWORDS[2]}@example.com/x", "--client-secret", PASSWORDS[3], "-v")  # fmt: skip
REDACTED_ARGS = ("--token=<redacted> <token> --password <redacted> --db-password=<redacted> "
                 "https://<credentials>@example.com/x --client-secret <redacted> -v")  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice's home directory, under a prefix: /tmp/.../privacy0/home/alice."""
    return tmp_path_factory.mktemp("privacy") / "home" / "alice"


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "DEPLOY_SECRET": SECRET,
        "EMPTY": "",
        "HOME": str(home),
    }


@pytest.fixture(scope="module")
def core(home: Path, env: dict[str, str]) -> Path:
    src = home / "src"
    src.mkdir(parents=True)
    # the program writes through NULL when it has at most 5 arguments: this one has 10
    (src / "nw.c").write_text(NULL_WRITE_SOURCE.replace("argc > 5 ?", "argc > 99 ?"))
    subprocess.run(["gcc", "-g", "-O1", "nw.c", "-o", "nw"], cwd=src, check=True, capture_output=True)
    r = subprocess.run(["./nw", *ARGS], cwd=src, env=env,
                       preexec_fn=unlimited_cores, capture_output=True, check=False)  # fmt: skip
    assert r.returncode == -11
    return src / "core"


def test_the_environment_is_shown_only_when_asked(core: Path, env: dict[str, str]) -> None:
    for args in (["analyze"], ["analyze", "-v"], ["stack"], ["modules"], ["vm"]):
        r = run_nmf(*args, str(core))
        assert r.returncode == 0, r.stderr
        assert SECRET not in r.stdout, args
    _, plain = run_json("analyze", str(core))
    assert SECRET not in json.dumps(plain)
    assert "environment" not in plain
    _, shown = run_json("analyze", str(core), "--show-environment")
    assert shown["environment"] == [f"{k}={v}" for k, v in env.items()]  # all of it, in execve's order
    page = run_nmf("analyze", str(core), "--show-environment").stdout
    assert f"ENVIRONMENT:\n  PATH=/usr/bin:/bin\n  LANG=C.UTF-8\n  DEPLOY_SECRET={SECRET}\n" in page


def test_the_environment_is_read_from_the_kernels_own_cores_of_the_interpreter(tmp_path: Path) -> None:
    """A core notmyfault's own crash made: its environment is the child's, exactly."""
    env = {**os.environ, "NMF_PRIVACY_PROBE": SECRET}
    r, out = run_json("crash", "null-deref", "--dump-dir", str(tmp_path), env=env)
    assert out["dump"] is not None, r.stderr
    _, shown = run_json("analyze", out["dump"]["path"], "--show-environment")
    assert f"NMF_PRIVACY_PROBE={SECRET}" in shown["environment"]
    Path(out["dump"]["path"]).unlink()


def test_triage_stores_no_environment_and_redacts_paths_and_tokens(
    core: Path, home: Path, tmp_path: Path
) -> None:
    """The home directory lies under a prefix (not /home/alice): the process's own HOME finds it."""
    db = tmp_path / "t.db"
    r = run_nmf("triage", "ingest", "--db", str(db), str(core))
    assert r.returncode == 0, r.stderr
    stored = db.read_bytes()
    for secret in (SECRET, TOKEN, "alice", *PASSWORDS):
        assert secret.encode() not in stored, secret
    assert f"{home.parent}/<user>/src/nw".encode() in stored
    assert f"COMMAND_LINE: ./nw {REDACTED_ARGS}\n".encode() in stored
    page = tmp_path / "r.html"
    assert run_nmf("triage", "report", "--html", str(page), "--db", str(db)).returncode == 0
    assert "alice" not in page.read_text()
    _, kept = run_json("triage", "buckets", "--db", str(db))
    assert kept["buckets"][0]["bucket"] == "FAULT:nw:store"  # buckets never change with it

    raw = tmp_path / "raw.db"  # --redact none keeps paths and arguments, never the environment
    assert run_nmf("triage", "ingest", "--db", str(raw), "--redact", "none", str(core)).returncode == 0
    stored = raw.read_bytes()
    assert f"{home}/src/nw".encode() in stored
    assert TOKEN.encode() in stored
    assert SECRET.encode() not in stored

    rules = json.loads(run_nmf("triage", "redactions", "--json").stdout)
    mine = tmp_path / "mine.json"  # a rule list of one's own: only the project's name is hidden
    mine.write_text(json.dumps({"redactions": [{"name": "project", "pattern": "alice", "replace": "X"}]}))
    own = tmp_path / "own.db"
    assert run_nmf("triage", "ingest", "--db", str(own), "--redact", str(mine), str(core)).returncode == 0
    stored = own.read_bytes()
    assert f"{home.parent}/X/src/nw".encode() in stored
    assert TOKEN.encode() in stored
    assert {r["name"] for r in rules["redactions"]} >= {"home directory", "token-like argument"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"redactions": [{"name": "x", "pattern": "(", "replace": ""}]}))
    r = run_nmf("triage", "ingest", "--db", str(tmp_path / "b.db"), "--redact", str(bad), str(core))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "bad redaction rules" in r.stderr
    assert not (tmp_path / "b.db").exists()  # refused before anything was made


def test_an_apport_reports_command_line_is_redacted_too(core: Path, tmp_path: Path) -> None:
    """apport's ProcCmdline, on the page beside the process's own command line: the same rules."""
    report = apport_report(core, tmp_path / "_usr_bin_nw.0.crash",
                           {"ExecutablePath": "/usr/bin/nw", "ProcCmdline": "nw " + " ".join(ARGS)})  # fmt: skip
    db = tmp_path / "t.db"
    r = run_nmf("triage", "ingest", "--db", str(db), str(report))
    assert r.returncode == 0, r.stderr
    stored = db.read_bytes()
    for secret in (TOKEN, *PASSWORDS):
        assert secret.encode() not in stored, secret
    assert f"  ProcCmdline: nw {REDACTED_ARGS}".encode() in stored  # the page's last line


@pytest.mark.parametrize(
    ("text", "home", "redacted"),
    [
        ("/home/alice/src/nw", None, "/home/<user>/src/nw"),
        ("/Users/alice/x /var/home/bob", None, "/Users/<user>/x /var/home/<user>"),
        ("PATH=/usr/bin:/home/alice/bin", None, "PATH=/usr/bin:/home/<user>/bin"),
        ("'/home/alice' (/home/bob/lib.so)", None, "'/home/<user>' (/home/<user>/lib.so)"),
        # /home/ inside a path is no home directory: left as it is
        ("/tmp/x/home/.local/state/nw", None, "/tmp/x/home/.local/state/nw"),
        ("/srv/backup/home/alice/f", None, "/srv/backup/home/alice/f"),
        ("./home/alice/f", None, "./home/alice/f"),
        # the process's own HOME, wherever it lies, and only at a path's start and whole
        ("/tmp/x/home/.local/state/nw", "/tmp/x/home", "/tmp/x/<user>/.local/state/nw"),
        (
            "/srv/alice/bin/nw /srv/alicex /a/srv/alice",
            "/srv/alice/",
            "/srv/<user>/bin/nw /srv/alicex /a/srv/alice",
        ),
        ("/root/core", "/root", "/<user>/core"),
        ("/anything", "/", "/anything"),
        (r"C:\Users\Alice\app.exe D:\x\c:\users\bob", None, r"C:\Users\<user>\app.exe D:\x\c:\users\bob"),
    ],
)
def test_home_directories_are_matched_from_a_paths_start(text: str, home: str | None, redacted: str) -> None:
    row = {"path": text, "analysis_text": f"EXECUTABLE: {text}\nCOMMAND_LINE: {text}"}
    out = redact_row(row, DEFAULT_REDACTIONS, home)
    assert out["path"] == redacted
    assert out["analysis_text"] == f"EXECUTABLE: {redacted}\nCOMMAND_LINE: {redacted}"


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ("x --password hunter2 -v", "x --password <redacted> -v"),
        ("x --password=hunter2 --PASSWD hunter2", "x --password=<redacted> --PASSWD <redacted>"),
        (
            "x -token abc --api-key abc --access_key abc",
            "x -token <redacted> --api-key <redacted> --access_key <redacted>",
        ),
        ("x --db-password abc --client-secret abc", "x --db-password <redacted> --client-secret <redacted>"),
        ("x password=abc secret:abc", "x password=<redacted> secret:<redacted>"),
        # the option's next argument is an option: no value was given
        ("x --password -v", "x --password -v"),
        # options that only contain a secret's word, and words that are no option
        ("x --author Alice --token-file /f --passwords 3", "x --author Alice --token-file /f --passwords 3"),
        ("echo token abc", "echo token abc"),
        ("curl https://u:p@h/ ftp://h/", "curl https://<credentials>@h/ ftp://h/"),
    ],
)
def test_secrets_on_a_command_line(line: str, redacted: str) -> None:
    assert redact(line, DEFAULT_REDACTIONS, "command_line") == redacted
