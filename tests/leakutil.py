"""Helpers for leak tests: run `notmyfault leak --json` and follow its events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import check_contract

MY_KEY_PREFIX = 0x6D79


class LeakProc:
    """A running `notmyfault leak ... --json`, read event by event."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, **popen: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notmyfault", "leak", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            **popen,
        )
        self.events: list[dict[str, Any]] = []

    def until(self, *names: str, timeout: float = 60) -> dict[str, Any]:
        """Read events until one named in ``names``; return it."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(
                    f"leak ended early (exit {self.proc.wait()}): {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            event = json.loads(line)
            self.events.append(event)
            if event.get("event") in names or (not names):
                return event
        raise AssertionError(f"no {names} event within {timeout} s")

    def finish(self, timeout: float = 60) -> int:
        out, err = self.proc.communicate(timeout=timeout)
        for line in out.splitlines():
            if line.strip():
                self.events.append(json.loads(line))
        assert "Traceback" not in err, err
        check_contract(
            "\n".join(json.dumps(e) for e in self.events), ["leak"]
        )  # every event, by its kind's schema
        return self.proc.returncode

    def event(self, name: str) -> dict[str, Any]:
        return next(e for e in self.events if e.get("event") == name)


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = int(v.split()[0]) * 1024
    return out


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        parts = v.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[k] = int(parts[0]) * 1024
    return out


def sysv_rows(kind: str) -> list[dict[str, int]]:
    lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
    names = lines[0].split()
    rows = [dict(zip(names, map(int, line.split()), strict=False)) for line in lines[1:]]
    return [r for r in rows if r["key"] >> 16 == MY_KEY_PREFIX]


SEED_ARGS = ("--pool", "nonpaged", "--rate", "1GB", "--stop-at", "64MB", "--then-crash", "high-irql")
"""The seed's scenario, fast: 64 MB of nonpaged pool tagged Leak, then the high-irql crash."""


def seed_scenario(dump_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the seed's scenario into ``dump_dir``; return (the leak's limit event, the crash report)."""
    leak = LeakProc(*SEED_ARGS, "--dump-dir", str(dump_dir))
    assert leak.finish(timeout=120) == 0
    report = next(e for e in leak.events if e.get("kind") == "crash")
    return leak.event("limit"), report
