#!/usr/bin/env python3
"""How far notmyfault agrees with its peers' own expected outputs, field by field.

Runs ``notmyfault analyze|stack --all|modules --json`` on the dumps of
``../shared/corpus`` and compares each field we claim to read with what the
peer printed for the same dump:

- ``rust-minidump``: ``minidump-stackwalk --json`` snapshots (test.dmp with and
  without its symbols; the macOS Crashpad dump): crash reason and address,
  crashing thread, pid, thread count, every thread's frames (module, module
  offset, trust, and function, file and line where we are given the same
  symbols), every module (file name, range, debug file and id, code id, version).
- ``breakpad-minidump2``: Breakpad's ``minidump_stackwalk -m`` output: crash,
  frames with names, files and lines, modules.
- ELF cores with ``EUSTACK.txt`` / ``GDB.txt``: pid, thread ids, crashed thread,
  signal, the registers gdb printed, and frame 0;
- ``rizin-dmp-triage_arm64``: rizin's test expectations (bug check, registers,
  instructions at the pc, backtrace pcs and stack pointers);
- every ELF core against ``eu-readelf -n`` run here: thread ids, and every register
  of the crashed thread that we name; and against ``eu-unstrip -n --core``: every
  module's load address and build-id.

Where we read differently on purpose, the check normalises (see
docs/peer-agreement.md): a caller frame's address is its return address for
us and the return address minus one for minidump-stackwalk; code ids are
compared without regard to case; debug files by their base name; a frame's
trust is compared only where the peer found it without symbols we were not
given (the macOS dump's own symbol files are not in the corpus).

``--oracles`` instead runs peers here over every dump of a kind: minidump-stackwalk 0.25
(rust-minidump; ``./dev setup`` installs it into ``.venv/bin``) on every minidump of the corpus,
with the symbols beside each, compared field by field as above.

Prints one ``matched / compared`` line per source and the total; ``--json``
prints the same with every mismatch; ``--show`` lists the mismatches and what was left out.
Exit status 0 unless a source could not be run at all.
"""

from __future__ import annotations

import argparse
import json
import ntpath
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
RUST = CORPUS / "rust-minidump"


@dataclass
class Tally:
    """Fields compared for one source, and the ones that differ."""

    source: str
    compared: int = 0
    matched: int = 0
    mismatches: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Fields left out on purpose: the peer read them with symbol files the corpus does not carry."""

    def check(self, what: str, ours: Any, theirs: Any) -> None:
        """Count one field; remember it when it differs."""
        self.compared += 1
        if ours == theirs:
            self.matched += 1
        else:
            self.mismatches.append(f"{what}: ours {ours!r}, theirs {theirs!r}")

    @property
    def ratio(self) -> float:
        """matched / compared (1.0 when nothing was compared)."""
        return self.matched / self.compared if self.compared else 1.0


def nmf(*args: str) -> dict[str, Any]:
    """``notmyfault ARGS --json``, parsed."""
    r = subprocess.run(
        [sys.executable, "-m", "notmyfault", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if r.returncode != 0:
        raise RuntimeError(f"notmyfault {' '.join(args)} failed: {r.stderr.strip()}")
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def snapshot(name: str) -> dict[str, Any]:
    """An insta snapshot's JSON body (after its header)."""
    text = (RUST / "snapshots" / f"{name}.snap").read_text()
    out: dict[str, Any] = json.loads(text[text.index("{") :])
    return out


def hexint(value: str | None) -> int | None:
    """'0x0040429e' -> 0x40429e; None stays None."""
    return None if value is None else int(value, 16)


def base_name(path: str | None) -> str | None:
    """The file name of a Windows or POSIX path."""
    return None if path is None else ntpath.basename(path.replace("/", "\\"))


def frame_offset(f: dict[str, Any], modules: dict[str, dict[str, Any]]) -> int | None:
    """Our frame's module offset as minidump-stackwalk gives it: callers' return addresses minus one."""
    m = modules.get(f["module"] or "")
    if m is None:
        return None
    pc = int(f["pc"], 16) - (0 if f["trust"] == "context" else 1)
    return pc - int(m["start"], 16)


