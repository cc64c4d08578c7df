"""The lab's kernel kit: a distribution kernel, its debug vmlinux, its headers, fetched once.

Debian's registry has, for one ABI version ``6.1.0-NN-amd64``, the image
(``vmlinuz`` and the modules), the image's debug symbols (``-dbg``, about
850 MB, full DWARF) and the headers that kbuild builds ``myfault.ko``
against.  The three must be the same version: the default is the one that
``linux-image-amd64`` points at today, and the kit is kept under
``$XDG_CACHE_HOME/notmyfault/lab/<release>/`` so later runs fetch nothing.

Only what the lab uses is unpacked: ``vmlinuz``, the guest modules that catch
the panic (``qemu_fw_cfg``, ``pvpanic``, ``pvpanic-mmio``) and their debug
twins, and ``vmlinux``.  The headers are a system package (kbuild's paths are
absolute), installed with apt-get when missing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from notmyfault.base import SafeFile, WriteFailed

GUEST_MODULES = (
    "kernel/drivers/firmware/qemu_fw_cfg.ko",
    "kernel/drivers/misc/pvpanic/pvpanic.ko",
    "kernel/drivers/misc/pvpanic/pvpanic-mmio.ko",
)
"""The modules that let QEMU see the panic (pvpanic) and the VMCOREINFO (fw_cfg), in load order:
pvpanic-mmio needs pvpanic's symbols."""


class KitError(Exception):
    """A one-line reason why the kernel kit could not be had."""


@dataclass(frozen=True)
class Kit:
    """The files of one kernel release, all in the cache."""

    release: str
    root: Path

    @property
    def vmlinuz(self) -> Path:
        """The bootable kernel."""
        return self.root / "vmlinuz"

    @property
    def vmlinux(self) -> Path:
        """The kernel with full DWARF (from the -dbg package)."""
        return self.root / "vmlinux"

    @property
    def modules(self) -> list[Path]:
        """The guest's modules, in load order (as shipped: stripped)."""
        return [self.root / "modules" / Path(m).name for m in GUEST_MODULES]

    @property
    def debug_modules(self) -> list[Path]:
        """The same modules with their DWARF."""
        return [self.root / "debug" / Path(m).name for m in GUEST_MODULES]

    @property
    def kdir(self) -> Path:
        """kbuild's directory for this release."""
        return Path("/lib/modules") / self.release / "build"

    def complete(self) -> bool:
        """Whether every file is in the cache."""
        files = [self.vmlinuz, self.vmlinux, *self.modules, *self.debug_modules]
        return all(f.exists() for f in files)


def cache_root() -> Path:
    """Where kits are kept: $NOTMYFAULT_LAB_CACHE, else $XDG_CACHE_HOME/notmyfault/lab."""
    if os.environ.get("NOTMYFAULT_LAB_CACHE"):
        return Path(os.environ["NOTMYFAULT_LAB_CACHE"])
    from notmyfault.capture.config import cache_dir

    return Path(cache_dir()) / "lab"


def _run(argv: list[str], what: str, **kw: object) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise KitError(f"{what}: {argv[0]} is missing (this needs a Debian/Ubuntu system)") from None
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no message"]
        raise KitError(f"{what} failed: {tail[0]}")
    return str(proc.stdout)


def default_release() -> str:
    """The ABI version that Debian's ``linux-image-amd64`` depends on today (e.g. 6.1.0-56-amd64);
    when apt cannot say (offline, not Debian), the newest kit already in the cache."""
    try:
        out = _run(["apt-cache", "depends", "linux-image-amd64"], "asking apt which kernel is current")
    except KitError:
        out = ""
    m = re.search(r"Depends: linux-image-(\d[\w.-]*-amd64)\b", out)
    if m:
        return m.group(1)
    cached = sorted(p.name for p in cache_root().glob("*-amd64") if Kit(p.name, p).complete())
    if cached:
        return cached[-1]
    raise KitError("apt does not know linux-image-amd64: run apt-get update, or give --kernel RELEASE")


def _unpack(deb: Path, dest: Path, members: list[str]) -> None:
    """Unpack only ``members`` (tar wildcards) of a .deb's data, with a multi-threaded xz."""
    members_arg = " ".join(f"'{m}'" for m in members)
    script = (
        f"set -o pipefail; ar p '{deb}' $(ar t '{deb}' | grep '^data.tar') | "
        f"case $(ar t '{deb}' | grep '^data.tar') in *.xz) xz -dc -T0;; *.zst) zstd -dc;; *) cat;; esac | "
        f"tar -x -C '{dest}' --wildcards {members_arg}"
    )
    _run(["bash", "-c", script], f"unpacking {deb.name}")


