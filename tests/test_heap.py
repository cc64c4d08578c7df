"""glibc's main heap read back from a dump (poolused for untagged processes, and !vm's heap line).

tests/fixtures/heapme.c makes a heap whose every block it reports, then
aborts; the walk must find each block at its address, with its exact chunk
size and whether it is in use.
"""

from __future__ import annotations

import itertools
import resource
import subprocess
from pathlib import Path

import pytest

from notmyfault.dumps import ElfCore, open_dump
from notmyfault.memory.heap import heap_summary, main_heap
from tests.conftest import run_json, run_nmf

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)
SOURCE = Path(__file__).parent / "fixtures" / "heapme.c"
CHUNK = {"small": 208, "mid": 5008, "freed": 5008, "big": 70016}  # request + 8, rounded up to 16


@pytest.fixture(scope="module")
def heapme(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, int]]]:
    d = tmp_path_factory.mktemp("heapme")
    exe = d / "heapme"
    subprocess.run(["gcc", "-O1", "-g", "-o", str(exe), str(SOURCE)], check=True)

    def unlimited() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    r = subprocess.run([str(exe)], cwd=d, preexec_fn=unlimited, capture_output=True, text=True, check=False)
    assert r.returncode == -6
    blocks = [(kind, int(addr, 16)) for kind, addr in (line.split() for line in r.stdout.splitlines())]
    assert len(blocks) == 150
    return d / "core", blocks


def test_every_block_is_found_with_its_size_and_state(heapme: tuple[Path, list[tuple[str, int]]]) -> None:
    core, blocks = heapme
    with open_dump(str(core), ElfCore) as c:
        found = main_heap(c)
        assert found is not None
        seg, chunks = found
        by_address = {ch.address: ch for ch in chunks}
        for kind, mem in blocks:
            assert seg.vaddr <= mem < seg.end
            chunk = by_address[mem - 16]  # the header is 16 bytes before the memory malloc returned
            assert chunk.size == CHUNK[kind], (kind, hex(mem))
            assert chunk.in_use is (kind != "freed"), (kind, hex(mem))
        # the chain covers the area: chunks end to end, then the top chunk
        assert chunks[0].address == seg.vaddr
        for a, b in itertools.pairwise(chunks):
            assert a.address + a.size == b.address
        summary = heap_summary(c).heap
        assert summary is not None
        assert summary.top == seg.end - (chunks[-1].address + chunks[-1].size)
        assert summary.free == 20  # nothing else was freed (stdio never ran)
        assert summary.free_bytes == 20 * 5008


def test_poolused_and_vm_show_the_heap(heapme: tuple[Path, list[tuple[str, int]]]) -> None:
    core, _blocks = heapme
    r, pool = run_json("poolused", str(core))
    assert r.returncode == 0
    assert pool["tags"] == []
    heap = pool["heap"]
    assert heap["known"] is True
    classes = {c["upto"]: c for c in heap["classes"]}
    assert classes[256]["chunks"] >= 100
    assert classes[256]["in_use"] >= 100
    assert classes[16384]["chunks"] == 40
    assert classes[16384]["in_use"] == 20
    assert classes[16384]["bytes"] == 40 * 5008
    assert classes[131072]["chunks"] == 10
    assert classes[131072]["in_use_bytes"] == 10 * 70016
    text = run_nmf("poolused", str(core)).stdout
    assert f"glibc main heap (brk area) {int(heap['start'], 16):016x}-{int(heap['end'], 16):016x}" in text
    assert f"free   {20:>9} chunks {20 * 5008:>14} bytes" in text
    _, vm = run_json("vm", str(core))
    assert vm["heap"] == int(heap["end"], 16) - int(heap["start"], 16)


def test_a_core_without_a_brk_heap_says_so() -> None:
    from tests.conftest import CORPUS

    core = CORPUS / "drgn-crashme" / "crashme.core"
    if not core.exists():
        pytest.skip("../shared/corpus is not here")
    _, pool = run_json("poolused", str(core))
    assert pool["heap"]["known"] is False
    assert pool["heap"]["reason"].startswith("no glibc main heap in this dump")
    _, i386 = run_json("poolused", str(CORPUS / "pyelftools-core_linux32" / "core_linux32.elf"))
    assert i386["heap"]["reason"] == "the glibc heap walk knows 64-bit x86_64 and aarch64 only, not i386"
