"""The small things a user trips on: shell completion, durations with units, a mistyped --db, --json
everywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO, run_json, run_nmf
from tests.coretools import null_write_core


def test_bash_completion_completes_commands_and_options() -> None:
    env = dict(os.environ, COMP_WORDS="notmyfault ana", COMP_CWORD="1", _NOTMYFAULT_COMPLETE="bash_complete")
    script = [sys.executable, "-c", "from notmyfault.cli.main import main; main()"]
    r = subprocess.run(script, env=env, capture_output=True, text=True, check=False)
    assert "plain,analyze" in r.stdout.splitlines()
    env.update(COMP_WORDS="notmyfault triage ingest --tim", COMP_CWORD="3")
    r = subprocess.run(script, env=env, capture_output=True, text=True, check=False)
    assert "plain,--timeout" in r.stdout.splitlines()
    env = dict(os.environ, _NOTMYFAULT_COMPLETE="bash_source")
    source = subprocess.run(script, env=env, capture_output=True, text=True, check=False).stdout
    assert "complete -o nosort -F _notmyfault_completion notmyfault" in source


def test_read_only_triage_commands_do_not_create_a_database(tmp_path: Path) -> None:
    db = tmp_path / "typo" / "triage.db"
    for args in (["buckets"], ["show", "1"], ["rebucket"], ["report", "--html", str(tmp_path / "r.html")]):
        r = run_nmf("triage", *args, "--db", str(db))
        assert r.returncode == 2, args
        assert r.stderr.strip().splitlines() == [
            f"notmyfault: error: no triage database at {db}: 'notmyfault triage ingest PATH... --db {db}' makes one"
        ]
    assert not (tmp_path / "typo").exists()


@pytest.mark.shared
def test_timeouts_take_units_and_triage_commands_take_json(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    dumps = CORPUS / "breakpad-minidump2"
    r, out = run_json("triage", "ingest", str(dumps), "--db", db, "--timeout", "2m")
    assert r.returncode == 0, r.stderr
    assert out["found"] == 1
    bad = run_nmf("triage", "ingest", str(dumps), "--db", db, "--timeout", "2x")
    assert bad.returncode == 2
    assert "is not a duration" in bad.stderr
    _, rebucketed = run_json("triage", "rebucket", "--db", db)
    assert (rebucketed["kind"], rebucketed["changed"], rebucketed["buckets"]) == ("triage-rebucket", 0, 1)
    _, report = run_json("triage", "report", "--db", db, "--html", str(tmp_path / "r.html"))
    assert report["kind"] == "triage-report"
    assert report["bytes"] == (tmp_path / "r.html").stat().st_size


@pytest.mark.shared
def test_triage_ingest_draws_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    dumps = [str(p) for p in sorted(CORPUS.glob("breakpad-linux_*/*.dmp"))]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "notmyfault", "triage", "ingest", *dumps, "--db", str(tmp_path / "t.db")],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=dict(os.environ, COLUMNS="100", TERM="xterm"),
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(120) == 0
    os.close(master)
    text = seen.decode(errors="replace")
    assert "ingest" in text
    assert "/4" in text  # the bar counts the dumps to analyse
    assert "4 dumps found" in text
    plain = run_nmf("triage", "ingest", *dumps, "--db", str(tmp_path / "u.db"))
    assert "\x1b" not in plain.stdout + plain.stderr  # no terminal: no bar


def _on_a_terminal(args: list[str], rows: int, env: dict[str, str]) -> tuple[int, str]:
    """Run notmyfault with a pseudo-terminal of ``rows`` rows as its stdin, stdout and stderr."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 120, 0, 0))
    base = {k: v for k, v in os.environ.items() if k not in ("LINES", "COLUMNS", "PAGER", "NOTMYFAULT_PAGER")}
    proc = subprocess.Popen([sys.executable, "-m", "notmyfault", *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**base, "TERM": "xterm", **env})  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        while chunk := os.read(master, 65536):
            seen += chunk
    except OSError:  # the terminal's other end closed: the child is gone
        pass
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(60), seen.decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
def test_long_pages_go_through_the_pager_on_a_terminal_only(tmp_path: Path) -> None:
    """A page taller than the terminal goes through $NOTMYFAULT_PAGER (else $PAGER, else less), as
    git's and journalctl's do; not with --no-pager, not with PAGER=cat, not when it fits, not
    when stdout is no terminal."""
    core = str(null_write_core(tmp_path))
    page = run_nmf("analyze", core).stdout
    assert page.count("\n") > 20
    pager = tmp_path / "pager"
    kept = tmp_path / "paged"
    pager.write_text(f'#!/bin/sh\necho "LESS=$LESS" > {kept}.env\ncat > {kept}\n')
    pager.chmod(0o755)
    for name in ("NOTMYFAULT_PAGER", "PAGER"):
        kept.unlink(missing_ok=True)
        code, shown = _on_a_terminal(["analyze", core], 20, {name: str(pager)})
        assert code == 0, shown
        assert kept.read_text() == page, name  # the whole page, through the pager
        assert "Probably caused by" not in shown, name  # and nothing of it straight to the terminal
        assert (tmp_path / "paged.env").read_text() == "LESS=FRX\n"
    for args, rows, env in (
        (["--no-pager", "analyze", core], 20, {"PAGER": str(pager)}),
        (["analyze", core], 20, {"PAGER": "cat"}),
        (["analyze", core], 200, {"PAGER": str(pager)}),  # it fits
        (["analyze", core], 20, {"PAGER": str(tmp_path / "nosuch")}),  # no such pager: printed
    ):
        kept.unlink(missing_ok=True)
        code, shown = _on_a_terminal(args, rows, env)
        assert code == 0, shown
        assert not kept.exists(), (args, env)
        assert "Probably caused by" in shown, (args, env)
    r = run_nmf("analyze", core, env={"PAGER": str(pager)})  # a pipe: never paged
    assert r.stdout == page
    assert not kept.exists()


