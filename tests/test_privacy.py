"""Privacy (issue 18, item 3): a dump's environment is never shown or stored unless asked
(--show-environment), and triage's redaction rules keep home directories and token-like command-line
arguments out of its database and report.  The program runs from /…/home/alice with a secret in its
environment and a token on its command line; the database file itself is searched byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_json, run_nmf
from tests.coretools import NULL_WRITE_SOURCE, unlimited_cores

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
SECRET = "s3cr3t-e7b1c0de"
TOKEN = "Zq8Lw2Vn5Rt7Yp1Kd4Hs9Gm3"  # 24 characters mixing cases and digits
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "DEPLOY_SECRET": SECRET, "EMPTY": ""}


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("privacy")
    src = root / "home" / "alice" / "src"
    src.mkdir(parents=True)
    (src / "nw.c").write_text(NULL_WRITE_SOURCE)
    subprocess.run(["gcc", "-g", "-O1", "nw.c", "-o", "nw"], cwd=src, check=True, capture_output=True)
    r = subprocess.run(["./nw", f"--token={TOKEN}", TOKEN], cwd=src, env=ENV,
                       preexec_fn=unlimited_cores, capture_output=True, check=False)  # fmt: skip
    assert r.returncode == -11
    return src / "core"


def test_the_environment_is_shown_only_when_asked(core: Path) -> None:
    for args in (["analyze"], ["analyze", "-v"], ["stack"], ["modules"], ["vm"]):
        r = run_nmf(*args, str(core))
        assert r.returncode == 0, r.stderr
        assert SECRET not in r.stdout, args
    _, plain = run_json("analyze", str(core))
    assert SECRET not in json.dumps(plain)
    assert "environment" not in plain
    _, shown = run_json("analyze", str(core), "--show-environment")
    assert shown["environment"] == [f"{k}={v}" for k, v in ENV.items()]  # all of it, in execve's order
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


def test_triage_stores_no_environment_and_redacts_paths_and_tokens(core: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    r = run_nmf("triage", "ingest", "--db", str(db), str(core))
    assert r.returncode == 0, r.stderr
    stored = db.read_bytes()
    for secret in (SECRET, TOKEN, "/alice/"):
        assert secret.encode() not in stored, secret
    assert b"/home/<user>/src/nw" in stored
    assert b"COMMAND_LINE: ./nw --token=<redacted> <token>\n" in stored
    page = tmp_path / "r.html"
    assert run_nmf("triage", "report", "--html", str(page), "--db", str(db)).returncode == 0
    assert "alice" not in page.read_text()
    _, kept = run_json("triage", "buckets", "--db", str(db))
    assert kept["buckets"][0]["bucket"] == "FAULT:nw:store"  # buckets never change with it

    raw = tmp_path / "raw.db"  # --redact none keeps paths and arguments, never the environment
    assert run_nmf("triage", "ingest", "--db", str(raw), "--redact", "none", str(core)).returncode == 0
    stored = raw.read_bytes()
    assert b"/home/alice/src/nw" in stored
    assert TOKEN.encode() in stored
    assert SECRET.encode() not in stored

    rules = json.loads(run_nmf("triage", "redactions", "--json").stdout)
    mine = tmp_path / "mine.json"  # a rule list of one's own: only the project's name is hidden
    mine.write_text(json.dumps({"redactions": [{"name": "project", "pattern": "alice", "replace": "X"}]}))
    own = tmp_path / "own.db"
    assert run_nmf("triage", "ingest", "--db", str(own), "--redact", str(mine), str(core)).returncode == 0
    stored = own.read_bytes()
    assert b"/home/X/src/nw" in stored
    assert TOKEN.encode() in stored
    assert {r["name"] for r in rules["redactions"]} >= {"home directory", "token-like argument"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"redactions": [{"name": "x", "pattern": "(", "replace": ""}]}))
    r = run_nmf("triage", "ingest", "--db", str(tmp_path / "b.db"), "--redact", str(bad), str(core))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "bad redaction rules" in r.stderr
    assert not (tmp_path / "b.db").exists()  # refused before anything was made
