"""Dumps as real systems keep them: systemd-coredump's compressed cores, apport's .crash reports.

A real core (a C program that writes through NULL, crashed by the kernel) is packed the ways those
tools pack it, and every pack must read exactly as the bare core: the same analyze page, stack and
modules (only the dump's name differs), with the temporary file gone afterwards.  The .zst, .lz4,
.xz and .gz files are made by the zstd, lz4, xz and gzip programs where installed (systemd-coredump
writes zstd frames with libzstd), else by the Python bindings; the .crash file by apport's recipe
(problem_report.py): a gzip header block, raw-deflate blocks of 1 MiB, the CRC and size trailer,
each base64-encoded on a continuation line of the CoreDump field.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import lzma
import random
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_json, run_nmf
from tests.coretools import null_write_core

pytestmark = pytest.mark.skipif(
    Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core",
    reason="needs the plain 'core' pattern",
)


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real core of a NULL write in store()."""
    return null_write_core(tmp_path_factory.mktemp("packed"))


def _pack(core: Path, packing: str, out: Path) -> Path:
    """``core`` packed by the program systems use (zstd, lz4, xz, gzip), else by its Python binding."""
    commands = {
        "zst": ["zstd", "-q", "-f", str(core), "-o", str(out)],
        "lz4": ["lz4", "-q", "-f", str(core), str(out)],
        "xz": ["xz", "-k", "-c", str(core)],
        "gz": ["gzip", "-c", str(core)],
    }
    cmd = commands[packing]
    if shutil.which(cmd[0]):
        if packing in ("xz", "gz"):
            with open(out, "wb") as f:
                subprocess.run(cmd, stdout=f, check=True)
        else:
            subprocess.run(cmd, check=True)
        return out
    data = core.read_bytes()
    if packing == "zst":
        import zstandard

        out.write_bytes(zstandard.ZstdCompressor().compress(data))
    elif packing == "lz4":
        import lz4.frame

        out.write_bytes(lz4.frame.compress(data))
    elif packing == "xz":
        out.write_bytes(lzma.compress(data))
    else:
        out.write_bytes(gzip.compress(data))
    return out


def apport_report(core: Path, out: Path, fields: dict[str, str]) -> Path:
    """A .crash file as apport writes one (problem_report.py's recipe: text fields first, then the
    binary ones, gzip'd and base64-encoded a block per line)."""
    with open(out, "wb") as f:
        f.write(b"ProblemType: Crash\nUname: Linux 6.1.0 x86_64\n")
        for key, value in fields.items():
            lines = value.split("\n")
            f.write(f"{key}: {lines[0]}\n".encode())
            for more in lines[1:]:
                f.write(f" {more}\n".encode())
        f.write(b"CoreDump: base64\n ")
        f.write(base64.b64encode(b"\037\213\010" + b"\010\000\000\000\000\002\377" + b"CoreDump\000"))
        f.write(b"\n")
        crc, size = zlib.crc32(b""), 0
        comp = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
        with open(core, "rb") as src:
            while block := src.read(1048576):
                crc, size = zlib.crc32(block, crc), size + len(block)
                out_block = comp.compress(block)
                if out_block:
                    f.write(b" " + base64.b64encode(out_block) + b"\n")
        tail = (
            comp.flush()
            + (crc & 0xFFFFFFFF).to_bytes(4, "little")
            + (size & 0xFFFFFFFF).to_bytes(4, "little")
        )
        f.write(b" " + base64.b64encode(tail) + b"\n")
    return out


def _same(bare: dict[str, Any], packed: dict[str, Any], source: Path) -> None:
    assert packed.pop("dump") == str(source)
    bare.pop("dump")
    packed.pop("report", None)
    bare.pop("report", None)
    assert packed == bare


@pytest.mark.parametrize("packing", ["zst", "lz4", "xz", "gz"])
def test_compressed_cores_read_as_the_bare_core(packing: str, core: Path, tmp_path: Path) -> None:
    # systemd-coredump's name: core.COMM.UID.BOOT_ID.PID.USEC.zst
    packed = _pack(core, packing, tmp_path / f"core.nw.0.7f3c2d1e9b8a4c6d.4242.1764640000000000.{packing}")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    for command in ("analyze", "stack", "modules"):
        _, bare = run_json(command, str(core))
        r, got = run_json(command, str(packed), env=env)
        assert r.returncode == 0, r.stderr
        if command == "analyze":
            assert got["crash_class"] == "NULL_POINTER_WRITE"
            assert got["blamed"]["function"] == "store"
            _same(bare, got, packed)
        else:
            assert got == bare
    assert list(scratch.iterdir()) == []  # the unpacked copy is gone


def test_apport_report_reads_as_its_core(core: Path, tmp_path: Path) -> None:
    fields = {
        "ExecutablePath": "/usr/bin/nw",
        "Package": "nw 1.0-1",
        "ProcCmdline": "nw --evil \x1b[31mred",
        "Signal": "11",
    }
    crash = apport_report(core, tmp_path / "_usr_bin_nw.0.crash", fields)
    _, bare = run_json("analyze", str(core))
    r, got = run_json("analyze", str(crash))
    assert r.returncode == 0, r.stderr
    assert got["report"] == {
        "ExecutablePath": "/usr/bin/nw",
        "Package": "nw 1.0-1",
        "ProcCmdline": "nw --evil \x1b[31mred",
        "Signal": "11",
        "ProblemType": "Crash",
        "Uname": "Linux 6.1.0 x86_64",
    }
    _same(bare, got, crash)
    text = run_nmf("analyze", str(crash)).stdout
    assert "APPORT_REPORT:" in text
    assert "  Package: nw 1.0-1" in text
    assert "\x1b" not in text  # the report's strings are hostile: escaped
    assert "nw --evil \\x1b[31mred" in text


