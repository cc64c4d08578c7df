"""makedumpfile's compressed format, read to its layout (diskdump_mod.h): a small dump written here
field by field, its pages read back exactly through the ELF vmcore it becomes, and every way of
breaking it a one-line error.  (The lab's test holds a real one, QEMU's, to the ELF vmcore.)"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from notmyfault.dumps import DumpError, Vmcore, open_dump
from notmyfault.dumps.kdump import DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD
from tests.conftest import run_nmf

BLOCK = 4096
INFO = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\n"


def kdump(pages: dict[int, bytes], flags: int = DUMP_DH_COMPRESSED_ZLIB, machine: bytes = b"x86_64") -> bytes:
    """A kdump-compressed file holding ``pages`` (pfn -> 4 KiB), with VMCOREINFO and no other note."""
    max_mapnr = max(pages) + 1
    bitmap_blocks = 2  # one block per bitmap
    uts = b"".join(f.ljust(65, b"\0") for f in (b"Linux", b"host", b"6.1.0-test", b"#1", machine, b""))
    head = b"KDUMP   " + struct.pack("<i", 6) + uts + bytes(6) + bytes(16)
    head += struct.pack("<iiiIIIIIIi", 0, BLOCK, 1, bitmap_blocks, max_mapnr, 0, 0, 0, 0, 1)
    head = head.ljust(BLOCK, b"\0")
    sub = struct.pack(  # VMCOREINFO's offset is patched in below, once the pages are laid
        "<QiiQQqQqQqQQQQ", 0, 31, 0, 0, max_mapnr, 0, len(INFO), 0, 0, 0, 0, 0, max_mapnr, max_mapnr
    )
    sub = sub.ljust(BLOCK, b"\0")
    bitmap = bytearray(BLOCK)
    for pfn in pages:
        bitmap[pfn // 8] |= 1 << (pfn % 8)
    descs_at = BLOCK * (2 + bitmap_blocks)  # after the header, the sub-header and the two bitmaps
    data_at = descs_at + 24 * len(pages)
    descs, data = b"", b""
    for pfn in sorted(pages):
        body = zlib.compress(pages[pfn]) if flags & DUMP_DH_COMPRESSED_ZLIB else pages[pfn]
        descs += struct.pack("<qIIQ", data_at + len(data), len(body), flags, 0)
        data += body
    blob = bytearray(head + sub + bytes(bitmap) + bytes(bitmap) + descs + data + INFO)
    # VMCOREINFO follows the pages, as makedumpfile writes it: the sub-header names where
    struct.pack_into("<q", blob, BLOCK + 32, len(blob) - len(INFO))
    return bytes(blob)


def test_pages_read_back_through_the_elf_vmcore(tmp_path: Path) -> None:
    pages = {0: bytes(range(256)) * 16, 1: b"\xaa" * BLOCK, 5: b"LEAK" * 1024}
    path = tmp_path / "vmcore"
    path.write_bytes(kdump(pages))
    with open_dump(path) as vm:
        assert isinstance(vm, Vmcore)
        assert vm.vmcoreinfo["OSRELEASE"] == "6.1.0-test"
        assert vm.release == "6.1.0-test"
        core = vm.physical
        assert [(s.vaddr, s.memsz) for s in core.segments] == [(0, 2 * BLOCK), (5 * BLOCK, BLOCK)]
        for pfn, body in pages.items():
            assert core.read(pfn * BLOCK, BLOCK) == body
        assert list(core.find_all(b"LEAKLEAK"))[:1] == [5 * BLOCK]


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("truncated", "truncated"),
        ("block size", "block size"),
        ("lzo", "LZO"),
        ("machine", "sparc"),
        ("page", "corrupt"),
        ("zstd page", "zstd page does not decompress"),
        ("zlib bomb", "a page decompresses to 4097 bytes"),
        ("flattened cut", "truncated"),
    ],
)
def test_broken_kdumps_get_one_line(label: str, words: str, tmp_path: Path) -> None:
    good = kdump({0: b"\x01" * BLOCK, 1: b"\x02" * BLOCK})
    blob = {
        "truncated": good[:5000],
        "block size": good[:428] + struct.pack("<i", 1234) + good[432:],
        "lzo": kdump({0: b"\x01" * BLOCK}, flags=DUMP_DH_COMPRESSED_LZO),
        "machine": kdump({0: b"\x01" * BLOCK}, machine=b"sparc"),
        "page": good[:-100] + b"\xff" * 100,
        "zstd page": kdump({0: b"\x01" * BLOCK}, flags=DUMP_DH_COMPRESSED_ZSTD),  # raw bytes, no frame
        "zlib bomb": kdump({0: bytes(64 * BLOCK)}),  # a 'page' of 256 KiB: read no further than 4097
        "flattened cut": b"makedumpfile".ljust(16, b"\0")
        + struct.pack(">qq", 1, 1)
        + bytes(4064)
        + struct.pack(">qq", 0, 100)
        + good[:50],
    }[label]
    path = tmp_path / "vmcore"
    path.write_bytes(blob)
    with pytest.raises(DumpError) as e:
        open_dump(path).close()
    assert "\n" not in str(e.value)
    assert words in str(e.value)
    r = run_nmf("analyze", str(path))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