def trust_name(ours: str) -> str:
    """Our trust names in minidump-stackwalk's spelling."""
    return ours.replace(" ", "_")


NO_ADDRESS = "0xffffffffffffffff"
"""The address Windows gives an access violation at a non-canonical address (x86_64)."""


def crash_reason(a: dict[str, Any]) -> str | None:
    """Our crash reason in minidump-stackwalk's spelling: the exception's name, or a Linux signal's
    name with its si_code's (``SIGILL / ILL_ILLOPN``)."""
    if a["exception"]:
        return str(a["exception"]["name"])
    sig = a["signal"]
    if sig["name"] is None:
        return None
    return f"{sig['name']} / {sig['code_name']}" if sig.get("code_name") else str(sig["name"])


def crash_address(a: dict[str, Any]) -> int | None:
    """Our crash address as minidump-stackwalk defines it: the memory an exception touched where it
    names one, else the exception record's own address (Windows, macOS)."""
    touched = hexint(a["signal"]["address"])
    if touched is not None or not a["exception"]:
        return touched
    return hexint(a["exception"].get("address"))


def debug_id(value: str | None) -> str | None:
    """A debug id for comparison: hex is compared without regard to case, and a module without a
    CodeView record (the peer's all-zero id) has none."""
    if not value or set(value) <= {"0"}:
        return None
    return value.upper()


CPU_NAMES = {"x86_64": "amd64", "aarch64": "arm64"}
"""Our architectures' names as minidump-stackwalk spells them."""


