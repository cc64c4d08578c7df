"""The package's layout holds: imports flow one way, as each package's docstring says, with no circle.

Every package of ``notmyfault`` ends its docstring with ``May import: a, b (face), ...``: the
packages its modules may import. ``(face)`` allows only the package's public face (its
``__init__``: ``from notmyfault.capture import probe``), never its modules. The top-level
``notmyfault`` is the face of ``api``. The test reads every import of every module, those inside
functions and under ``TYPE_CHECKING`` included, and checks each against its package's rule; then it
checks that neither the packages nor the modules import one another in a circle.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "notmyfault"
PACKAGES = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
TOP = {"__init__", "__main__"}
"""The top-level modules: the public face (of api) and ``python -m notmyfault`` (the CLI's)."""


@dataclass(frozen=True)
class Import:
    """One import of a module: what it names, and where."""

    source: str
    """The importing module (notmyfault.cli.main)."""
    target: str
    """The imported module, or the attribute of a package (notmyfault.capture.probe)."""
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[Import]:
    """Every import of ``notmyfault`` in ``path``, at any depth."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [Import(me, a.name, node.lineno) for a in node.names if a.name.startswith("notmyfault")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([node.module] if node.module else [])])
            if base == "notmyfault" or base.startswith("notmyfault."):
                found += [Import(me, f"{base}.{a.name}", node.lineno) for a in node.names]
    return found


def is_module(name: str) -> bool:
    """True if ``name`` (notmyfault.x.y) is a module or package of ours, not an attribute."""
    rel = Path(*name.split(".")[1:])
    return (SRC / "notmyfault" / rel).with_suffix(".py").exists() or (
        SRC / "notmyfault" / rel / "__init__.py"
    ).exists()


def target_of(name: str) -> tuple[str, bool] | None:
    """The package an import reaches, and whether through its face only (None: the version string)."""
    parts = name.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not is_module(name)):
        return None if parts[-1] == "__version__" else ("api", True)
    package = parts[1]
    if package in TOP or package == "myfault":
        return (package, False)
    if len(parts) == 2:
        return (package, True)
    face_only = len(parts) == 3 and not is_module(name)
    return (package, face_only)


def rules() -> dict[str, dict[str, bool]]:
    """Each package's ``May import`` line: package -> {allowed package: through its face only}."""
    out = {}
    for package in PACKAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text())) or ""
        found = re.search(r"^May import: (.*?)\.$", doc, re.M | re.S)
        assert found, f"notmyfault/{package}/__init__.py: its docstring has no 'May import: ...' line"
        text = found.group(1).strip()
        allowed: dict[str, bool] = {}
        if text != "nothing":
            for item in text.split(","):
                words = item.split()
                assert words[0] in PACKAGES, f"{package}: 'May import' names {words[0]!r}, no package"
                allowed[words[0]] = "(face)" in item
        out[package] = allowed
    return out


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_says_what_it_holds_and_may_import() -> None:
    found = rules()
    assert set(found) == set(PACKAGES)
    for package in PACKAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text())) or ""
        assert len(doc.split("May import:")[0].strip()) > 40, f"{package}: say what the package holds"


def violations(imports: list[Import]) -> list[str]:
    """The imports that break their package's rule."""
    allowed = rules()
    bad = []
    for i in imports:
        target = target_of(i.target)
        source = package_of(i.source)
        if target is None:
            continue
        package, through_face = target
        if source in TOP:
            ok = (source, package) in {("__init__", "api"), ("__init__", "base"), ("__main__", "cli")}
        elif package == source:
            ok = True
        elif package in allowed.get(source, {}):
            ok = through_face or not allowed[source][package]
        else:
            ok = False
        if not ok:
            bad.append(f"{i.source}:{i.line} imports {i.target}")
    return bad


def test_imports_flow_one_way() -> None:
    assert violations(all_imports()) == []