def _package_bytes(pkgs: list[str]) -> int:
    """The download size of ``pkgs`` as apt's lists give it (0 when they do not)."""
    try:
        out = _run(["apt-cache", "show", "--no-all-versions", *pkgs], "asking apt for the sizes")
    except KitError:
        return 0
    return sum(int(m) for m in re.findall(r"^Size: (\d+)", out, re.M))


def _report_download(work: Path, total: int, say: object, stop: threading.Event) -> None:
    """Say how far the download is, every tenth of it (apt-get writes the .deb files into ``work``)."""
    said = 0
    while not stop.wait(1.0):
        done = sum(p.stat().st_size for p in work.glob("*.deb*") if p.is_file())
        tenth = done * 10 // total if total else 0
        if tenth > said and tenth < 10:
            said = tenth
            say(f"lab: downloaded {done >> 20} of {total >> 20} MB ({tenth * 10}%)")  # type: ignore[operator]


def debuginfod_urls() -> list[str]:
    """The debuginfod servers to ask ($DEBUGINFOD_URLS), unless NOTMYFAULT_DEBUGINFOD=0 says not to."""
    if os.environ.get("NOTMYFAULT_DEBUGINFOD") == "0":
        return []
    return [
        u.rstrip("/")
        for u in os.environ.get("DEBUGINFOD_URLS", "").split()
        if u.startswith(("http:", "https:"))
    ]


def _download(work: Path, pkgs: list[str], say: object) -> None:
    """apt-get download ``pkgs`` into ``work``, saying their size and every tenth of the way."""
    total = _package_bytes(pkgs)
    size = f"{total >> 20} MB" if total else "about 930 MB"
    say(f"lab: downloading {', '.join(pkgs)} ({size}, once)")  # type: ignore[operator]
    stop = threading.Event()
    watcher = threading.Thread(target=_report_download, args=(work, total, say, stop), daemon=True)
    watcher.start()
    try:
        _run(["apt-get", "download", "-q", *pkgs], "apt-get download", cwd=work)
    finally:
        stop.set()
        watcher.join()


def kernel_build_id(vmlinuz: Path) -> str | None:
    """The build-id of the kernel inside a compressed vmlinuz (bzImage: the ELF vmlinux, xz-, zstd- or
    gzip-compressed within it, as the kernel's scripts/extract-vmlinux finds it)."""
    import gzip
    import lzma

    import zstandard

    from notmyfault.dumps.buildid import stream_build_id

    def unxz(b: bytes) -> bytes:
        return lzma.LZMADecompressor().decompress(b)

    def unzstd(b: bytes) -> bytes:
        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(b))

    def gunzip(b: bytes) -> bytes:
        return gzip.GzipFile(fileobj=io.BytesIO(b)).read()

    data = vmlinuz.read_bytes()
    for magic, decompress in (
        (b"\xfd7zXZ\x00", unxz),
        (b"\x28\xb5\x2f\xfd", unzstd),
        (b"\x1f\x8b\x08", gunzip),
    ):
        at = data.find(magic)
        while at >= 0:
            try:
                out = decompress(data[at:])
            except Exception:  # a false magic inside the image: try the next
                out = b""
            if out.startswith(b"\x7fELF"):
                return stream_build_id(io.BytesIO(out))
            at = data.find(magic, at + 1)
    return None


def _from_debuginfod(
    urls: list[str], work: Path, release: str, vmlinux: Path, modules: dict[str, Path], say: object
) -> bool:
    """Fetch the debug vmlinux and the guest modules' debug files by build-id; False if one is missing."""
    from notmyfault.dumps.buildid import file_build_id

    wanted = {vmlinux: kernel_build_id(work / f"boot/vmlinuz-{release}")}
    for m, dest in modules.items():
        found = list(work.glob(f"*lib/modules/{release}/{m}")) + list(
            work.glob(f"usr/lib/modules/{release}/{m}")
        )
        wanted[dest] = file_build_id(str(found[0])) if found else None
    if not all(wanted.values()):
        return False
    for dest, build_id in wanted.items():
        if not any(_get(f"{url}/buildid/{build_id}/debuginfo", dest, say) for url in urls):
            return False
    return True


