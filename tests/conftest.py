from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
"""The project's shared material beside the repository (the corpus, the seed): not in a plain clone."""
CORPUS = SHARED / "corpus"
REQUIRE_SHARED = "NOTMYFAULT_REQUIRE_SHARED"
"""Set (CI sets it) and a missing ../shared fails the run instead of skipping its tests."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``shared`` are skipped, with one reason, where ../shared is not there (a plain
    clone of the repository); where ``NOTMYFAULT_REQUIRE_SHARED`` is set, its absence ends the run."""
    if (CORPUS / "MANIFEST.tsv").is_file():
        return
    if os.environ.get(REQUIRE_SHARED):
        raise pytest.UsageError(f"{SHARED} is missing, and {REQUIRE_SHARED} asks for the tests that read it")
    skip = pytest.mark.skip(
        reason=f"needs {SHARED} (the corpus and the seed), which a plain clone does not have"
    )
    for item in items:
        if item.get_closest_marker("shared") is not None:
            item.add_marker(skip)


def json_objects(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects a --json command printed: one, or one a line (JSON Lines)."""
    try:
        whole = json.loads(stdout)
        return [whole] if isinstance(whole, dict) else []
    except json.JSONDecodeError:
        pass
    out = []
    for line in stdout.splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _record(args: tuple[str, ...], stdout: str) -> None:
    """Where NOTMYFAULT_RECORD_JSON names a file, append every JSON object a command printed."""
    path = os.environ.get("NOTMYFAULT_RECORD_JSON")
    if not path or "--json" not in args:
        return
    with open(path, "a") as f:
        for obj in json_objects(stdout):
            f.write(json.dumps({"argv": list(args), "obj": obj}) + "\n")


def run_nmf(
    *args: str, check_json: bool = False, timeout: float = 180, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run the notmyfault command (as ``python -m notmyfault``) and return what it did."""
    env = dict(os.environ)
    env.update(kw.pop("env", {}))
    r = subprocess.run(
        [sys.executable, "-m", "notmyfault", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kw,
    )
    _record(args, r.stdout)
    if "--json" in args and r.returncode in (0, 1) and not os.environ.get("NOTMYFAULT_RECORD_JSON"):
        check_contract(r.stdout, args)  # (a recording run drafts the schemas: tools/json_schemas.py)
    return r


VALIDATED: set[str] = set()
"""The commands ("triage buckets") whose --json output this run validated against the schemas."""

NOT_RUN_HERE = {
    "kernel build": "builds myfault.ko against this machine's kernel headers",
    "kernel load": "inserts myfault.ko into this machine's kernel",
    "kernel unload": "removes myfault.ko from this machine's kernel",
    "kernel free": "frees what myfault.ko leaked in this machine's kernel",
    "kernel leak": "leaks this machine's kernel memory",
}
"""The --json commands the suite does not run, and why: they act on the kernel of the machine the
tests run on (the lab runs the same requests in a guest, through myfaultctl)."""


def command_path(args: tuple[str, ...] | list[str]) -> str:
    """The command words of a command line ("triage buckets" of ``triage buckets --db X --json``)."""
    import click

    from notmyfault.cli.main import cli

    words: list[str] = []
    group: click.Command = cli
    for arg in args:
        if not isinstance(group, click.Group):
            break
        sub = group.get_command(click.Context(group), arg)
        if sub is None:
            if arg.startswith("-"):
                continue
            break
        words.append(arg)
        group = sub
    return " ".join(words)


def json_commands() -> list[str]:
    """Every command of the tool that takes --json."""
    import click

    from notmyfault.cli.main import cli

    found: list[str] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*path, name])
        elif any("--json" in p.opts for p in cmd.params if isinstance(p, click.Option)):
            found.append(" ".join(path))

    walk(cli, [])
    return found