def test_the_rule_catches_an_upward_import_and_a_reach_behind_a_face() -> None:
    """The checker itself bites: an analysis module importing the CLI, a CLI module importing a module
    of capture, and a reader importing the API are each reported."""
    planted = [
        Import("notmyfault.analysis.crash", "notmyfault.cli.common.fail", 1),
        Import("notmyfault.cli.dump", "notmyfault.capture.livecore.write_core", 2),
        Import("notmyfault.dumps.elfcore", "notmyfault.open", 3),
        Import("notmyfault.cli.dump", "notmyfault.capture.write_core", 4),
    ]
    assert violations(planted) == [
        "notmyfault.analysis.crash:1 imports notmyfault.cli.common.fail",
        "notmyfault.cli.dump:2 imports notmyfault.capture.livecore.write_core",
        "notmyfault.dumps.elfcore:3 imports notmyfault.open",
    ]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_circle_between_packages_or_modules() -> None:
    packages: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for i in all_imports():
        target = target_of(i.target)
        source = package_of(i.source)
        if target is not None and source not in TOP and target[0] != source:
            packages.setdefault(source, set()).add(target[0])
        reached = i.target if is_module(i.target) else i.target.rpartition(".")[0]
        if reached not in (i.source, "notmyfault") and reached.startswith("notmyfault."):
            modules.setdefault(i.source, set()).add(reached)
    assert cycles(packages) == []
    # a package's face imports its own modules lazily: an edge from it is no circle of the code
    faces = {f"notmyfault.{p}" for p in PACKAGES}
    assert cycles({m: {t for t in ts if t not in faces} for m, ts in modules.items()}) == []


def test_cycles_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("face", ["notmyfault", *(f"notmyfault.{p}" for p in PACKAGES)])
def test_every_exported_name_resolves(face: str) -> None:
    """What a face lists in ``__all__`` can be imported from it (the lazy exports do not rot)."""
    module = importlib.import_module(face)
    for name in getattr(module, "__all__", []):
        assert getattr(module, name) is not None, f"{face}.{name}"


def test_the_native_sources_have_a_folder_of_their_own() -> None:
    assert sorted(p.name for p in (PACKAGE / "native" / "user").iterdir()) == [
        "myfault.c",
        "myfault.h",
        "myfault_hang.c",
        "myfault_pool.c",
        "scan.c",
    ]
    assert {p.name for p in (PACKAGE / "native" / "kernel").iterdir()} >= {"myfault.c", "Kbuild"}
    assert not list(PACKAGE.glob("*.[ch]"))
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


def test_an_elf_core_loads_no_reader_of_another_kind(tmp_path: Path) -> None:
    """Opening and analysing an ELF process core imports neither the minidump, the Windows nor the
    vmcore reader (notmyfault.dumps loads them on first use: start-up time); and the magic numbers
    the opener sniffs are the readers' own."""
    import subprocess
    import sys

    from notmyfault.dumps import MAGIC32, MAGIC64, MINIDUMP_MAGIC, minidump, windump
    from tests.coretools import null_write_core

    assert (MINIDUMP_MAGIC, MAGIC32, MAGIC64) == (minidump.MAGIC, windump.MAGIC32, windump.MAGIC64)
    core = null_write_core(tmp_path)
    code = (
        "import sys, notmyfault\n"
        f"with notmyfault.open({str(core)!r}) as d:\n"
        "    d.analysis().bucket\n"
        "print(' '.join(m for m in sys.modules if m.startswith('notmyfault.dumps.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(out.stdout.split())
    assert "notmyfault.dumps.elfcore" in loaded
    assert loaded.isdisjoint(
        {
            "notmyfault.dumps.minidump",
            "notmyfault.dumps.windump",
            "notmyfault.dumps.pe",
            "notmyfault.dumps.vmcore",
        }
    )


@pytest.mark.shared
def test_a_minidump_loads_no_process_core_machinery() -> None:
    """Analysing a minidump imports neither drgn, pyelftools, the process core's analyzer nor its
    deadlock check: the result type and the instruction decoder every
    analyzer shares live apart (analysis.result, analysis.decode); a minidump's start-up was 0.25 s
    with them, 0.17 s without."""
    import subprocess
    import sys

    dump = Path(__file__).resolve().parents[2] / "shared/corpus/breakpad-testdata/linux_raise_sigabrt.dmp"
    code = (
        "import sys, notmyfault\n"
        f"with notmyfault.open({str(dump)!r}) as d:\n"
        "    a = d.analysis()\n"
        "    a.bucket, d.stacks()\n"
        "print(' '.join(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(out.stdout.split())
    assert "notmyfault.analysis.minidump" in loaded
    heavy = {"drgn", "_drgn", "elftools", "notmyfault.analysis.crash", "notmyfault.analysis.deadlock"}
    assert loaded.isdisjoint(heavy), loaded & heavy
