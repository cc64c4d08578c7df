"""myfault.ko's interface and the lab's pieces that need no guest: the header and Python agree, the
initramfs is a valid newc archive, and bad requests get one-line errors."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from notmyfault.faults import kernel
from notmyfault.lab import initramfs
from tests.conftest import REPO, run_nmf

HEADER = (REPO / "src/notmyfault/native/kernel/myfault_ioctl.h").read_text()


def _defines(prefix: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(rf"#define MYFAULT_{prefix}_(\w+) (\d+)", HEADER)}


def test_header_numbers_equal_pythons() -> None:
    assert {n.replace("-", "_").upper(): v for n, (v, _) in kernel.CRASHES.items()} == _defines("CRASH")
    assert {n.upper(): v for n, (v, _) in kernel.HANGS.items()} == _defines("HANG")
    assert {n.upper(): v for n, v in kernel.POOLS.items()} == _defines("POOL")
    ops = _defines("OP")
    assert (ops["CRASH"], ops["HANG"], ops["LEAK"], ops["STATUS"], ops["FREE"]) == (
        kernel.OP_CRASH, kernel.OP_HANG, kernel.OP_LEAK, kernel.OP_STATUS, kernel.OP_FREE,
    )  # fmt: skip


def test_request_layout_and_ioctl_number_equal_the_c_compilers(tmp_path: Path) -> None:
    """The C compiler's sizeof, offsets and _IOWR value equal the Python packing."""
    src = tmp_path / "layout.c"
    src.write_text(
        '#include <stdio.h>\n#include <stddef.h>\n#include "myfault_ioctl.h"\n'
        'int main(void) { printf("%zu %zu %zu %zu %lu\\n", sizeof(struct myfault_request),'
        " offsetof(struct myfault_request, tag), offsetof(struct myfault_request, leaked_blocks),"
        " offsetof(struct myfault_request, flags), (unsigned long)MYFAULT_IOCTL); return 0; }\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-I", str(kernel.SOURCE_DIR), "-o", str(exe), str(src)], check=True)
    size, tag, blocks, flags, number = map(int, subprocess.check_output([str(exe)], text=True).split())
    packed = kernel.leak_request("nonpaged", 1, 2, 4096, "Leak").pack()
    assert size == len(packed) == 72
    assert packed[tag : tag + 5] == b"Leak\0"
    assert packed[flags : flags + 4] == b"\0\0\0\0"
    assert blocks == size - 8
    assert number == kernel.IOCTL


def test_myfaultctl_argv_carries_the_request() -> None:
    req = kernel.leak_request("paged", 10_000_000, 40_000_000, 65536, "Leak", persist=True)
    assert req.argv() == ["3", "2", "10000000", "40000000", "65536", "1", "Leak"]
    assert kernel.crash_request("panic", 0xD1).argv() == ["1", "9", "209", "0", "0", "0"]
    with pytest.raises(ValueError, match="printable"):
        kernel.leak_request("nonpaged", 1, 1, 4096, "two words")
    with pytest.raises(ValueError, match="1 to 15 printable"):
        kernel.leak_request("nonpaged", 1, 1, 4096, "x" * 16)


@pytest.mark.skipif(
    not Path("/bin/busybox").exists(), reason="busybox (the lab's guest userland) is not installed"
)
def test_initramfs_is_a_newc_archive_busybox_reads(tmp_path: Path) -> None:
    archive = initramfs.cpio(
        {
            "bin": None,
            "bin/tool": b"\x7fELF" + bytes(range(256)) * 3,
            "init": b"#!/bin/sh\necho hi\n",
            "lib": None,
        },
        frozenset({"bin/tool", "init"}),
    )
    raw = tmp_path / "initrd.cpio"
    raw.write_bytes(gzip.decompress(archive))
    listing = subprocess.run(
        ["/bin/busybox", "cpio", "-tv"], stdin=raw.open("rb"), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split()[-1] for line in listing] == ["bin", "bin/tool", "init", "lib"]
    assert listing[1].startswith("-rwxr-xr-x")
    assert listing[0].startswith("drwxr-xr-x")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(
        ["/bin/busybox", "cpio", "-id"], stdin=raw.open("rb"), cwd=out, check=True, capture_output=True
    )
    assert (out / "bin/tool").read_bytes() == b"\x7fELF" + bytes(range(256)) * 3
    assert (out / "init").read_text() == "#!/bin/sh\necho hi\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lab", "run", "--", "crash", "nosuch"], "'nosuch' is not one of"),
        (["lab", "run", "--", "explode"], "No such command 'explode'"),
        (["lab", "run", "--", "leak", "--rate", "fast"], "--rate: cannot read size 'fast'"),
        (["lab", "run", "--", "leak", "--tag", "two words"], "printable characters without spaces"),
        (["lab", "run", "--", "crash", "panic", "--code", "xyz"], "is not a number"),
        (["lab", "run", "--kernel", "../etc", "--", "crash", "bug"], "is not a kernel release"),
        (["crash", "--kernel", "null-deref"], "add --yes-crash-this-machine"),
        (["crash", "--kernel", "abort"], "kernel crash types:"),
        (["kernel", "hang", "dpc"], "add --yes-crash-this-machine"),
        (["kernel", "leak", "--stop-at", "1MB"], "add --yes-crash-this-machine"),
        (["kernel", "leak", "--stop-at", "100TB", "--yes-crash-this-machine"], "below the safety floor"),
        (["kernel", "leak", "--rate", "x"], "--rate: cannot read size 'x'"),
        # a missing prerequisite is bad input (exit 2), as everywhere
        (["kernel", "build", "--kdir", "/nonexistent/build"], "no kernel headers at /nonexistent/build"),
    ],
)
def test_bad_requests_get_one_line(args: list[str], message: str) -> None:
    r = run_nmf(*args)
    assert r.returncode == 2, r
    assert message in r.stderr
    assert r.stderr.count("\n") <= 2
    assert "Traceback" not in r.stderr


@pytest.mark.shared
def test_a_vmcore_is_refused_by_process_only_paths_and_a_process_core_is_not_a_vmcore(tmp_path: Path) -> None:
    from notmyfault.dumps import DumpError, ElfCore
    from notmyfault.dumps.vmcore import Vmcore, is_vmcore

    core = REPO.parent / "shared" / "corpus" / "drgn-crashme" / "crashme.core"
    with ElfCore(core) as c:
        assert not is_vmcore(c)
    with pytest.raises(DumpError, match="without a VMCOREINFO note: not a kernel vmcore"):
        Vmcore(core)
    exe = shutil.which("true")
    assert exe
    with pytest.raises(DumpError):
        Vmcore(exe)
    assert run_nmf("poolused", str(core)).returncode == 0, "process cores still take the process path"
