"""Native arguments and locals (``stack -v``, ``analyze -v``, JSON), against gdb's ``bt full`` on
generated C programs: chains of functions whose arguments and locals take every scalar type C has
(signed and unsigned integers of each width, char, _Bool, float, double, enum, pointers to data,
to strings and to functions) and, as locals, structures and arrays, with values drawn at random.
Each program crashes in its innermost function; every argument and local of every frame of the
chain must read as gdb reads it, name for name and character for character."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_json, run_nmf
from tests.coretools import crash_program

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
PROGRAMS = 5
"""Programs generated here, at -O0 and at -O2; bench/native_locals.py runs the long form."""


def _scalar(rng: random.Random, kind: str) -> str:
    """A C literal of ``kind``."""
    if kind == "int":
        return str(rng.randint(-(2**31), 2**31 - 1))
    if kind == "long":
        return f"{rng.randint(-(2**63), 2**63 - 1)}L"
    if kind == "unsigned":
        return f"{rng.randint(0, 2**32 - 1)}U"
    if kind == "short":
        return str(rng.randint(-(2**15), 2**15 - 1))
    if kind == "unsigned char":
        return str(rng.randint(0, 255))
    if kind == "char":
        return repr(rng.choice("abcxyzQ09 _"))
    if kind == "_Bool":
        return rng.choice(["0", "1"])
    if kind == "double":
        return repr(rng.choice([0.1, 2.5, -1e-9, 12345.678, 1e300, -0.0, 3.0]))
    if kind == "float":
        return repr(rng.choice([0.1, 1.5, -2.25, 3.4e38, 7.0])) + "f"
    if kind == "enum color":
        return rng.choice(["RED", "GREEN", "BLUE"])
    raise AssertionError(kind)


STRINGS = ["abc", "hello world", "x", r"it's \"q\" \\ \n\001"]
"""The strings ``const char *`` arguments point to, as C literals' bodies (quotes, a backslash,
control characters: gdb escapes them its way)."""
SCALARS = [
    "int",
    "long",
    "unsigned",
    "short",
    "unsigned char",
    "char",
    "_Bool",
    "double",
    "float",
    "enum color",
]
POINTERS = ["int *", "const char *", "handler"]


def program(seed: int, depth: int = 3) -> str:
    """A C program: main calls f0, ... f{depth-1}, which writes through NULL."""
    rng = random.Random(seed)
    out = [
        "#include <stddef.h>",
        "enum color { RED, GREEN, BLUE };",
        "struct pair { int a; double b; char c; };",
        "typedef void (*handler)(int);",
        "void on_signal(int n) { (void)n; }",
        "static int cell = 7;",
    ]
    calls = []
    for level in range(depth):
        params = []
        for k in range(rng.randint(1, 4)):
            kind = rng.choice(SCALARS + POINTERS)
            if kind == "int *":
                value = "&cell"
            elif kind == "const char *":
                value = '"' + rng.choice(STRINGS) + '"'
            elif kind == "handler":
                value = "on_signal"
            else:
                value = _scalar(rng, kind)
            params.append((f"p{level}_{k}", kind, value))
        calls.append(params)
    for level in range(depth - 1, -1, -1):
        params = calls[level]
        signature = ", ".join(f"{kind} {name}" for name, kind, _ in params)
        body = []
        for k in range(rng.randint(1, 3)):
            kind = rng.choice([*SCALARS, "struct pair", "int[3]"])
            name = f"v{level}_{k}"
            if kind == "struct pair":
                body.append(f"    volatile struct pair {name} = {{ {rng.randint(-99, 99)}, 0.5, 'q' }};")
            elif kind == "int[3]":
                body.append(f"    volatile int {name}[3] = {{ {rng.randint(0, 9)}, -1, 42 }};")
            else:
                body.append(f"    volatile {kind} {name} = {_scalar(rng, kind)};")
        if level == depth - 1:
            body.append("    *(volatile int *)NULL = 1;")
            body.append("    return 0;")
        else:
            args = ", ".join(value for _, _, value in calls[level + 1])
            body.append(f"    return f{level + 1}({args}) + 1;")
        out.append(f"__attribute__((noinline)) int f{level}({signature}) {{")
        out += body
        out.append("}")
    first = ", ".join(value for _, _, value in calls[0])
    out.append(f"int main(void) {{ return f0({first}); }}")
    return "\n".join(out) + "\n"


_FRAME = re.compile(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\w+) \((.*)\) at ")
_LOCAL = re.compile(r"^        (\w+) = (.*)$")


def _split_arguments(text: str) -> list[tuple[str, str]]:
    """gdb's 'a=1, s=0x... "x, y"' as (name, value) pairs (commas inside quotes are kept)."""
    out: list[tuple[str, str]] = []
    for part in re.findall(r'([\w@]+)=((?:"(?:[^"\\]|\\.)*"|[^,"])+)(?:, |$)', text):
        out.append((part[0], part[1].strip()))
    return out


def gdb_bt_full(exe: Path, core: Path) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """function -> (arguments, locals) of gdb's ``bt full``, for the frames of the program's own functions."""
    out = subprocess.run(["gdb", "-nx", "-batch", "-ex", "bt full", str(exe), str(core)],
                         capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    frames: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
    current: str | None = None
    for line in out.splitlines():
        m = _FRAME.match(line)
        if m:
            current = m.group(1)
            frames[current] = (_split_arguments(m.group(2)), [])
            continue
        m = _LOCAL.match(line)
        if m and current is not None:
            frames[current][1].append((m.group(1), m.group(2)))
    return frames


@pytest.mark.parametrize("opt", ["O0", "O2"])
@pytest.mark.parametrize("seed", range(PROGRAMS))
def test_arguments_and_locals_equal_gdbs_bt_full(seed: int, opt: str, tmp_path: Path) -> None:
    """At -O2 most arguments live in registers the callee does not keep: their values come from
    the caller's DWARF call sites (gdb's 'a=a@entry=42', 'a@entry=42'), and must read as gdb's."""
    (tmp_path / "p.c").write_text(program(seed))
    exe = tmp_path / "p"
    core = crash_program(["gcc", "-g", f"-{opt}", "p.c", "-o", "p"], exe, tmp_path)
    theirs = gdb_bt_full(exe, core)
    r, out = run_json("stack", str(core), "-v")
    assert r.returncode == 0, r.stderr
    ours = {f["function"]: f for f in out["threads"][0]["frames"]}
    compared = 0
    for name in [f"f{i}" for i in range(3)] + ["main"]:
        args, local = theirs[name]
        mine_args = [(a["name"], a["value"]) for a in ours[name]["arguments"]]
        mine_locals = [(v["name"], v["value"]) for v in ours[name]["locals"]]
        assert [n for n, _ in mine_args] == [n for n, _ in args], name
        for (n, value), (_, gdb_value) in zip(mine_args, args, strict=True):
            if gdb_value != "...":  # gdb shows a structure argument as ... in the frame line
                assert value == gdb_value, (name, n)
                compared += 1
        assert mine_locals == local, name
        compared += len(local)
    assert compared >= 4
    if opt == "O2":  # the rule, not luck: some arguments here were read from a call site
        assert any("@entry" in n or "@entry=" in v for f in ours.values() for n, v in
                   ((a["name"], a["value"]) for a in f.get("arguments", [])))  # fmt: skip
    text = run_nmf("stack", str(core), "-v").stdout  # the page: bt full's lines under each frame
    for name, value in theirs["f0"][1]:
        assert f"\n        {name} = {value}\n" in text
