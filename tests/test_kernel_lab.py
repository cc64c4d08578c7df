"""The kernel lab: myfault.ko crashes, hangs and leaks a real Debian kernel in QEMU (TCG), and every
vmcore is read back with the same commands as process cores.

The lab runs once per session: all scenarios, two guests at a time (one per core), each left in its
own directory with its vmcore and console log.  The checks compare the analysis with what the guest
said on its serial console (an independent channel: the kernel's own oops and myfaultctl's counts),
with the module's source and its ELF file, and with drgn read directly.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from notmyfault.analysis.signature import failure_kind
from tests.conftest import REPO, children, proc_state, run_json, run_nmf

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64" or not shutil.which("apt-cache"),
    reason="the lab boots Debian's x86_64 kernel: it needs an x86_64 Debian/Ubuntu host",
)

SEED_LEAK = 40_000_000
BLOCK = 4096
PAGED_LEAK, PAGED_BLOCK = 20_000_000, 65536
MEMORY = "256"

SCENARIOS: dict[str, list[str]] = {
    "seed": ["leak", "--pool", "nonpaged", "--rate", "40MB", "--stop-at", str(SEED_LEAK), "--then-crash", "high-irql"],
    "buffer-overflow": ["crash", "buffer-overflow"],
    "code-overwrite": ["crash", "code-overwrite"],
    "stack-trash": ["crash", "stack-trash"],
    "null-deref": ["crash", "null-deref"],
    "stack-overflow": ["crash", "stack-overflow"],
    "bug": ["crash", "bug"],
    "double-free": ["crash", "double-free"],
    "panic": ["crash", "panic", "--code", "0xd1"],
    "irp": ["hang", "irp"],
    "dpc": ["hang", "dpc"],
    "deadlock": ["hang", "deadlock"],
    "paged": [
        "leak", "--pool", "paged", "--rate", "40MB", "--stop-at", str(PAGED_LEAK),
        "--block", str(PAGED_BLOCK), "--then-crash", "null-deref",
    ],
}  # fmt: skip


class Run:
    """One lab run: its directory, what the command printed, and the analysis JSON."""

    def __init__(self, name: str, directory: Path, proc: subprocess.CompletedProcess[str]) -> None:
        self.name, self.directory, self.proc = name, directory, proc
        self.vmcore = directory / "vmcore"
        self.console = (directory / "console.log").read_text(errors="replace")
        self.meta = json.loads((directory / "run.json").read_text())

    def analysis(self) -> dict[str, Any]:
        r, data = run_json("analyze", str(self.vmcore))
        assert r.returncode == 0, r.stderr
        return data


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every scenario, run two at a time; the seed's with the analysis printed, as a user runs it."""
    r = run_nmf("lab", "fetch", timeout=900)
    assert r.returncode == 0, r.stderr
    root = tmp_path_factory.mktemp("lab")

    def one(name: str) -> Run:
        out = root / name
        extra = [] if name == "seed" else ["--no-analysis"]
        if name == "null-deref":
            extra.append("--kdump")  # also makedumpfile's compressed format (test_kdump_compressed_...)
        proc = run_nmf(
            "lab", "run", "--out", str(out), "--memory", MEMORY, *extra, "--", *SCENARIOS[name], timeout=300
        )
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        return Run(name, out, proc)

    # build once before the parallel runs (both would otherwise build the same directory)
    first = one("null-deref")
    rest = [n for n in SCENARIOS if n != "null-deref"]
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(rest, pool.map(one, rest), strict=True))
    runs["null-deref"] = first
    yield runs
    for run in runs.values():
        run.vmcore.unlink(missing_ok=True)


def _blamed_function(a: dict[str, Any]) -> str:
    assert a["blamed"] is not None, a
    assert a["blamed"]["module"] == "myfault", a["blamed"]
    return str(a["blamed"]["function"])