def compare_stackwalk(
    t: Tally, snap: str, dump: Path, symbols: Path | None, theirs: dict[str, Any] | None = None
) -> None:
    """minidump-stackwalk's JSON (a snapshot, or ``theirs``: its output here) against our analyze,
    stack --all and modules."""
    theirs = theirs if theirs is not None else snapshot(snap)
    sym = ["--symbols", str(symbols)] if symbols else []
    a = nmf("analyze", str(dump), *sym)
    stacks = nmf("stack", "--all", str(dump), *sym)
    mods = nmf("modules", str(dump))
    by_path = {m["path"]: m for m in mods["modules"]}
    crash = theirs["crash_info"]
    crashed = theirs.get("crashing_thread") is not None
    t.check(f"{snap}: crashed", a["crash_class"] != "LIVE_DUMP", crashed)
    if crashed:
        reason = crash_reason(a)
        if reason and reason.startswith("EXC_CRASH / ") and crash["type"].startswith("unknown 0x00000000"):
            # Crashpad wraps the exception that became EXC_CRASH (code 0, EXC_CRASH and the signal in
            # its parameters); we unwrap it, minidump-stackwalk 0.25 prints the wrapper
            t.skipped.append(f"{snap}: crash reason (ours {reason}, theirs {crash['type']})")
        else:
            t.check(f"{snap}: crash reason", reason, crash["type"])
        ours_address = crash_address(a)
        if crash["address"] == NO_ADDRESS and ours_address != int(NO_ADDRESS, 16) and a["exception"]:
            # a general-protection fault: Windows gives no address; we compute the instruction's
            # operand, as Breakpad's processor does (its unit test asserts the value); 0.25 does not
            t.skipped.append(f"{snap}: crash address of a non-canonical access (ours {ours_address:#x})")
        elif ours_address is None and not a["exception"] and a["signal"]["name"]:
            # Linux: a signal that touched no memory (SIGABRT, SIGKILL) has no crash address; the
            # peer prints the record's si_addr field, which then holds the sender's pid and uid
            t.skipped.append(f"{snap}: crash address of {a['signal']['name']} (theirs {crash['address']})")
        else:
            t.check(f"{snap}: crash address", ours_address, hexint(crash["address"]))
        t.check(f"{snap}: crashing thread", a["crashed_tid"], theirs["crashing_thread"]["thread_id"])
    t.check(f"{snap}: pid", a["process"]["pid"], theirs["pid"])
    system, their_system = a["system"] or {}, theirs["system_info"]
    t.check(f"{snap}: os", system.get("os"), their_system["os"])
    t.check(f"{snap}: os version", system.get("os_version"), their_system["os_ver"])
    t.check(
        f"{snap}: cpu arch",
        CPU_NAMES.get(system.get("cpu_arch"), system.get("cpu_arch")),
        their_system["cpu_arch"],
    )
    t.check(f"{snap}: cpu info", system.get("cpu_info"), their_system["cpu_info"])
    t.check(f"{snap}: cpu count", system.get("cpu_count"), their_system["cpu_count"])
    t.check(f"{snap}: thread count", len(stacks["threads"]), theirs["thread_count"])
    ours_threads = {th["tid"]: th["frames"] for th in stacks["threads"]}
    their_mods = {m["filename"]: m for m in theirs["modules"]}
    for th in theirs["threads"]:
        tid = th["thread_id"]
        frames = ours_threads.get(tid, [])
        # the peer's walk leaned on symbol files we were not given (its CFI, or symbols rejecting
        # a scanned word): where it ends is then not ours to match
        leaned = not symbols and any(
            their_mods.get(f["module"] or "", {}).get("loaded_symbols") for f in th["frames"]
        )
        if leaned:
            t.skipped.append(
                f"{snap}: thread {tid} frame count (ours {len(frames)}, theirs {th['frame_count']})"
            )
        else:
            t.check(f"{snap}: thread {tid} frame count", len(frames), th["frame_count"])
        prev_symbols = False
        for f_theirs, f in zip(th["frames"], frames, strict=False):
            where = f"{snap}: thread {tid} frame {f_theirs['frame']}"
            t.check(f"{where} module", base_name(f["module"]), f_theirs["module"])
            t.check(f"{where} module offset", frame_offset(f, by_path), hexint(f_theirs["module_offset"]))
            if not prev_symbols or symbols:
                t.check(f"{where} trust", trust_name(f["trust"]), f_theirs["trust"])
            else:
                t.skipped.append(f"{where} trust (ours {trust_name(f['trust'])}, theirs {f_theirs['trust']})")
            if symbols:
                t.check(f"{where} function", f["function"], f_theirs["function"])
                t.check(f"{where} line", f["line"], f_theirs["line"])
            prev_symbols = bool(their_mods.get(f_theirs["module"] or "", {}).get("loaded_symbols"))
    ours_by_base = {int(m["start"], 16): m for m in mods["modules"]}
    t.check(f"{snap}: module count", len(mods["modules"]), len(theirs["modules"]))
    for m in theirs["modules"]:
        base = int(m["base_addr"], 16)
        o = ours_by_base.get(base)
        name = m["filename"]
        if o is None:
            t.check(f"{snap}: module {name} present", False, True)
            continue
        t.check(f"{snap}: module {name} file name", base_name(o["path"]), name)
        t.check(f"{snap}: module {name} end", int(o["end"], 16), int(m["end_addr"], 16))
        t.check(
            f"{snap}: module {name} debug file", base_name(o["debug_file"]) or None, m["debug_file"] or None
        )
        t.check(f"{snap}: module {name} debug id", debug_id(o["debug_id"]), debug_id(m["debug_id"]))
        t.check(f"{snap}: module {name} code id", (o["code_id"] or "").lower(), (m["code_id"] or "").lower())
        t.check(f"{snap}: module {name} version", o["file_version"], m["version"])


def stackwalk_binary() -> str | None:
    """minidump-stackwalk (rust-minidump 0.25, the oracle ./dev installs into .venv/bin), if here."""
    for candidate in (
        Path(sys.executable).parent / "minidump-stackwalk",
        ROOT / ".venv" / "bin" / "minidump-stackwalk",
    ):
        if candidate.exists():
            return str(candidate)
    return shutil.which("minidump-stackwalk")