def test_the_man_page_is_current_and_names_every_command() -> None:
    """man/notmyfault.1 is what the commands make of themselves now (regenerate it with
    'python -m notmyfault.cli.manpage > man/notmyfault.1'), and man renders it with a section per
    command and every option of each."""
    import shutil

    from click import Context, Group

    from notmyfault.cli.main import cli
    from notmyfault.cli.manpage import manpage

    kept = (REPO / "man" / "notmyfault.1").read_text()
    assert kept == manpage(cli), (
        "man/notmyfault.1 is stale: python -m notmyfault.cli.manpage > man/notmyfault.1"
    )
    if shutil.which("man") is None:
        pytest.skip("no man here to render it")
    r = subprocess.run(["man", "-l", str(REPO / "man" / "notmyfault.1")], capture_output=True, text=True,
                       env={**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": ""}, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    page = r.stdout
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ENVIRONMENT", "EXIT STATUS"):
        assert f"\n{section}\n" in page, section

    def walk(group: Group, prefix: list[str]) -> None:
        ctx = Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            if isinstance(command, Group):
                walk(command, [*prefix, name])
                continue
            assert f"\n   notmyfault {' '.join([*prefix, name])}\n" in page, name
            for option in command.params:
                for flag in getattr(option, "opts", []) if not getattr(option, "hidden", False) else []:
                    if flag.startswith("--"):
                        assert flag in page, (name, flag)

    walk(cli, [])


def _readme_commands() -> list[list[str]]:
    """Every notmyfault command line in the README's shell blocks, as words (comments dropped,
    'a; b' split, 'analyze|regs|...' spread into one line per command)."""
    import shlex

    blocks: list[list[str]] = []
    language: str | None = None  # inside a fenced block: its language ("" for none)
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            language = line[3:].strip() if language is None else None
            if language is not None:
                blocks.append([])
        elif language in ("sh", ""):
            blocks[-1].append(line)
    lines: list[list[str]] = []
    for block in blocks:
        for raw in block:
            for part in re.split(r";\s*", raw.split(" # ")[0].split("  #")[0]):
                if not part.strip().startswith(("notmyfault ", "python -m notmyfault")):
                    continue
                words = shlex.split(part.replace("[", " ").replace("]", " ").replace("...", " "))
                if words[:3] == ["python", "-m", "notmyfault"]:
                    words = ["notmyfault", *words[3:]]
                if len(words) < 2 or words[0] != "notmyfault" or words[1].endswith(":"):
                    continue  # not a command line (the demo's sample output: 'notmyfault demo: ...')
                if len(words) > 1 and "|" in words[1]:
                    lines += [["notmyfault", name, *words[2:]] for name in words[1].split("|")]
                else:
                    lines.append(words)
    return lines


def test_every_command_and_option_the_readme_shows_exists() -> None:
    """The README's command lines name commands and options the tool has (a renamed or dropped
    option fails here, not in a reader's shell)."""
    from click import Context, Group

    from notmyfault.cli.main import cli

    lines = _readme_commands()
    assert len(lines) > 40
    for words in lines:
        command, ctx, rest = cli, Context(cli), words[1:]
        options = {o for p in cli.params for o in getattr(p, "opts", [])}
        while rest and isinstance(command, Group) and not rest[0].startswith("-"):
            sub = command.get_command(ctx, rest[0])
            assert sub is not None, (words, rest[0])
            command, ctx, rest = sub, Context(sub), rest[1:]
            options |= {
                o for p in sub.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])
            }
        for word in rest:
            if word == "--":
                break  # what follows goes to the guest's command
            if word.startswith("-") and len(word) > 1 and not word[1:].replace(".", "").isdigit():
                assert word.split("=")[0] in options, (" ".join(words), word)