def _console_registers(console: str, rip_prefix: str) -> dict[str, int]:
    """The registers the guest kernel printed for the oops at ``rip_prefix`` (the serial console)."""
    lines = [re.sub(r"^\[\s*\d+\.\d+\] ", "", line) for line in console.splitlines()]
    start = next(i for i, line in enumerate(lines) if f"RIP: 0010:{rip_prefix}" in line)
    regs: dict[str, int] = {}
    for line in lines[start + 1 : start + 14]:
        if "Call Trace" in line or "RIP:" in line:
            break
        for name, value in re.findall(r"\b([A-Z0-9]{2,6}): (?:[0-9a-f]{4}:)?([0-9a-f]{8,16})\b", line):
            regs[name.lower()] = int(value, 16)
    return regs


def _myfaultctl_counts(console: str) -> list[tuple[int, int]]:
    """What myfaultctl printed in the guest after each request: (leaked bytes, blocks)."""
    return [(int(b), int(n)) for b, n in re.findall(r"^ok (\d+) (\d+)$", console, re.M)]


def _source_line(marker: str) -> int:
    src = (REPO / "src/notmyfault/native/kernel/myfault.c").read_text().splitlines()
    return next(i for i, line in enumerate(src, 1) if marker in line)


# --- the seed's scenario ------------------------------------------------------------------------


def test_seed_scenario_end_to_end(lab: dict[str, Run]) -> None:
    """Leak `Leak` nonpaged, then high-irql: the D1 picture, myfault blamed, printed by `lab run` itself."""
    run = lab["seed"]
    text = run.proc.stdout
    assert "page-fault-irqs-off (the picture of DRIVER_IRQL_NOT_LESS_OR_EQUAL (D1))" in text
    assert "Arg2: 0000000000000002, context: 2 = interrupts off" in text
    assert re.search(r"Probably caused by : myfault \( myfault!myfault_high_irql\+0x[0-9a-f]+ \)", text)
    assert f"vmcore: {run.vmcore}" in run.proc.stderr
    assert run.meta["panicked"]
    assert not run.meta["nmi_sent"]
    assert set(run.meta["phases"]) >= {"build", "initramfs", "boot", "scenario", "dump"}


def test_seed_trap_frame_registers_equal_the_kernels_oops(lab: dict[str, Run]) -> None:
    run = lab["seed"]
    r, regs = run_json("regs", str(run.vmcore))
    assert r.returncode == 0, r.stderr
    ours = {k: int(v, 16) for k, v in regs["registers"].items()}
    printed = _console_registers(run.console, "myfault_high_irql+")
    for name in (
        "rax",
        "rbx",
        "rcx",
        "rdx",
        "rsi",
        "rdi",
        "rbp",
        "r08",
        "r09",
        "r10",
        "r11",
        "r12",
        "r13",
        "r14",
        "r15",
        "rsp",
    ):
        assert ours[name.replace("r0", "r")] == printed[name], name
    assert ours["eflags"] == printed["eflags"]
    assert not ours["eflags"] & (1 << 9), "interrupts were off"
    a = run.analysis()
    assert a["crash_class"] == "page-fault-irqs-off"
    assert _blamed_function(a) == "myfault_high_irql"
    assert a["fault_pc"] == regs["registers"]["rip"]
    assert a["instruction"]["text"] == "mov eax, dword ptr [rbx]"
    assert int(a["kernel"]["arguments"][0], 16) == ours["rbx"] == printed["cr2"], "Arg1 is the freed address"
    assert a["kernel"]["arguments"][1:3] == ["0x2", "0x0"]