_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Where the whole suite ran with nothing skipped (CI; or NOTMYFAULT_JSON_COVERAGE=always), every
    command that takes --json must have had its output validated against the schemas by some test:
    a command no test runs with --json fails the run, by name."""
    config = session.config
    whole = os.environ.get("NOTMYFAULT_JSON_COVERAGE") == "always" or (
        os.environ.get(REQUIRE_SHARED)
        and not _SKIPPED
        and not config.option.keyword
        and not config.option.markexpr
        and not config.option.deselect
        and [Path(a).resolve() for a in config.args] == [REPO / "tests"]
        and not config.option.lf
        and not config.option.collectonly
    )
    if not whole or exitstatus != 0:
        return
    commands = json_commands()
    missing = [c for c in commands if c not in VALIDATED and c not in NOT_RUN_HERE]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if missing:
        line = "no test validated the --json output of: " + ", ".join(missing) + " (tests/conftest.py)"
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line("FAILED " + line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(
            f"JSON contract: the output of all {len(commands) - len(NOT_RUN_HERE)} commands that take --json"
            f" was validated ({len(NOT_RUN_HERE)} act on this machine's kernel and are not run)"
        )


def check_page(text: str, where: str) -> None:
    """A JSON page a server sent (``where``: what sent it): checked against its kind's schema, or
    recorded where NOTMYFAULT_RECORD_JSON asks for the schemas' drafts."""
    if os.environ.get("NOTMYFAULT_RECORD_JSON"):
        _record((where, "--json"), text)
    else:
        check_contract(text)


def check_contract(stdout: str, args: tuple[str, ...] | list[str] = ()) -> None:
    """Every JSON object a command printed validates against its kind's published schema
    (notmyfault/schemas/KIND.json): the contract, checked on everything the tests run. ``args``, the
    command's line, counts the command as validated (VALIDATED) when it printed any."""
    import jsonschema

    from notmyfault.render.contract import schema

    objects = json_objects(stdout)
    for obj in objects:
        kind = obj.get("kind")
        assert isinstance(kind, str), f"a --json object without a kind: {str(obj)[:200]}"
        try:
            contract = schema(kind)
        except KeyError:
            raise AssertionError(f"no published schema for kind {kind!r} (src/notmyfault/schemas)") from None
        errors = sorted(jsonschema.Draft202012Validator(contract).iter_errors(obj), key=str)
        assert not errors, f"{kind}: {errors[0].message} at {list(errors[0].absolute_path)}"
    if objects and args:
        VALIDATED.add(command_path(args))


def run_bench(script: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run ``bench/SCRIPT`` with ``args`` and ``--json``, and return its one JSON object (whatever
    its exit code: the tests assert on the figures)."""
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert r.stdout, r.stderr[-3000:]
    return dict(json.loads(r.stdout))


def run_json(*args: str, **kw: Any) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = run_nmf(*args, "--json", **kw)
    try:
        return r, json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}") from None


@pytest.fixture
def dump_dir(tmp_path: Path) -> Path:
    d = tmp_path / "dumps"
    d.mkdir()
    return d


def gone(pid: int) -> bool:
    """True if no process ``pid`` exists (it was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def proc_state(pid: int) -> str | None:
    """The process's state letter (R, S, D, Z, ...), or None when it is gone."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def session(sid: int) -> list[int]:
    """The live processes of session ``sid`` (zombies are not counted): what a command started with
    start_new_session=True still has running."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (f := stat_fields(entry)) is not None and int(f[3]) == sid and f[0] != "Z":
            out.append(int(entry))
    return out


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(entry)) is not None and int(fields[1]) == pid:
            out.append(int(entry))
    return out


HOGS = 2
"""CPU hogs the load-sensitive tests run beside (the stop matrix, the stops, the window, the fuzzers):
CI machines are busy, and a stop that holds only on an idle machine does not hold."""


@pytest.fixture(scope="module")
def cpu_hogs() -> Iterator[list[int]]:
    """``HOGS`` processes that spin for the module's tests (a machine at full load), killed after."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        yield [h.pid for h in hogs]
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of our own on loopback (initdb in a temporary directory), as its URL."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: ./dev test installs it (Debian: postgresql)")
    bindir = Path(found[-1]).parent
    home = Path(tempfile.mkdtemp(prefix="nmf-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(home, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = home / "data", free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"),
                    "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """A new database ``name`` on the server at ``url``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"