def test_lab_fetch_says_how_far_the_download_is(tmp_path: Path) -> None:
    import threading
    import time

    from notmyfault.lab.kit import _report_download

    lines: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=_report_download, args=(tmp_path, 100 << 20, lines.append, stop), daemon=True
    )
    watcher.start()
    with open(tmp_path / "linux-image.deb", "wb") as f:
        for _ in range(5):
            f.write(bytes(25 << 20))  # 25%, 50%, 75%, 100%: written as apt-get writes into the directory
            f.flush()
            time.sleep(1.2)
    stop.set()
    watcher.join()
    assert lines
    assert lines[0].startswith("lab: downloaded 25 of 100 MB (20%)")
    assert all("of 100 MB" in line for line in lines)


def test_kernel_status_as_json() -> None:
    """Host mode's status as JSON: kdump's state as /sys says it, and myfault.ko not loaded here."""
    r, status = run_json("kernel", "status")
    assert r.returncode == 0, r.stderr
    assert status["kind"] == "kernel-status"
    assert status["loaded"] is Path("/sys/module/myfault").exists()
    assert set(status["kdump"]) == {"ready", "crash_kernel_loaded", "crash_kernel_size"}
    loaded = Path("/sys/kernel/kexec_crash_loaded")
    expected = None if not loaded.exists() else loaded.read_text().strip() == "1"
    assert status["kdump"]["crash_kernel_loaded"] is expected


def test_help_texts_say_what_commands_do_not_where_they_come_from() -> None:
    """No help text speaks of 'the seed' (our design document's name for the walkthrough)."""
    from click import Context, Group

    from notmyfault.cli.main import cli

    def helps(group: Group, prefix: list[str]) -> list[list[str]]:
        out = [prefix]
        ctx = Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, Group):
                out += helps(command, [*prefix, name])
            else:
                out.append([*prefix, name])
        return out

    commands = helps(cli, [])
    assert len(commands) > 30
    about = run_nmf("--help").stdout.split("Options:")[0]  # the tool's description names all it does
    for name in sorted({words[0] for words in commands if words}):
        assert name in about, name
    for words in commands:
        r = run_nmf(*words, "--help")
        assert r.returncode == 0, words
        assert "seed" not in r.stdout.lower(), words