def test_seed_leak_tops_poolused_with_the_exact_count(lab: dict[str, Run]) -> None:
    run = lab["seed"]
    blocks = math.ceil(SEED_LEAK / BLOCK)
    assert _myfaultctl_counts(run.console)[0] == (blocks * BLOCK, blocks)
    r, pools = run_json("poolused", str(run.vmcore))
    assert r.returncode == 0, r.stderr
    top = pools["slab_caches"][0]
    assert top["name"] == "Leak"
    assert top["active_objects"] == blocks
    assert top["object_size"] == BLOCK
    text = run_nmf("poolused", str(run.vmcore), "--top", "3").stdout
    assert re.search(rf"^ Leak\s+{blocks}\s", text, re.M)


def test_seed_vm_warns_of_unreclaimable_slab(lab: dict[str, Run]) -> None:
    run = lab["seed"]
    r, vm = run_json("vm", str(run.vmcore))
    assert r.returncode == 0, r.stderr
    assert vm["largest_slab_cache"] == "Leak"
    assert any(w.startswith("Excessive unreclaimable slab") for w in vm["warnings"]), vm
    c = vm["counters"]
    assert c["Slab unreclaimable"] >= SEED_LEAK
    assert c["Total memory"] > c["Free memory"] > 0
    assert "Excessive unreclaimable slab" in run_nmf("vm", str(run.vmcore)).stdout


def test_a_task_not_in_the_vmcore_is_one_line(lab: dict[str, Run]) -> None:
    for command in ("regs", "stack"):
        r = run_nmf(command, str(lab["seed"].vmcore), "--thread", "999999")
        assert r.returncode == 2, (command, r.stderr)
        assert r.stderr == "notmyfault: error: the dump has no task with pid 999999\n"


def test_seed_modules_search_disasm_stack(lab: dict[str, Run]) -> None:
    from elftools.elf.elffile import ELFFile

    run = lab["seed"]
    r, mods = run_json("modules", str(run.vmcore))
    assert r.returncode == 0, r.stderr
    by_name = {m["name"]: m for m in mods["modules"]}
    assert set(by_name) == {"qemu_fw_cfg", "pvpanic", "pvpanic_mmio", "myfault"}
    with open(run.directory / "myfault.ko", "rb") as f:
        modinfo = ELFFile(f).get_section_by_name(".modinfo").data().split(b"\0")
    srcversion = next(x.split(b"=", 1)[1].decode() for x in modinfo if x.startswith(b"srcversion="))
    assert by_name["myfault"]["srcversion"] == srcversion
    assert by_name["myfault"]["version"] == "1.0"
    assert "O" in by_name["myfault"]["taints"]
    assert "E" in by_name["myfault"]["taints"]
    base = int(by_name["myfault"]["base"], 16)
    a = run.analysis()
    assert base <= int(a["fault_pc"], 16) < base + by_name["myfault"]["size"]

    r, hits = run_json("search", str(run.vmcore), "Leak")
    assert r.returncode == 0, r.stderr
    assert any(h["where"].startswith("slab Leak object") for h in hits["hits"])
    r, hits = run_json("search", str(run.vmcore), "--module", "myfault", "Leak")
    assert hits["hits"]
    assert all(h["where"].startswith("myfault+") for h in hits["hits"])

    r, dis = run_json("disasm", str(run.vmcore), "myfault_high_irql", "-n", "40")
    assert r.returncode == 0, r.stderr
    at = {i["address"]: i["text"] for i in dis["instructions"]}
    assert at[a["fault_pc"]] == "mov eax, dword ptr [rbx]"

    r, stacks = run_json("stack", str(run.vmcore))
    names = [f["function"] for f in stacks["threads"][0]["frames"]]
    assert names.index("asm_exc_page_fault") < names.index("myfault_high_irql") < names.index("myfault_ioctl")
    assert names[-1].startswith("entry_SYSCALL_64")


