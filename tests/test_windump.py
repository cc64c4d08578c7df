"""Windows kernel dumps: the corpus' ARM64 triage dump held to rizin's expected output, and dumps of our
own (tests/windump_synth.py) for the 32- and 64-bit layouts, the bug check texts, the blame rule and
malformed input.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from notmyfault.dumps import UnreadableMemory, WindowsKernelDump, open_dump
from notmyfault.kernel.bugcheck import BUGCHECKS
from tests.conftest import CORPUS, run_json, run_nmf
from tests.windump_synth import (
    ARM64_BLOCK,
    BIG_VA,
    DATA_VA,
    KERNEL,
    MYFAULT,
    MYFAULT32,
    NT,
    NT32,
    SynthDump,
    paged_dump,
    paged_dump_32,
    paged_dump_arm64,
    seed_d1,
)

TRIAGE = CORPUS / "rizin-dmp-triage_arm64" / "triage_arm64.dmp"
needs_corpus = pytest.mark.shared


def _expected() -> str:
    text = (TRIAGE.parent / "EXPECTED.txt").read_text()
    return text[text.index("EXPECT=<<EOF") :]


@needs_corpus
def test_triage_header_fields_equal_rizins() -> None:
    exp = _expected()
    head = exp[exp.index("DUMP_HEADER64:") : exp.index("TRIAGE_DUMP64:")]
    tri = exp[exp.index("TRIAGE_DUMP64:") : exp.index("cpsr =")]
    fields = dict(re.findall(r"^\s+(\w+) : (0x[0-9a-f]+)", head, re.M))
    triage_fields = dict(re.findall(r"^\s+(\w+) : (0x[0-9a-f]+)", tri, re.M))
    with open_dump(TRIAGE) as kd:
        assert isinstance(kd, WindowsKernelDump)
        checked = 0
        for name, value in fields.items():
            if name in kd.header:
                assert kd.header[name] == int(value, 16), name
                checked += 1
        assert checked >= 15
        for name, value in triage_fields.items():
            if name in kd.triage:
                assert kd.triage[name] == int(value, 16), name
        assert len(kd.triage) == len(triage_fields) - 3  # the Ia64 backing-store fields are not kept
        assert kd.arch == "aarch64"
        assert kd.dump_type == "triage (small memory dump)"
        assert len(kd.drivers) == kd.triage["DriverCount"] == 245
        assert kd.drivers[0].name == "\\SystemRoot\\system32\\ntoskrnl.exe"
    assert "BugCheckCode : 0x000001c8 (MANUALLY_INITIATED_POWER_BUTTON_HOLD)" in exp
    _, a = run_json("analyze", str(TRIAGE))
    assert a["dump_kind"] == "windows-kernel"
    assert a["bugcheck"]["code"] == "0x1c8"
    assert a["bugcheck"]["name"] == BUGCHECKS[0x1C8].name == "MANUALLY_INITIATED_POWER_BUTTON_HOLD"
    assert a["bugcheck"]["parameters"] == ["0x1b58", "0xfffff803f3a20860", "0x0", "0x0"]
    assert a["crash_class"] == "MANUALLY_INITIATED_POWER_BUTTON_HOLD"


@needs_corpus
def test_triage_registers_instruction_and_frames_equal_rizins() -> None:
    exp = _expected()
    regs = dict(re.findall(r"^(\w+) = (0x[0-9a-f]+)$", exp, re.M))
    _, ours = run_json("regs", str(TRIAGE))
    checked = 0
    for name, value in regs.items():
        assert int(ours["registers"][name], 16) == int(value, 16), name
        checked += 1
    assert checked == 36  # x0-x28, fp, lr, sp, pc, cpsr, fpcr, fpsr
    first = exp.split("fpsr = ")[1].splitlines()[1]  # pi 4: the first instruction at the pc
    assert ours["instruction"]["text"].replace("#", "") == first  # add x0, x19, 0x40
    frames = re.findall(r"^\d+\s+(0x[0-9a-f]+) sp: (0x[0-9a-f]+)", exp, re.M)
    assert len(frames) == 5
    _, stacks = run_json("stack", str(TRIAGE))
    got = [(int(f["pc"], 16), int(f["sp"], 16)) for f in stacks["threads"][0]["frames"]]
    assert got == [(int(pc, 16), int(sp, 16)) for pc, sp in frames]
    text = run_nmf("analyze", str(TRIAGE)).stdout
    assert "BugCheck 1C8, {1b58, fffff803f3a20860, 0, 0}" in text
    assert "Probably caused by : ntoskrnl.exe ( ntoskrnl+0x4de014 )" in text
    assert "names need the modules' PDB symbols" in text


@pytest.mark.parametrize("bits", [32, 64])
def test_the_seeds_bugcheck_d1_blames_myfault(bits: int, tmp_path: Path) -> None:
    """The seed's page: BugCheck D1, {e14c0008, 2, 0, f799f579} ... Probably caused by : myfault.sys ( myfault+579 )."""
    synth = seed_d1(bits)
    dump = synth.write(tmp_path / f"seed{bits}.dmp")
    text = run_nmf("analyze", str(dump)).stdout
    p = synth.params
    assert f"BugCheck D1, {{{p[0]:x}, 2, 0, {p[3]:x}}}" in text
    assert "DRIVER_IRQL_NOT_LESS_OR_EQUAL (d1)" in text
    assert f"Arg1: {p[0]:016x}, memory referenced" in text
    assert "Arg2: 0000000000000002, IRQL at the time of the reference" in text
    assert f"Arg4: {p[3]:016x}, address of the instruction that referenced the memory" in text
    assert "Probably caused by : myfault.sys ( myfault+0x579 )" in text
    _, a = run_json("analyze", str(dump))
    assert a["arch"] == ("x86" if bits == 32 else "x86_64")
    assert a["access"] == "read"
    assert a["blame_reason"] == "argument 4 of the bug check is the address of the faulting instruction"
    assert a["bucket"] == "DRIVER_IRQL_NOT_LESS_OR_EQUAL:windows:myfault+0x579"
    _, stacks = run_json("stack", str(dump))
    locations = [f["location"] for f in stacks["threads"][0]["frames"]]
    nt = synth.drivers[0][1]
    assert locations == [
        "myfault+0x579",
        "myfault+0x4a2",
        f"ntoskrnl+{synth.returns[1] - nt:#x}",
        f"ntoskrnl+{synth.returns[2] - nt:#x}",
    ]
    _, mods = run_json("modules", str(dump))
    assert [m["name"] for m in mods["modules"]] == ["ntoskrnl", "myfault"]
    assert int(mods["modules"][1]["start"], 16) == synth.drivers[1][1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_x64_triage_stack_without_frame_pointers_is_walked_by_the_drivers_ranges(
    seed: int, tmp_path: Path
) -> None:
    """x64 kernel code keeps no frame-pointer chain, and a triage dump holds no driver image to
    unwind by: the saved call stack is scanned for words inside the drivers' ranges (every one of
    them, in order, each frame's sp the word's address + 8), past locals that are no addresses, a
    driver's base address, and values just past a driver's end."""
    import random

    rng = random.Random(seed)
    synth = seed_d1(64)
    nt, nt_size = synth.drivers[0][1], synth.drivers[0][2]
    myfault, myfault_size = synth.drivers[1][1], synth.drivers[1][2]
    synth.code, synth.params = 0x1000007E, (0xC0000005, myfault + 0x334C, 0x11, 0x22)
    synth.pc = myfault + 0x334C
    words: list[int] = []
    returns: list[int] = []
    for _ in range(rng.randrange(12, 30)):
        for _ in range(rng.randrange(0, 5)):  # locals and saved registers: no address of a driver
            words.append(
                rng.choice(
                    [
                        0,
                        rng.randrange(1 << 32),
                        myfault,
                        nt + nt_size,
                        0xFFFFE00000000000 + rng.randrange(1 << 20),
                    ]
                )
            )
        base, size = rng.choice([(nt, nt_size), (myfault, myfault_size)])
        ret = base + rng.randrange(1, size)
        returns.append(ret)
        words.append(ret)
    synth.stack_words = words
    dump = synth.write(tmp_path / "triage7e.dmp")
    _r, stacks = run_json("stack", str(dump))
    frames = stacks["threads"][0]["frames"]
    top = 0xFFFFE00000100000
    expected_sp = [top + 8 * (i + 1) for i, w in enumerate(words) if w in returns]
    assert [int(f["pc"], 16) for f in frames] == [synth.pc, *returns]
    assert [f["trust"] for f in frames] == ["context"] + ["scan"] * len(returns)
    assert [int(f["sp"], 16) for f in frames[1:]] == expected_sp
    _r, page = run_json("analyze", str(dump))
    assert any("scanning the saved call stack" in n for n in page["notes"])


@pytest.mark.parametrize("code", sorted(c for c, b in BUGCHECKS.items() if b.code_arg is not None))
def test_every_bugcheck_with_a_code_argument_blames_the_driver_it_names(code: int, tmp_path: Path) -> None:
    synth = seed_d1(64)
    bc = BUGCHECKS[code]
    myfault = synth.drivers[1][1]
    params = [0x11, 0x22, 0x33, 0x44]
    params[bc.code_arg or 0] = myfault + 0x123
    synth.code, synth.params = code, (params[0], params[1], params[2], params[3])
    synth.pc = synth.drivers[0][1] + 0x100  # the context is in the kernel: the argument decides
    dump = synth.write(tmp_path / f"bc{code:x}.dmp")
    _, a = run_json("analyze", str(dump))
    assert a["crash_class"] == bc.name
    assert a["blamed"]["location"] == "myfault+0x123"
    assert a["bugcheck"]["meanings"] == list(bc.args)


def test_without_a_code_argument_the_first_driver_outside_the_kernel_is_blamed(tmp_path: Path) -> None:
    synth = seed_d1(64)
    nt, myfault = synth.drivers[0][1], synth.drivers[1][1]
    synth.code, synth.params = 0x9F, (3, 0, 0, 0)
    synth.pc = nt + 0x100
    synth.returns = [nt + 0x200, myfault + 0x4A2, nt + 0x300]
    _, a = run_json("analyze", str(synth.write(tmp_path / "9f.dmp")))
    assert a["crash_class"] == "DRIVER_POWER_STATE_FAILURE"
    assert a["blamed"]["location"] == "myfault+0x4a2"
    assert a["blame_reason"] == "first frame outside the kernel and the HAL"
    synth.code = 0x12345
    _, a = run_json("analyze", str(synth.write(tmp_path / "unknown.dmp")))
    assert a["crash_class"] == "BUGCHECK_12345"


def test_a_full_dump_says_what_is_not_read(tmp_path: Path) -> None:
    synth = seed_d1(64)
    synth.dump_type = 1
    dump = synth.write(tmp_path / "full.dmp")
    _, a = run_json("analyze", str(dump))
    assert a["crash_class"] == "DRIVER_IRQL_NOT_LESS_OR_EQUAL"
    assert any("its memory (the stack beyond the context, the module list) is not: it records no physical" in n
               for n in a["notes"])  # fmt: skip
    assert len(a["frames"]) == 1  # the context only: no memory is read
    r = run_nmf("modules", str(dump))
    assert r.returncode == 2
    assert "no module list could be read" in r.stderr


def test_malformed_kernel_dumps_get_one_line(tmp_path: Path) -> None:
    good = seed_d1(64).write(tmp_path / "good.dmp").read_bytes()
    huge_count = bytearray(good)
    struct.pack_into("<I", huge_count, 0x2000 + 13 * 4, 10**6)  # DriverCount
    long_name = bytearray(good)
    (name_at,) = struct.unpack_from("<I", good, 0x4000)
    struct.pack_into("<I", long_name, name_at, 10**6)
    cases = {
        "truncated": good[:0x100],
        "header-only": good[:0x2000],
        "driver-count": bytes(huge_count),
        "driver-name": bytes(long_name),
        "magic-only": b"PAGEDU64",
    }
    for label, blob in cases.items():
        p = tmp_path / f"{label}.dmp"
        p.write_bytes(blob)
        for command in ("analyze", "modules"):
            r = run_nmf(command, str(p))
            assert r.returncode == 2, (label, command, r.stdout, r.stderr)
            assert r.stderr.count("\n") == 1, (label, r.stderr)
            assert "Traceback" not in r.stderr
    r = run_nmf("poolused", str(tmp_path / "good.dmp"))
    assert r.returncode == 2
    assert (
        "is a Windows kernel crash dump: analyze, stack, regs, modules, vm, search and disasm read those"
        in r.stderr
    )


def test_random_bytes_after_the_signature_are_no_dump(tmp_path: Path) -> None:
    """In a fleet, 6 of 21 such files became buckets (one dated in the year 6795): the header's
    machine, dump type, version and processor count must be a Windows kernel dump's."""
    import random

    rng = random.Random(6795)
    files = []
    for i in range(21):
        p = tmp_path / "fleet" / f"garbage{i}.dmp"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes((b"PAGEDU64", b"PAGEDUMP")[i % 2] + rng.randbytes(0x3000))
        files.append(p)
    for p in files[:5]:
        r = run_nmf("analyze", str(p))
        assert r.returncode == 2, r.stdout
        assert "has a Windows kernel dump signature but no such header" in r.stderr
    db = str(tmp_path / "t.db")
    r = run_nmf("triage", "ingest", "--json", "--db", db, str(tmp_path / "fleet"))
    out = json.loads(r.stdout)
    assert (out["found"], out["failed"]) == (21, 21)
    assert json.loads(run_nmf("triage", "buckets", "--json", "--db", db).stdout)["buckets"] == []


def test_synthetic_dump_round_trip_of_the_header(tmp_path: Path) -> None:
    synth = SynthDump(bits=32, code=0x7F, params=(8, 0, 0, 0), drivers=[("\\x\\hal.dll", 0x80000000, 0x1000)],
                      pc=0x80000010, returns=[], processors=4)  # fmt: skip
    with open_dump(synth.write(tmp_path / "7f.dmp")) as kd:
        assert isinstance(kd, WindowsKernelDump)
        assert kd.bits == 32
        assert kd.bugcheck == (0x7F, (8, 0, 0, 0))
        assert kd.header["NumberProcessors"] == 4
        assert kd.threads[0].pc == 0x80000010
        assert [d.name for d in kd.drivers] == ["\\x\\hal.dll"]


COMMON = [
    0x0A,
    0x1E,
    0x3B,
    0x50,
    0x7E,
    0x7F,
    0x9F,
    0xC2,
    0xC5,
    0xD1,
    0xD6,
    0xEF,
    0x133,
    0x139,
    0x1000007E,
    0x1000008E,
]
"""The common bug checks the issue names: each must be known, with its arguments explained."""


@pytest.mark.parametrize("code", COMMON)
def test_common_bugchecks_are_explained_on_the_page(code: int, tmp_path: Path) -> None:
    bc = BUGCHECKS[code]
    assert bc.meaning
    assert sum(1 for a in bc.args if a) >= 1
    synth = seed_d1(32)
    synth.code, synth.params = code, (0x10, 0x20, 0x30, 0x40)
    text = run_nmf("analyze", str(synth.write(tmp_path / f"{code:x}.dmp"))).stdout
    assert f"{bc.name} ({code:x})" in text
    assert f"BugCheck {code:X}, {{10, 20, 30, 40}}" in text
    for i, meaning in enumerate(bc.args):
        if meaning:
            assert f"Arg{i + 1}: {0x10 * (i + 1):016x}, {meaning}" in text


@needs_corpus
def test_disasm_and_search_read_the_triage_dumps_memory() -> None:
    """u at the pc gives rizin's 'pi 4'; s finds the return addresses the stack holds."""
    exp = _expected()
    expected = exp.split("fpsr = ")[1].splitlines()[1:5]
    _, insns = run_json("disasm", str(TRIAGE), "0xfffff803f32de014", "-n", "4")
    assert [i["text"].replace("#", "") for i in insns["instructions"]] == expected
    # frame 2's return address, as the frame record of frame 1 holds it
    _, hits = run_json("search", str(TRIAGE), (0xFFFFF803F309FF1C).to_bytes(8, "little").hex(), "--hex")
    assert [h["address"] for h in hits["hits"]][:1] == ["0xffffe00e0e4bcb18"]
    r = run_nmf("disasm", str(TRIAGE), "KeBugCheck2")
    assert r.returncode == 2
    assert "give an address" in r.stderr


@pytest.mark.parametrize(("kind", "filler"), [("full", 0), ("bitmap", 0), ("full", 16), ("bitmap", 16)])
def test_full_and_bitmap_dumps_are_read_through_their_page_tables(
    kind: str, filler: int, tmp_path: Path
) -> None:
    dump = paged_dump(tmp_path / f"{kind}.dmp", kind, filler=filler)
    with open_dump(dump) as kd:
        assert isinstance(kd, WindowsKernelDump)
        assert kd.reads_memory
        assert kd.read(BIG_VA + 0x10, 8) == b"BIGPAGE!"  # through a 2 MiB page
        assert [(d.name, d.base, d.size) for d in kd.drivers] == [
            ("\\SystemRoot\\system32\\ntoskrnl.exe", NT, 0x5DF000),
            ("\\??\\C:\\myfault.sys", MYFAULT, 0x7000),
        ]
        assert kd.module_list_problem is None
    text = run_nmf("analyze", str(dump)).stdout
    assert "BugCheck D1, {fffff8a00e14c008, 2, 0, fffff88004e9f579}" in text
    assert "Probably caused by : myfault.sys ( myfault+0x579 )" in text
    _, a = run_json("analyze", str(dump))
    assert [f["location"] for f in a["frames"]] == ["myfault+0x579", "myfault+0x4a2", "ntoskrnl+0x8b2e9"]
    assert [f["trust"] for f in a["frames"]] == ["context", "scan", "scan"]
    _, mods = run_json("modules", str(dump))
    assert [m["name"] for m in mods["modules"]] == ["ntoskrnl", "myfault"]
    # search walks the page tables: the large page's text, and a driver name in the data page
    _, hits = run_json("search", str(dump), "BIGPAGE!")
    assert [h["address"] for h in hits["hits"]] == [hex(BIG_VA + 0x10)]
    _, hits = run_json("search", str(dump), "myfault.sys".encode("utf-16-le").hex(), "--hex")
    assert [h["address"] for h in hits["hits"]] == [hex(DATA_VA + 0x400 + 0x400 + 2 * len("\\??\\C:\\"))]


def test_a_looping_module_list_ends_with_what_was_found(tmp_path: Path) -> None:
    with open_dump(paged_dump(tmp_path / "loop.dmp", "full", loop=True)) as kd:
        assert isinstance(kd, WindowsKernelDump)
        assert [d.base for d in kd.drivers] == [NT, MYFAULT]
        assert (
            kd.module_list_problem
            == f"the module list loops back to {DATA_VA + 0x200:#x} instead of its head"
        )
    r = run_nmf("analyze", str(tmp_path / "loop.dmp"))
    assert r.returncode == 0
    assert "the module list loops back" in r.stdout


def test_unmapped_and_missing_memory_is_unreadable(tmp_path: Path) -> None:
    from notmyfault.dumps import UnreadableMemory

    with open_dump(paged_dump(tmp_path / "full.dmp")) as kd:
        assert isinstance(kd, WindowsKernelDump)
        with pytest.raises(UnreadableMemory, match="not mapped"):
            kd.read(KERNEL + 0x7000, 8)  # no PTE
        with pytest.raises(UnreadableMemory, match="not in the dump"):
            kd.read(BIG_VA + 0x1000, 8)  # mapped, but the dump holds only the large page's first 4 KiB


@pytest.mark.parametrize("pae", [True, False])
def test_the_seeds_own_machine_a_32_bit_full_dump(pae: bool, tmp_path: Path) -> None:
    """Windows XP, x86, a full dump: the page tables (PAE or classic), the module list, the EBP chain,
    and the seed's page word for word."""
    dump = paged_dump_32(tmp_path / "xp.dmp", pae)
    with open_dump(dump) as kd:
        assert isinstance(kd, WindowsKernelDump)
        assert kd.bits == 32
        assert kd.reads_memory
        assert [(d.name, d.base) for d in kd.drivers] == [
            ("\\WINDOWS\\system32\\ntoskrnl.exe", NT32),
            ("\\??\\C:\\myfault.sys", MYFAULT32),
        ]
    text = run_nmf("analyze", str(dump)).stdout
    assert "BugCheck D1, {e14c0008, 2, 0, f799f579}" in text
    assert "Probably caused by : myfault.sys ( myfault+0x579 )" in text
    _, a = run_json("analyze", str(dump))
    assert [f["location"] for f in a["frames"]] == [
        "myfault+0x579",
        "myfault+0x4a2",
        "ntoskrnl+0x4f3a",
        "ntoskrnl+0x6ea1",
    ]
    assert [f["trust"] for f in a["frames"]][1:] == ["frame pointer"] * 3
    _, hits = run_json("search", str(dump), "myfault.sys".encode("utf-16-le").hex(), "--hex")
    assert len(hits["hits"]) == 1


SEED = Path(__file__).resolve().parents[1].parent / "shared" / "seed" / "000_2e462ef5e0c6ac09.txt"


@pytest.mark.shared
@pytest.mark.parametrize("pae", [True, False])
def test_vm_reads_the_counters_where_the_kdbg_points(pae: bool, tmp_path: Path) -> None:
    """The seed's machine: !vm's counters come from the variables the KDBG names, read through the
    page tables, and its lines equal the seed's, the Excessive NonPaged Pool Usage warning included."""
    dump = paged_dump_32(tmp_path / "xp.dmp", pae)
    r = run_nmf("vm", str(dump))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    seed = SEED.read_text(encoding="utf-8").replace("\xa0", " ").splitlines()  # the page's no-break spaces
    start = seed.index("kd> !vm")
    wanted = [
        "*** Virtual Memory Usage ***",
        " Physical Memory:      262010 (   1048040 Kb)",
        " Available Pages:      166628 (    666512 Kb)",
        " ResAvail Pages:       199386 (    797544 Kb)",
        " NonPagedPool Usage:    49746 (    198984 Kb)",
        " NonPagedPool Max:      51967 (    207868 Kb)",
        " ********** Excessive NonPaged Pool Usage *****",
    ]
    assert all(line in seed[start : start + 30] for line in wanted)  # the seed's own lines
    assert [line for line in lines if line in wanted] == wanted
    assert " PagedPool Maximum:     70656 (    282624 Kb)" in lines  # the seed's "PagedPool Maximum"
    _, j = run_json("vm", str(dump))
    assert j["dump_kind"] == "windows-kernel"
    assert j["counters"]["NonPagedPool Usage"] == 49746
    assert j["counters"]["Commit limit"] == 655360
    assert j["warnings"] == ["Excessive NonPaged Pool Usage"]
    assert j["notes"] == []


@needs_corpus
def test_a_windows_11_kdbg_names_few_counters_and_vm_says_so() -> None:
    """The corpus triage dump carries a decoded KDBG: its kernel base and module list head equal the
    driver list's and the header's; the counters it leaves out are named as missing, none invented."""
    with open_dump(TRIAGE) as kd:
        assert isinstance(kd, WindowsKernelDump)
        assert kd.kdbg["KernBase"] == kd.drivers[0].base == 0xFFFFF803F2E00000
        assert kd.kdbg["PsLoadedModuleList"] == kd.header["PsLoadedModuleList"]
    _, j = run_json("vm", str(TRIAGE))
    assert set(j["counters"].values()) == {None}
    assert j["warnings"] == []
    assert "the KDBG does not name MmNumberOfPhysicalPages, MmAvailablePages" in j["notes"][0]


def test_vm_without_a_kdbg_says_why(tmp_path: Path) -> None:
    """A dump whose KdDebuggerDataBlock leads nowhere: every counter is missing and the note says why;
    a minidump has no system counters at all and gets one line."""
    _, j = run_json("vm", str(paged_dump(tmp_path / "full.dmp")))
    assert set(j["counters"].values()) == {None}
    assert j["notes"][0].startswith("the KDBG (KdDebuggerDataBlock) is not in the dump")
    mini = next((CORPUS / "breakpad-minidump2").glob("*.dmp"), None)
    if mini is not None:
        r = run_nmf("vm", str(mini))
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1
        assert "holds no system memory counters" in r.stderr


def test_an_arm64_full_dump_is_read_through_its_page_tables(tmp_path: Path) -> None:
    """ARM64 descriptors (pages with attribute bits above the address, a 2 MiB block): the module
    list, the faulting instruction, the frame-pointer chain and a search inside the block."""
    dump = paged_dump_arm64(tmp_path / "arm64.dmp")
    with open_dump(dump) as kd:
        assert isinstance(kd, WindowsKernelDump)
        assert kd.arch == "aarch64"
        assert kd.reads_memory
        assert [d.base for d in kd.drivers] == [NT, MYFAULT]
        assert kd.read(ARM64_BLOCK + 0x123456, 8) == b"BLOCK!!!"
        assert (ARM64_BLOCK, 0x200000) in kd.regions()
        with pytest.raises(UnreadableMemory):
            kd.read(ARM64_BLOCK + 0x200000, 8)
    _, a = run_json("analyze", str(dump))
    assert a["instruction"]["text"] == "str w1, [x0]"
    assert [f["location"] for f in a["frames"]] == ["myfault+0x578", "myfault+0x4a4", "ntoskrnl+0x8b2e8"]
    assert a["blamed"]["location"] == "myfault+0x578"
    _, hits = run_json("search", str(dump), "BLOCK!!!")
    assert [h["address"] for h in hits["hits"]] == [hex(ARM64_BLOCK + 0x123456)]