@pytest.mark.shared
def test_wrong_values_exit_2_with_the_reason(tmp_path: Path) -> None:
    """Values the issue found accepted (crash --timeout inf|0|nan, search --module nosuch with exit 0,
    disasm -n -5 as exit 3, 'a bug of ours') are bad input: exit 2, saying which value and why."""
    core = str(CORPUS / "drgn-crashme" / "crashme.core")
    cases = [
        (("crash", "null-deref", "--timeout", "inf", "--dump-dir", str(tmp_path)), "give at least 0.1 s"),
        (("crash", "null-deref", "--timeout", "0", "--dump-dir", str(tmp_path)), "give at least 0.1 s"),
        (("crash", "null-deref", "--timeout", "nan", "--dump-dir", str(tmp_path)), "give at least 0.1 s"),
        (("hang", "spin", "--crash-after", "nan"), "give at least 0.1 s"),
        (("search", core, "crash", "--module", "nosuch"), "the dump holds no such module"),
        (("disasm", core, "main", "-n", "-5"), "-5 is not in the range"),
    ]
    for args, words in cases:
        r = run_nmf(*args, timeout=60)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert run_nmf("search", core, "crash", "--module", "crashme").returncode == 0
    assert not list(tmp_path.iterdir())  # nothing crashed, nothing written


@pytest.mark.shared
def test_analyze_and_triage_file_every_corpus_dump_in_one_bucket(tmp_path: Path) -> None:
    """The one signature (issue 16): for dumps nobody here wrote (Breakpad, Crashpad and Windows
    minidumps, a Windows triage dump, ELF cores of gdb's, drgn's and elfutils' test programs, a
    kernel-written multithreaded core), the bucket triage stores is the BUCKET_ID analyze prints."""
    dumps = sorted(
        {str(p) for pattern in ("*/*.dmp", "*/*.core") for p in CORPUS.glob(pattern) if p.is_file()}
    )
    assert len(dumps) >= 15
    db = str(tmp_path / "t.db")
    r, out = run_json("triage", "ingest", "--db", db, *dumps, timeout=600)
    assert r.returncode == 0, r.stderr
    assert out["found"] == len(dumps)
    rows = {}
    for b in run_json("triage", "buckets", "--db", db, "--examples", "1000")[1]["buckets"]:
        rows.update({p: b["bucket"] for p in b["examples"]})
    assert len(rows) >= 12
    for path, bucket in rows.items():
        _, a = run_json("analyze", path)
        assert a["bucket"] == bucket, path


def _modules_after(*argv: str) -> set[str]:
    """The modules a ``notmyfault ARGV`` run had imported when it ended."""
    probe = (
        "import sys\n"
        "from notmyfault.cli.entry import main\n"
        f"sys.argv = ['notmyfault', *{list(argv)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "finally:\n"
        "    print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    return set(r.stderr.split())


def test_start_up_imports_only_what_the_command_needs() -> None:
    """--version imports no command-line library at all; one command's --help imports its own
    module, not every other command's, nor drgn, capstone or pyelftools (issue 26)."""
    version = _modules_after("--version")
    assert "click" not in version
    assert {m for m in version if m.startswith("notmyfault.")} == {
        "notmyfault.base",
        "notmyfault.base.lazy",
        "notmyfault.base.sigcodes",
        "notmyfault.cli",
        "notmyfault.cli.entry",
        "notmyfault.cli.stops",
    }
    assert "typing" not in version
    stack = _modules_after("stack", "--help")
    assert "notmyfault.cli.analyze" in stack
    assert (
        not {"notmyfault.cli.triage", "notmyfault.cli.lab", "notmyfault.cli.leak", "notmyfault.cli.ui"}
        & stack
    )
    assert not {"drgn", "capstone", "elftools"} & stack