def test_seed_without_debug_vmlinux_reads_the_kernel_log(lab: dict[str, Run], tmp_path: Path) -> None:
    """A vmcore alone: VMCOREINFO leads to the printk buffer, whose oops names class, blame and registers."""
    from drgn.helpers.linux.printk import get_dmesg

    from notmyfault.dumps.vmcore import Vmcore

    run = lab["seed"]
    bare = tmp_path / "vmcore"
    os.link(run.vmcore, bare)
    r, a = run_json("analyze", str(bare))
    assert r.returncode == 0, r.stderr
    assert a["crash_class"] == "page-fault-irqs-off"
    assert _blamed_function(a) == "myfault_high_irql"
    assert any("no debug vmlinux" in n for n in a["notes"])
    with Vmcore(bare) as alone, Vmcore(run.vmcore) as full:
        assert alone.printk_log() == get_dmesg(full.prog).decode()
    r = run_nmf("vm", str(bare))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "--debug-file vmlinux" in r.stderr
    r, a = run_json(
        "analyze",
        str(bare),
        "--debug-file",
        str(run.directory / "vmlinux"),
        "--debug-file",
        str(run.directory / "myfault.ko"),
    )
    assert a["crash_class"] == "page-fault-irqs-off"
    assert not any("no debug vmlinux" in n for n in a["notes"])


# --- every crash type ---------------------------------------------------------------------------


def test_buffer_overflow_is_slab_corruption(lab: dict[str, Run]) -> None:
    run = lab["buffer-overflow"]
    a = run.analysis()
    assert a["crash_class"] == "slab-corruption"
    assert _blamed_function(a) == "myfault_buffer_overflow"
    assert "myfault_overflow" in a["description"]
    assert "Redzone overwritten" in a["description"]
    assert "BUG myfault_overflow" in run.console


def test_code_overwrite_writes_read_only_text(lab: dict[str, Run]) -> None:
    from notmyfault.dumps.vmcore import Vmcore

    run = lab["code-overwrite"]
    a = run.analysis()
    assert a["crash_class"] == "write-to-readonly"
    assert _blamed_function(a) == "myfault_code_overwrite"
    assert a["access"] == "write"
    with Vmcore(run.vmcore) as vm:
        target = vm.prog.symbol("myfault_code_target").address
    assert int(a["kernel"]["arguments"][0], 16) == target
    assert "#PF: error_code(0x0003) - permissions violation" in run.console


def test_stack_trash_trips_the_stack_protector(lab: dict[str, Run]) -> None:
    a = lab["stack-trash"].analysis()
    assert a["crash_class"] == "stack-protector"
    assert _blamed_function(a) == "myfault_stack_trash"
    assert a["abort_message"].startswith(
        "stack-protector: Kernel stack is corrupted in: myfault_stack_trash+"
    )


def test_null_deref(lab: dict[str, Run]) -> None:
    run = lab["null-deref"]
    a = run.analysis()
    assert a["crash_class"] == "null-deref"
    assert _blamed_function(a) == "myfault_null_deref"
    assert a["kernel"]["arguments"][:3] == ["0x0", "0x0", "0x0"]
    assert a["access"] == "read"
    _r, regs = run_json("regs", str(run.vmcore))
    printed = _console_registers(run.console, "myfault_null_deref+")
    assert int(regs["registers"]["rsp"], 16) == printed["rsp"]
    assert int(regs["registers"]["eflags"], 16) == printed["eflags"]


def test_stack_overflow_hits_the_guard_page(lab: dict[str, Run]) -> None:
    a = lab["stack-overflow"].analysis()
    assert a["crash_class"] == "stack-overflow"
    assert _blamed_function(a) == "myfault_stack_overflow"
    recursion = [f for f in a["frames"] if f["function"] == "myfault_stack_overflow"]
    assert len(recursion) > 40, "the 16 KiB stack holds about 60 frames of 272 bytes"


def test_bug_names_the_source_line(lab: dict[str, Run]) -> None:
    a = lab["bug"].analysis()
    assert a["crash_class"] == "bug"
    assert _blamed_function(a) == "myfault_bug"
    assert a["abort_message"].endswith(f"myfault.c:{_source_line('BUG();')}!")
    assert a["instruction"]["text"] == "ud2"


