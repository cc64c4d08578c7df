"""core_pattern parsing and expansion, on patterns this machine does not use."""

from __future__ import annotations

import pytest

from notmyfault.capture.pattern import CrashFacts, Handler, PatternKind, expand, parse_pattern

FACTS = CrashFacts(
    pid=4242,
    tid=4243,
    uid=1000,
    gid=100,
    signal=11,
    comm="notmyfault",
    exe="/usr/bin/python3.11",
    hostname="box",
    time=1700000000,
    core_limit=0,
)

SYSTEMD = "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h"
APPORT = "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E"


def test_plain_core() -> None:
    p = parse_pattern("core\n")
    assert (p.kind, p.handler, p.relative, p.specifiers) == (PatternKind.FILE, Handler.KERNEL_FILE, True, ())
    assert expand(p, FACTS, core_uses_pid=False) == "core"
    assert expand(p, FACTS, core_uses_pid=True) == "core.4242"
    assert "working directory" in p.meaning()
    assert "'.PID' appended" in p.meaning(core_uses_pid=True)


def test_file_pattern_with_specifiers() -> None:
    p = parse_pattern("/var/crash/core.%e.%p.%u.%g.%s.%t.%h.%%")
    assert p.kind is PatternKind.FILE
    assert not p.relative
    assert p.specifiers == ("e", "p", "u", "g", "s", "t", "h", "%")
    assert (
        expand(p, FACTS, core_uses_pid=True) == "/var/crash/core.notmyfault.4242.1000.100.11.1700000000.box.%"
    )
    # unknown values become globs, known ones stay literal
    glob_facts = CrashFacts(pid=4242, uid=1000, gid=100, signal=11, comm="notmyfault")
    assert (
        expand(p, glob_facts, core_uses_pid=False, as_glob=True)
        == "/var/crash/core.notmyfault.4242.1000.100.11.*.*.[%]"
    )


def test_exe_path_specifier() -> None:
    p = parse_pattern("/tmp/%E-%f.core")
    assert expand(p, FACTS, False) == "/tmp/!usr!bin!python3.11-python3.11.core"


def test_pid_in_pattern_disables_core_uses_pid() -> None:
    assert expand(parse_pattern("core.%p"), FACTS, core_uses_pid=True) == "core.4242"


def test_unknown_value_cannot_be_predicted() -> None:
    with pytest.raises(ValueError, match="cannot predict %t"):
        expand(parse_pattern("core.%t"), CrashFacts(pid=1), False)


def test_systemd_coredump() -> None:
    p = parse_pattern(SYSTEMD)
    assert (p.kind, p.handler, p.program) == (
        PatternKind.PIPE,
        Handler.SYSTEMD_COREDUMP,
        "/usr/lib/systemd/systemd-coredump",
    )
    assert p.args == ("%P", "%u", "%g", "%s", "%t", "%c", "%h")
    assert "systemd-coredump" in p.meaning()
    with pytest.raises(ValueError, match="only file patterns"):
        expand(p, FACTS, False)


def test_apport() -> None:
    p = parse_pattern(APPORT)
    assert (p.kind, p.handler) == (PatternKind.PIPE, Handler.APPORT)
    assert p.args[-1] == "%E"


@pytest.mark.parametrize("raw", ["|/bin/false", "|/usr/bin/false", "|/bin/true"])
def test_discarding_pipes(raw: str) -> None:
    p = parse_pattern(raw)
    assert (p.kind, p.handler) == (PatternKind.PIPE, Handler.DISCARD)
    assert "thrown away" in p.meaning()


@pytest.mark.parametrize("raw", ["", "\n", "   ", "|", "| "])
def test_empty_is_disabled(raw: str) -> None:
    p = parse_pattern(raw)
    assert p.kind is PatternKind.DISABLED
    assert "no dump" in p.meaning()


def test_other_pipe_and_socket() -> None:
    p = parse_pattern("|/usr/libexec/abrt-hook-ccpp %s %c %p %u %g %t e %P %I %h")
    assert p.handler is Handler.ABRT
    p2 = parse_pattern("|/opt/x/collector --pid %p")
    assert (p2.handler, p2.program) == (Handler.OTHER, "/opt/x/collector")
    s = parse_pattern("@/run/systemd/coredump")
    assert (s.kind, s.program) == (PatternKind.SOCKET, "/run/systemd/coredump")
    assert "socket" in s.meaning()