def corpus_minidumps() -> list[Path]:
    """Every minidump of the corpus (by its magic), sorted."""
    out = []
    for p in sorted(CORPUS.rglob("*.dmp")):
        with open(p, "rb") as f:
            if f.read(4) == b"MDMP":
                out.append(p)
    return out


def symbols_for(dump: Path) -> Path | None:
    """The Breakpad symbol directory beside a dump, if its folder has one."""
    folder = dump.parent / "symbols"
    return folder if folder.is_dir() else None


def compare_stackwalk_here(t: Tally) -> None:
    """minidump-stackwalk run here on every minidump of the corpus (with the symbols beside it)."""
    binary = stackwalk_binary()
    if binary is None:
        raise RuntimeError("minidump-stackwalk is not installed (./dev setup puts it in .venv/bin)")
    for dump in corpus_minidumps():
        symbols = symbols_for(dump)
        r = subprocess.run(
            [binary, "--json", str(dump), *([str(symbols)] if symbols else [])],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if r.returncode != 0:
            t.check(f"{dump.name}: minidump-stackwalk ran", r.stderr.strip()[-200:], "")
            continue
        compare_stackwalk(t, f"{dump.parent.name}/{dump.name}", dump, symbols, json.loads(r.stdout))


def compare_breakpad_machine_readable(t: Tally) -> None:
    """Breakpad's own ``minidump_stackwalk -m`` output for minidump2.dmp, with the corpus' symbols."""
    folder = CORPUS / "breakpad-minidump2"
    dump, symbols = folder / "minidump2.dmp", folder / "symbols"
    rows = [
        line.split("|")
        for line in (folder / "minidump2.stackwalk.machine_readable.out").read_text().splitlines()
    ]
    a = nmf("analyze", str(dump), "--symbols", str(symbols))
    stacks = nmf("stack", "--all", str(dump), "--symbols", str(symbols))
    mods = nmf("modules", str(dump))
    crash = next(r for r in rows if r[0] == "Crash")
    t.check("minidump2: crash reason", (a["exception"] or {}).get("name"), crash[1])
    t.check("minidump2: crash address", hexint(a["signal"]["address"]), int(crash[2], 16))
    frames = stacks["threads"][0]["frames"]
    expected = [r for r in rows if len(r) == 7 and r[0] == "0"]
    t.check("minidump2: frame count", len(frames), len(expected))
    for f, (_t, n, module, function, file, line, _off) in zip(frames, expected, strict=False):
        t.check(f"minidump2: frame {n} module", base_name(f["module"]), module)
        t.check(f"minidump2: frame {n} function", f["function"] or "", function)
        t.check(f"minidump2: frame {n} file", f["file"] or "", file)
        t.check(f"minidump2: frame {n} line", str(f["line"]) if f["line"] is not None else "", line)
    by_name = {base_name(m["path"]) or "": m for m in mods["modules"]}
    for _, name, version, debug_file, debug_id, base, end, _main in (r for r in rows if r[0] == "Module"):
        m = by_name.get(name)
        if m is None:
            t.check(f"minidump2: module {name} present", False, True)
            continue
        t.check(f"minidump2: module {name} version", m["file_version"] or "", version)
        t.check(f"minidump2: module {name} debug file", base_name(m["debug_file"]), debug_file)
        t.check(f"minidump2: module {name} debug id", m["debug_id"], debug_id)
        t.check(
            f"minidump2: module {name} range",
            (int(m["start"], 16), int(m["end"], 16) - 1),
            (int(base, 16), int(end, 16)),
        )


def compare_elf_cores(t: Tally) -> None:
    """ELF cores against what eu-stack and gdb printed for them (pid, threads, signal, registers, frame 0)."""
    for folder in sorted(p for p in CORPUS.iterdir() if (p / "EUSTACK.txt").exists()):
        core = next(p for p in sorted(folder.iterdir()) if p.suffix not in (".txt", ".sym"))
        eu = (folder / "EUSTACK.txt").read_text()
        gdb = (folder / "GDB.txt").read_text() if (folder / "GDB.txt").exists() else ""
        a = nmf("analyze", str(core))
        stacks = nmf("stack", "--all", str(core))
        name = folder.name
        pid = re.search(r"^PID (\d+) - core", eu, re.M)
        if pid:
            t.check(f"{name}: pid", a["process"]["pid"], int(pid.group(1)))
        tids = sorted(int(x) for x in re.findall(r"^TID (\d+):", eu, re.M))
        if tids:
            t.check(f"{name}: thread ids", sorted(th["tid"] for th in stacks["threads"]), tids)
        sig = re.search(r"Program terminated with signal (SIG\w+)", gdb)
        if sig:
            t.check(f"{name}: signal", a["signal"]["name"], sig.group(1))
        rip = re.search(r"^rip\s+(0x[0-9a-f]+)", gdb, re.M)
        if rip:
            t.check(f"{name}: pc", hexint(a["fault_pc"]), int(rip.group(1), 16))
        first = re.search(r"^#0\s+(0x[0-9a-f]+)", gdb, re.M)
        if first and a["frames"]:
            t.check(f"{name}: frame 0", hexint(a["frames"][0]["pc"]), int(first.group(1), 16))


EU_NAMES = {"rflags": "eflags", "fs.base": "fs_base", "gs.base": "gs_base"}
"""eu-readelf's register names that we spell as the kernel's user_regs_struct does."""


def eu_readelf_threads(core: Path) -> list[dict[str, int]]:
    """Each NT_PRSTATUS's pid and registers as ``eu-readelf -n`` prints them (values made unsigned)."""
    r = subprocess.run(
        ["eu-readelf", "-n", str(core)], capture_output=True, text=True, check=False, timeout=120
    )
    out: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    for line in r.stdout.splitlines():
        head = line.strip().split()
        if len(head) >= 3 and head[0] in ("CORE", "LINUX") and head[1].isdigit():
            current = {} if head[2] == "PRSTATUS" else None
            if current is not None:
                out.append(current)
            continue
        if current is None:
            continue
        for name, value in re.findall(r"([\w.]+):\s+(-?(?:0x[0-9a-f]+|\d+))(?=\s|,|$)", line):
            current[EU_NAMES.get(name, name)] = int(value, 0)
    return out


def compare_eu_readelf(t: Tally) -> None:
    """Every ELF core's threads and registers (NT_PRSTATUS) and process (NT_PRPSINFO) against eu-readelf."""
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        cores = [p for p in sorted(folder.iterdir()) if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]
        for core in cores:
            theirs = eu_readelf_threads(core)
            if not theirs:
                continue
            try:
                regs = nmf("regs", str(core))
            except RuntimeError:
                continue  # an architecture whose registers we do not name (ppc64, s390x)
            name = folder.name
            bits = 32 if "eip" in regs["registers"] else 64
            mask = (1 << bits) - 1
            first = theirs[0]
            t.check(f"{name}: crashed thread", regs["tid"], first.get("pid"))
            for reg, value in regs["registers"].items():
                if reg in first:
                    t.check(f"{name}: {reg}", int(value, 16), first[reg] & mask)
            stacks = nmf("stack", "--all", str(core))
            t.check(
                f"{name}: thread ids",
                sorted(th["tid"] for th in stacks["threads"]),
                sorted(x["pid"] for x in theirs),
            )


def eu_unstrip_modules(core: Path) -> dict[int, str]:
    """start -> build-id of each module ``eu-unstrip -n --core`` finds in a core."""
    r = subprocess.run(
        ["eu-unstrip", "-n", f"--core={core}"], capture_output=True, text=True, check=False, timeout=120
    )
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"0x([0-9a-f]+)\+0x[0-9a-f]+ ([0-9a-f]+|-)@", line)
        if m:
            out[int(m.group(1), 16)] = m.group(2)
    return out