def test_double_free_caught_by_slub(lab: dict[str, Run]) -> None:
    a = lab["double-free"].analysis()
    assert a["crash_class"] == "double-free"
    assert _blamed_function(a) == "myfault_double_free"
    assert re.fullmatch(r"kernel BUG at mm/slub\.c:\d+!", a["abort_message"])


def test_panic_with_a_chosen_code(lab: dict[str, Run]) -> None:
    a = lab["panic"].analysis()
    assert a["crash_class"] == "panic"
    assert _blamed_function(a) == "myfault_panic"
    assert a["abort_message"] == "myfault: bug check 0xd1"
    assert a["fault_pc"] is None, "no exception: no trap frame"


# --- every hang type ----------------------------------------------------------------------------


def test_hang_irp_is_a_hung_task_in_myfault(lab: dict[str, Run]) -> None:
    run = lab["irp"]
    a = run.analysis()
    assert a["crash_class"] == "hung-task"
    assert _blamed_function(a) == "myfault_hang_irp"
    pid = int(re.search(r"INFO: task myfaultctl:(\d+) blocked", run.console).group(1))  # type: ignore[union-attr]
    _r, stacks = run_json("stack", str(run.vmcore), "--thread", str(pid))
    names = [f["function"] for f in stacks["threads"][0]["frames"]]
    # wait_for_completion reaches __wait_for_common by a tail call: it leaves no frame of its own
    assert names.index("__wait_for_common") < names.index("myfault_hang_irp")
    assert not run.meta["nmi_sent"]


def test_hang_dpc_is_stopped_by_the_nmi_button(lab: dict[str, Run]) -> None:
    run = lab["dpc"]
    a = run.analysis()
    assert run.meta["nmi_sent"], "nothing inside the guest can notice: the lab sends the NMI"
    assert a["crash_class"] == "nmi"
    assert _blamed_function(a) == "myfault_hang_dpc"
    names = [f["function"] for f in a["frames"]]
    assert names.index("myfault_hang_dpc") < names.index("multi_cpu_stop")
    _r, regs = run_json("regs", str(run.vmcore))
    assert not int(regs["registers"]["eflags"], 16) & (1 << 9), "it spins with interrupts off"


def test_deadlock_cycle_names_both_mutexes(lab: dict[str, Run]) -> None:
    from notmyfault.dumps.vmcore import Vmcore

    run = lab["deadlock"]
    a = run.analysis()
    assert a["crash_class"] == "hung-task"
    assert _blamed_function(a) == "myfault_deadlock_thread"
    cycle = a["deadlock"]
    assert len(cycle) == 2
    assert cycle[0]["owner"] == cycle[1]["tid"]
    assert cycle[1]["owner"] == cycle[0]["tid"]
    with Vmcore(run.vmcore) as vm:
        mutexes = {vm.prog.symbol("deadlock_a").address, vm.prog.symbol("deadlock_b").address}
    assert {int(w["mutex"], 16) for w in cycle} == mutexes


def test_paged_leak_is_vmalloc_by_tag(lab: dict[str, Run]) -> None:
    run = lab["paged"]
    blocks = math.ceil(PAGED_LEAK / PAGED_BLOCK)
    assert _myfaultctl_counts(run.console)[0] == (blocks * PAGED_BLOCK, blocks)
    _r, pools = run_json("poolused", str(run.vmcore))
    mine = [u for u in pools["vmalloc"] if u["tag"] == "Leak"]
    assert mine == [
        {"caller": "myfault_leak_one", "tag": "Leak", "areas": blocks, "bytes": blocks * PAGED_BLOCK}
    ]
    assert run.analysis()["crash_class"] == "null-deref"