def _get(url: str, dest: Path, say: object) -> bool:
    """Download ``url`` to ``dest``, saying its size and every tenth of the way; False on any failure."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            total = int(r.headers.get("Content-Length") or 0)
            say(f"lab: debuginfod: {url} ({total >> 20} MB)")  # type: ignore[operator]
            dest.parent.mkdir(parents=True, exist_ok=True)
            done, said = 0, 0
            with SafeFile(str(dest)) as out:  # whole or nothing: a cut download is never the file
                while chunk := r.read(1 << 20):
                    out.file.write(chunk)
                    done += len(chunk)
                    tenth = done * 10 // total if total else 0
                    if total > 64 << 20 and said < tenth < 10:
                        said = tenth
                        say(f"lab: debuginfod: {done >> 20} of {total >> 20} MB ({tenth * 10}%)")  # type: ignore[operator]
    except (OSError, ValueError, WriteFailed):
        return False
    return True


def fetch(release: str | None = None, say: object = print) -> Kit:
    """Fetch and unpack the kit of ``release`` (default: :func:`default_release`) unless cached."""
    release = release or default_release()
    if not re.fullmatch(r"\d[\w.+-]*", release):
        raise KitError(f"{release!r} is not a kernel release (e.g. 6.1.0-56-amd64)")
    kit = Kit(release, cache_root() / release)
    if kit.complete():
        return kit
    kit.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=kit.root) as tmp:
        work = Path(tmp)
        image_pkg, dbg_pkg = f"linux-image-{release}", f"linux-image-{release}-dbg"
        urls = debuginfod_urls()
        # with debuginfod, the debug files come by build-id: the 800 MB -dbg package only if it lacks them
        _download(work, [image_pkg] if urls else [image_pkg, dbg_pkg], say)
        image = next(work.glob(f"{image_pkg}_*.deb"))
        say("lab: unpacking vmlinuz and the guest modules")  # type: ignore[operator]
        _unpack(
            image,
            work,
            [f"./boot/vmlinuz-{release}", *(f"./*lib/modules/{release}/{m}" for m in GUEST_MODULES)],
        )
        debug_vmlinux = work / f"usr/lib/debug/boot/vmlinux-{release}"
        debug_modules = {m: work / f"usr/lib/debug/lib/modules/{release}/{m}" for m in GUEST_MODULES}
        if not urls or not _from_debuginfod(urls, work, release, debug_vmlinux, debug_modules, say):
            if urls:
                say(f"lab: debuginfod does not have them: downloading {dbg_pkg}")  # type: ignore[operator]
                _download(work, [dbg_pkg], say)
            dbg = next(work.glob(f"{dbg_pkg}_*.deb"))
            say("lab: unpacking the debug vmlinux and modules")  # type: ignore[operator]
            _unpack(
                dbg,
                work,
                [
                    f"./usr/lib/debug/boot/vmlinux-{release}",
                    *(f"./usr/lib/debug/lib/modules/{release}/{m}" for m in GUEST_MODULES),
                ],
            )
        (kit.root / "modules").mkdir(exist_ok=True)
        (kit.root / "debug").mkdir(exist_ok=True)
        for m in GUEST_MODULES:
            found = list(work.glob(f"*lib/modules/{release}/{m}")) + list(
                work.glob(f"usr/lib/modules/{release}/{m}")
            )
            if not found:
                raise KitError(f"linux-image-{release} has no {m}")
            shutil.move(found[0], kit.root / "modules" / Path(m).name)
            shutil.move(work / f"usr/lib/debug/lib/modules/{release}/{m}", kit.root / "debug" / Path(m).name)
        shutil.move(work / f"boot/vmlinuz-{release}", kit.vmlinuz)
        shutil.move(work / f"usr/lib/debug/boot/vmlinux-{release}", kit.vmlinux)
    return kit


def check_host(kit: Kit) -> list[str]:
    """What the host lacks to build and boot this kit (each a one-line fix)."""
    problems = []
    if not (kit.kdir / "Makefile").exists():
        problems.append(f"no headers for {kit.release}: apt-get install linux-headers-{kit.release}")
    if not shutil.which("qemu-system-x86_64"):
        problems.append("no qemu-system-x86_64: apt-get install qemu-system-x86")
    if not _static(Path(BUSYBOX)):
        problems.append("no static busybox: apt-get install busybox-static")
    return problems


BUSYBOX = "/bin/busybox"


def _static(path: Path) -> bool:
    """Whether ``path`` is an ELF executable that needs no dynamic loader (runs in a bare initramfs)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            return not any(seg["p_type"] == "PT_INTERP" for seg in ELFFile(f).iter_segments())
    except (OSError, ELFError):
        return False