def test_bad_packed_files_get_one_line(core: Path, tmp_path: Path) -> None:
    packed = _pack(core, "zst", tmp_path / "core.zst")
    cut = tmp_path / "cut.zst"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    no_core = tmp_path / "no-core.crash"
    no_core.write_text("ProblemType: Crash\nExecutablePath: /usr/bin/nw\n")
    bad_b64 = tmp_path / "bad.crash"
    bad_b64.write_text("ProblemType: Crash\nCoreDump: base64\n !!!not base64!!!\n")
    not_core = tmp_path / "text.gz"
    not_core.write_bytes(gzip.compress(b"just a log file\n" * 100))
    kdump = tmp_path / "vmcore"
    kdump.write_bytes(b"KDUMP   " + bytes(4096))
    corrupt = tmp_path / "corrupt.zst"  # zstandard's own error escaped as a traceback (the fuzzer's find)
    data = bytearray(packed.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    corrupt.write_bytes(bytes(data))
    cases = {
        cut: "truncated",
        corrupt: "zstd data is corrupt",
        no_core: "without a core",
        bad_b64: "not base64",
        not_core: "not",
        kdump: "block size",
    }
    for path, words in cases.items():
        r = run_nmf("analyze", str(path))
        assert r.returncode == 2, (path, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (path, r.stderr)
        assert words in lines[0], (path, lines[0])
        assert "Traceback" not in r.stderr


def test_triage_takes_packed_dumps_and_names_what_it_skips(core: Path, tmp_path: Path) -> None:
    fleet = tmp_path / "crash"
    fleet.mkdir()
    _pack(core, "zst", fleet / "core.nw.0.b00t.4242.1764640000000000.zst")
    apport_report(core, fleet / "_usr_bin_nw.0.crash", {"ExecutablePath": "/usr/bin/nw"})
    (fleet / "README").write_text("not a dump\n")
    (fleet / "log.gz").write_bytes(gzip.compress(b"a log\n"))
    (fleet / "empty.crash").write_text("ProblemType: Crash\nExecutablePath: /usr/bin/nw\n")
    db = tmp_path / "triage.db"
    r, summary = run_json("triage", "ingest", str(fleet), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert summary["found"] == 2
    assert summary["failed"] == 0
    assert sorted(Path(p).name for p in summary["skipped"]) == ["README", "empty.crash", "log.gz"]
    text = run_nmf("triage", "ingest", str(fleet), "--db", str(tmp_path / "other.db")).stdout
    assert "3 files skipped: not dumps (--verbose names them)" in text
    verbose = run_nmf("triage", "ingest", str(fleet), "--db", str(tmp_path / "third.db"), "-v").stdout
    assert f"skipped {fleet / 'README'}" in verbose
    _, buckets = run_json("triage", "buckets", "--db", str(db))
    assert [b["count"] for b in buckets["buckets"]] == [2]


def test_a_core_larger_than_the_space_check_interval_unpacks(tmp_path: Path) -> None:
    """Past 64 MiB the unpacker checks the free space again: an 80 MB core (myfault's ballast) packed
    by zstd reads as the bare one (the second check once failed on a file object's name)."""
    dumps = tmp_path / "dumps"
    r = run_nmf("crash", "null-deref", "--ballast", "80MB", "--dump-dir", str(dumps))
    assert r.returncode == 0, r.stderr
    (core,) = dumps.glob("core*")
    assert core.stat().st_size > 80 << 20
    packed = _pack(core, "zst", tmp_path / "core.zst")
    _, bare = run_json("analyze", str(core))
    r, got = run_json("analyze", str(packed), env={"TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    _same(bare, got, packed)


def _packed_bytes(data: bytes, packing: str) -> bytes:
    """``data`` as one frame or member of ``packing``, by its Python binding."""
    if packing == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    if packing == "lz4":
        import lz4.frame  # type: ignore[import-untyped]

        return bytes(lz4.frame.compress(data))
    if packing == "xz":
        return lzma.compress(data)
    return gzip.compress(data)


@pytest.mark.parametrize("packing", ["zstd", "lz4", "xz", "gzip"])
def test_decompression_is_bounded_and_finds_every_frame(packing: str, tmp_path: Path) -> None:
    """A frame of 256 MiB of zeros (a few KiB packed) comes out in pieces of at most PIECE * 40,000
    bytes, never whole; the frames after it, the last starting right at a piece's edge, are all
    read, byte for byte."""
    from notmyfault.dumps.unpack import PIECE, decompressed

    bomb = _packed_bytes(bytes(256 << 20), packing)
    noise = random.Random(14).randbytes(2 * PIECE)  # does not pack: its frame grows with its length
    for n in range(1, len(noise)):
        middle = _packed_bytes(noise[:n], packing)
        if (len(bomb) + len(middle)) % PIECE == 0:
            break
    else:
        pytest.fail("no length of the middle frame ends it at a piece's edge")
    path = tmp_path / "frames"
    path.write_bytes(bomb + middle + _packed_bytes(b"last", packing))
    want = hashlib.sha256(bytes(256 << 20) + noise[:n] + b"last").hexdigest()
    got, biggest = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for piece in decompressed(f, packing):
            got.update(piece)
            biggest = max(biggest, len(piece))
    assert got.hexdigest() == want
    assert biggest <= PIECE * 40_000 < 256 << 20