def test_kdump_compressed_vmcore_reads_as_the_elf_one(lab: dict[str, Run], tmp_path: Path) -> None:
    """makedumpfile's compressed format, as QEMU writes it (flattened) and as makedumpfile -R puts it
    in place (what kdump-tools and RHEL's kdump keep): the same analyze page, stack and vm as the
    ELF vmcore of the same moment, and triage takes it."""
    run = lab["null-deref"]
    flat = run.directory / "vmcore.kdump"
    assert flat.read_bytes()[:12] == b"makedumpfile"
    raw = tmp_path / "vmcore"
    with open(flat, "rb") as src:
        subprocess.run(["makedumpfile", "-R", str(raw)], stdin=src, capture_output=True, check=True)
    assert raw.read_bytes()[:8] == b"KDUMP   "
    for found in [
        run.directory / "vmlinux",
        *run.directory.glob("*.ko"),
    ]:  # the debug files, as beside the original
        (tmp_path / found.name).symlink_to(found.resolve())
    for command in ("analyze", "stack", "vm"):
        _, elf = run_json(command, str(run.vmcore))
        for packed in (flat, raw):
            r, got = run_json(command, str(packed))
            assert r.returncode == 0, r.stderr
            if command == "analyze":
                assert got.pop("dump") == str(packed)
                elf_a = dict(elf)
                elf_a.pop("dump")
                assert got == elf_a
            else:
                assert got == elf
    r, summary = run_json("triage", "ingest", str(flat), "--db", str(tmp_path / "t.db"))
    assert r.returncode == 0
    assert (summary["found"], summary["failed"]) == (1, 0)


def test_every_kind_is_exercised() -> None:
    from notmyfault.faults.kernel import CRASHES, HANGS

    covered = {args[1] for args in SCENARIOS.values() if args[0] in ("crash", "hang")}
    covered |= {args[args.index("--then-crash") + 1] for args in SCENARIOS.values() if "--then-crash" in args}
    assert set(CRASHES) | set(HANGS) <= covered


# --- the interactive guest, persistence, and stopping ------------------------------------------


def _lab_process(*args: str) -> subprocess.Popen[str]:
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "notmyfault", "lab", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], marker: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"{marker!r} never came:\n{''.join(seen[-30:])}")


def test_shell_unload_frees_a_leak_unless_it_persists(lab: dict[str, Run], tmp_path: Path) -> None:
    """In `lab shell`: unloading frees the Leak cache; a persistent leak keeps myfault loaded, and the
    panic typed at the prompt is captured and analysed with the persistent blocks in it."""
    proc = _lab_process("shell", "--out", str(tmp_path), "--memory", MEMORY)
    seen: list[str] = []
    try:
        _read_until(proc, "notmyfault-lab: ready", seen)
        assert proc.stdin is not None
        proc.stdin.write(
            "myfaultctl 3 1 100000000 4000000 4096 0 Leak\n"
            "rmmod myfault && echo unloaded-ok\n"
            'echo "Leak caches: $(grep -c "^Leak " /proc/slabinfo)"\n'
            "insmod /lib/modules/myfault.ko\n"
            "myfaultctl 3 1 100000000 4000000 4096 1 Leak\n"
            "rmmod myfault || echo rmmod-refused\n"
            "myfaultctl 1 5\n"
        )
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
    text = "".join(seen) + out
    assert proc.returncode == 0, text[-3000:]
    assert text.count("ok 4001792 977") == 2
    assert "unloaded-ok" in text
    assert "Leak caches: 0" in text
    assert "rmmod-refused" in text
    assert "null-deref (the picture of SYSTEM_SERVICE_EXCEPTION (3B))" in text
    _r, pools = run_json("poolused", str(tmp_path / "vmcore"))
    leak = next(s for s in pools["slab_caches"] if s["name"] == "Leak")
    assert leak["active_objects"] == 977