def header_copies(core: Path) -> set[int]:
    """The mappings (their starts, from ``eu-readelf -n``'s NT_FILE) that map a file's offset 0 again
    above a lower mapping of the same file at offset 0: a data segment that shares the file's first
    page with the code (a copy of the ELF header, not where the image lies)."""
    text = subprocess.run(["eu-readelf", "-n", str(core)], capture_output=True, text=True, check=False).stdout
    first: dict[str, int] = {}
    out = set()
    for start, offset, path in re.findall(r"^\s+([0-9a-f]+)-[0-9a-f]+ ([0-9a-f]+) +\d+ +(\S+)$", text, re.M):
        if int(offset, 16) == 0:
            if path in first and int(start, 16) > first[path]:
                out.add(int(start, 16))
            first.setdefault(path, int(start, 16))
    return out


def compare_eu_unstrip(t: Tally) -> None:
    """Every ELF core's module list (load address and build-id) against eu-unstrip's.  Where
    eu-unstrip places a module at a copy of its header (``header_copies``: elfutils reads the
    executable's header again in a data mapping that shares its first page), the module that holds
    that address is compared: an ET_EXEC lies only at its link address, where gdb and drgn place it."""
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        for core in (p for p in sorted(folder.iterdir()) if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"):
            theirs = eu_unstrip_modules(core)
            if not theirs:
                continue
            mods = [m for m in nmf("modules", str(core))["modules"] if m["start"]]
            ours = {int(m["start"], 16): m["build_id"] for m in mods}
            copies = header_copies(core)
            for start, build_id in sorted(theirs.items()):
                if start in copies and start not in ours:
                    holder = next((m for m in mods if int(m["start"], 16) <= start < int(m["end"], 16)), None)
                    got = holder["build_id"] if holder else "absent"
                    t.check(
                        f"{folder.name}: module holding {start:#x} (a header copy) build-id", got, build_id
                    )
                    continue
                t.check(f"{folder.name}: module at {start:#x} build-id", ours.get(start, "absent"), build_id)


def compare_rizin(t: Tally) -> None:
    """The Windows ARM64 triage dump against rizin's test expectations: the bug check and its
    arguments, every context register, the four instructions at the pc, and the backtrace's pcs and
    stack pointers (rizin names the frames from PDBs fetched over the network: not compared)."""
    folder = CORPUS / "rizin-dmp-triage_arm64"
    dump = folder / "triage_arm64.dmp"
    text = (folder / "EXPECTED.txt").read_text()
    expect = text[text.index("EXPECT=<<EOF") :]
    a = nmf("analyze", str(dump))
    code = re.search(r"BugCheckCode : 0x([0-9a-f]+) \((\w+)\)", expect)
    if code is None:
        raise ValueError(f"{folder}/EXPECTED.txt names no BugCheckCode")
    t.check("triage_arm64: bug check code", int(a["bugcheck"]["code"], 16), int(code.group(1), 16))
    t.check("triage_arm64: bug check name", a["bugcheck"]["name"], code.group(2))
    params = [int(v, 16) for v in re.findall(r"BugCheckParameter\d : 0x([0-9a-f]+)", expect)]
    t.check("triage_arm64: bug check arguments", [int(v, 16) for v in a["bugcheck"]["parameters"]], params)
    regs = nmf("regs", str(dump))["registers"]
    for name, value in re.findall(r"^(\w+) = 0x([0-9a-f]+)$", expect, re.M):
        t.check(f"triage_arm64: {name}", int(regs[name], 16) if name in regs else None, int(value, 16))
    pc = regs.get("pc", "0x0")
    insns = nmf("disasm", str(dump), pc)["instructions"]
    theirs = re.findall(r"^((?:add|bl|adrp|ldr|str|mov|sub|b|cbz|cbnz)\b.*)$", expect, re.M)[:4]
    for i, want in enumerate(theirs):
        ours = insns[i]["text"].replace("#", "") if i < len(insns) else None
        t.check(f"triage_arm64: instruction {i} at the pc", ours, want.strip())
    frames = nmf("stack", str(dump))["threads"][0]["frames"]
    bt = [
        (int(pc_, 16), int(sp, 16))
        for pc_, sp in re.findall(r"^\d+\s+0x([0-9a-f]+) sp: 0x([0-9a-f]+)", expect, re.M)
    ]
    t.check("triage_arm64: backtrace length", len(frames), len(bt))
    for i, (want_pc, want_sp) in enumerate(bt):
        f = frames[i] if i < len(frames) else {"pc": None, "sp": None}
        t.check(f"triage_arm64: frame {i} pc", hexint(f["pc"]), want_pc)
        t.check(f"triage_arm64: frame {i} sp", hexint(f["sp"]), want_sp)


SOURCES: dict[str, Callable[[Tally], None]] = {
    "minidump-stackwalk (rust-minidump, test.dmp)": lambda t: compare_stackwalk(
        t, "json-pretty", RUST / "test.dmp", None
    ),
    "minidump-stackwalk (rust-minidump, test.dmp + symbols)": lambda t: compare_stackwalk(
        t, "json-pretty-symbols", RUST / "test.dmp", RUST / "symbols"
    ),
    "minidump-stackwalk (rust-minidump, macOS Crashpad)": lambda t: compare_stackwalk(
        t, "macos_inlines_json_pretty", RUST / "pipeline-inlines-macos-segv.dmp", None
    ),
    "minidump_stackwalk -m (Breakpad, minidump2)": compare_breakpad_machine_readable,
    "eu-stack and gdb (ELF cores)": compare_elf_cores,
    "eu-readelf -n (ELF cores: threads and registers)": compare_eu_readelf,
    "eu-unstrip -n (ELF cores: modules and build-ids)": compare_eu_unstrip,
    "rizin (Windows ARM64 triage dump)": compare_rizin,
}


ORACLE_SOURCES: dict[str, Callable[[Tally], None]] = {
    "minidump-stackwalk 0.25 run here (every minidump of the corpus)": compare_stackwalk_here,
}
"""Peers run on this machine over every dump of a kind (the figure issue 28 asks of us); their
mismatches are the work left, listed by --show, not a failure of the tool."""


def run() -> list[Tally]:
    """Every source's tally."""
    out = []
    for name, compare in SOURCES.items():
        t = Tally(name)
        compare(t)
        out.append(t)
    return out


def run_oracles() -> list[Tally]:
    """The oracles' tallies (each needs its peer installed here)."""
    out = []
    for name, compare in ORACLE_SOURCES.items():
        t = Tally(name)
        compare(t)
        out.append(t)
    return out


def main() -> int:
    """Print matched / compared per source."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object with every mismatch")
    ap.add_argument("--show", action="store_true", help="list the fields that differ")
    ap.add_argument(
        "--oracles",
        action="store_true",
        help="only the peers run here over every dump of a kind (minidump-stackwalk on every minidump)",
    )
    args = ap.parse_args()
    if not CORPUS.exists():
        print(f"peer_agreement: {CORPUS} is not here", file=sys.stderr)
        return 2
    try:
        tallies = run_oracles() if args.oracles else run()
    except (RuntimeError, OSError, ValueError) as e:
        print(f"peer_agreement: {e}", file=sys.stderr)
        return 2
    compared = sum(t.compared for t in tallies)
    matched = sum(t.matched for t in tallies)
    if args.json:
        print(json.dumps({
            "sources": [
                {"source": t.source, "matched": t.matched, "compared": t.compared,
                 "mismatches": t.mismatches, "skipped": t.skipped}
                for t in tallies
            ],
            "matched": matched,
            "compared": compared,
        }, indent=2))  # fmt: skip
        return 0
    for t in tallies:
        skipped = f" ({len(t.skipped)} left out on purpose: --show says why)" if t.skipped else ""
        print(f"{t.matched:5d} / {t.compared:<5d} {100 * t.ratio:6.2f}%  {t.source}{skipped}")
        if args.show:
            for m in t.mismatches:
                print(f"        differs: {m}")
            for m in t.skipped:
                print(f"        left out: {m}")
    print(f"{matched:5d} / {compared:<5d} {100 * matched / max(compared, 1):6.2f}%  all sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