def test_sigterm_stops_the_guest(lab: dict[str, Run], tmp_path: Path) -> None:
    """SIGTERM during a run: exit 130 with one line, and no QEMU left behind."""
    import signal
    import time

    proc = _lab_process(
        "run", "--out", str(tmp_path), "--memory", MEMORY, "--nmi-after", "300", "--", "hang", "dpc"
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "console.log").exists() or "notmyfault-lab: fault" not in (
            tmp_path / "console.log"
        ).read_text(errors="replace"):
            assert time.monotonic() < deadline
            assert proc.poll() is None
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert "Traceback" not in out
    left = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64.*{tmp_path}"], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    assert not (tmp_path / "vmcore").exists()


EXPECTED = {
    "seed": ("page-fault-irqs-off", "myfault_high_irql"),
    "buffer-overflow": ("slab-corruption", "myfault_buffer_overflow"),
    "code-overwrite": ("write-to-readonly", "myfault_code_overwrite"),
    "stack-trash": ("stack-protector", "myfault_stack_trash"),
    "null-deref": ("null-deref", "myfault_null_deref"),
    "stack-overflow": ("stack-overflow", "myfault_stack_overflow"),
    "bug": ("bug", "myfault_bug"),
    "double-free": ("double-free", "myfault_double_free"),
    "panic": ("panic", "myfault_panic"),
    "irp": ("hung-task", "myfault_hang_irp"),
    "dpc": ("nmi", "myfault_hang_dpc"),
    "deadlock": ("hung-task", "myfault_deadlock_thread"),
    "paged": ("null-deref", "myfault_null_deref"),
}


def test_triage_buckets_the_lab_vmcores_by_class_and_myfault_function(
    lab: dict[str, Run], tmp_path: Path
) -> None:
    """Fleet triage reads vmcores too: the kernel's panic machinery is skipped, so each signature ends
    in the myfault function that did it (null-deref and the paged leak's crash share one bucket)."""
    db = str(tmp_path / "triage.db")
    paths = [str(run.vmcore) for run in lab.values()]
    r, out = run_json("triage", "ingest", "--workers", "2", "--db", db, *paths, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (out["analysed"], out["failed"]) == (len(paths), 0)
    _, buckets = run_json("triage", "buckets", "--db", db)
    by_path = {}
    for b in buckets["buckets"]:
        _, members = run_json("triage", "show", b["id"], "--db", db)
        by_path.update({m["path"]: b["bucket"] for m in members["dumps"]})
    for name, run in lab.items():
        klass, function = EXPECTED[name]
        bucket = by_path[str(run.vmcore)]
        assert bucket.startswith(f"{failure_kind(klass)}:linux:"), (name, bucket)
        assert bucket.split(" | ")[-1].split(":")[-1] == function, (name, bucket)
        _, a = run_json("analyze", str(run.vmcore))
        assert a["bucket"] == bucket  # analyze's BUCKET_ID is the triage bucket
    assert len(buckets["buckets"]) == len(lab) - 1


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_lab_run_stopped_while_booting_kills_its_guest(
    signo: signal.Signals, lab: dict[str, Run], tmp_path: Path
) -> None:
    """The stop matrix's lab row, starting phase (test_sigterm_stops_the_guest is the working one):
    a run stopped while its guest boots ends with 130 within a second, and QEMU is gone within 5 s."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "notmyfault", "lab", "run", "--out", str(tmp_path / "run"), "--memory", MEMORY,
         "--no-analysis", "--", "crash", "null-deref"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        guests: list[int] = []
        while not guests:
            assert time.monotonic() < deadline, "no guest started"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            guests = [p for p in _descendants(proc.pid) if "qemu-system" in _cmdline(p)]
            time.sleep(0.1)
        time.sleep(1.0)  # booting
        t = time.monotonic()
        proc.send_signal(signo)
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - t < 1.0
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        while any(proc_state(g) not in (None, "Z") for g in guests):
            assert time.monotonic() - t < 5.0, "the guest outlived its stopped lab run"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
