"""A lab run: build myfault.ko and the initramfs, boot the guest, run the scenario, keep the vmcore.

Each run gets a directory (by default under the state directory's ``lab/``)
holding ``vmcore``, ``console.log`` (the guest's serial console),
``myfault.ko`` (with its DWARF) and links to the kit's debug ``vmlinux`` and
guest modules, so that ``notmyfault analyze DIR/vmcore`` finds its symbols
beside the dump.  ``run.json`` records the scenario and the time of each phase.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from notmyfault.base import write_file
from notmyfault.faults import kernel
from notmyfault.lab import initramfs
from notmyfault.lab.kit import BUSYBOX, Kit
from notmyfault.lab.machine import DONE, FAULT, READY, Outcome, accelerator, qemu_argv, run_guest


@dataclass(frozen=True)
class Step:
    """One request the guest sends to myfault.ko; ``fault`` marks the one meant to bring it down."""

    request: kernel.Request
    label: str
    fault: bool = False


@dataclass(frozen=True)
class LabRun:
    """Where a run left its files, and what happened."""

    directory: Path
    outcome: Outcome
    accel: str

    @property
    def vmcore(self) -> Path | None:
        """The vmcore, when the guest panicked."""
        return self.outcome.vmcore


def build_dir(kit: Kit) -> Path:
    """Where myfault.ko and myfaultctl of this source and this kernel are built (once)."""
    digest = hashlib.sha256()
    for name in ("myfault.c", "myfault_ioctl.h", "Kbuild", "myfaultctl.c"):
        digest.update((kernel.SOURCE_DIR / name).read_bytes())
    return kit.root / f"build-{digest.hexdigest()[:12]}"


def build(kit: Kit) -> tuple[Path, Path]:
    """myfault.ko for the kit's kernel and the static myfaultctl, built unless already there."""
    out = build_dir(kit)
    ko, ctl = out / "myfault.ko", out / "myfaultctl"
    if not ko.exists():
        kernel.build(kit.kdir, out)
    if not ctl.exists():
        kernel.build_ctl(out)
    return ko, ctl


def init_script(steps: list[Step], interactive: bool) -> str:
    """The guest's /init: mount, load the modules, run the steps (or a shell), mark each phase."""
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev",
        "for m in qemu_fw_cfg pvpanic pvpanic-mmio myfault; do",
        '  insmod /lib/modules/$m.ko || echo "notmyfault-lab: insmod $m failed"',
        "done",
        f"echo '{READY}'",
    ]
    if interactive:
        lines += [
            "echo 'notmyfault-lab: myfaultctl OP KIND [ARG LIMIT BLOCK FLAGS TAG] drives /dev/myfault'",
            "setsid cttyhack sh",
            "poweroff -f",
        ]
        return "\n".join(lines) + "\n"
    for step in steps:
        marker = FAULT if step.fault else "notmyfault-lab: step"
        lines.append(f"echo {shlex.quote(f'{marker} {step.label}')}")
        lines.append("/bin/myfaultctl " + " ".join(shlex.quote(a) for a in step.request.argv()))
    lines += [f"echo '{DONE}'", "while true; do sleep 60; done"]
    return "\n".join(lines) + "\n"


def make_initrd(kit: Kit, ko: Path, ctl: Path, script: str) -> bytes:
    """The gzipped initramfs: busybox, myfaultctl, the modules and /init."""
    entries: dict[str, bytes | None] = {d: None for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules")}
    entries["bin/busybox"] = Path(BUSYBOX).read_bytes()
    entries["bin/myfaultctl"] = ctl.read_bytes()
    for m in kit.modules:
        entries[f"lib/modules/{m.name}"] = m.read_bytes()
    entries["lib/modules/myfault.ko"] = ko.read_bytes()
    entries["init"] = script.encode()
    return initramfs.cpio(entries, frozenset({"bin/busybox", "bin/myfaultctl", "init"}))


def run(
    kit: Kit,
    steps: list[Step],
    directory: Path,
    *,
    accel: str = "tcg",
    memory_mb: int = 512,
    cpus: int = 1,
    nmi_after: float = 10.0,
    timeout: float = 600.0,
    interactive: bool = False,
    kdump: bool = False,
    say: Callable[[str], None] = print,
) -> LabRun:
    """Run ``steps`` in a fresh guest and keep what it leaves in ``directory`` (with ``kdump``, also
    ``vmcore.kdump``: the same memory in makedumpfile's compressed format)."""
    phases: dict[str, float] = {}
    t0 = time.monotonic()
    ko, ctl = build(kit)
    phases["build"] = time.monotonic() - t0
    directory.mkdir(parents=True, exist_ok=True)
    t1 = time.monotonic()
    initrd = directory / "initrd.gz"
    write_file(str(initrd), make_initrd(kit, ko, ctl, init_script(steps, interactive)))
    phases["initramfs"] = time.monotonic() - t1
    write_file(str(directory / "myfault.ko"), ko.read_bytes())
    links = {"vmlinux": kit.vmlinux, **{m.name: m for m in kit.debug_modules}}
    for name, target in links.items():
        link = directory / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    chosen = accelerator(accel)
    console = directory / "console.log"
    if console.exists():
        console.unlink()
    argv = qemu_argv(
        kit.vmlinuz, initrd, directory / "qmp.sock", None if interactive else console, chosen, memory_mb, cpus
    )
    outcome = run_guest(
        argv,
        directory / "qmp.sock",
        console,
        directory / "vmcore",
        nmi_after=nmi_after,
        timeout=timeout,
        interactive=interactive,
        kdump=directory / "vmcore.kdump" if kdump else None,
        say=say,
    )
    outcome.phases = {**phases, **outcome.phases}
    initrd.unlink()
    write_file(
        str(directory / "run.json"),
        json.dumps(
            {
                "release": kit.release,
                "accel": chosen,
                "steps": [s.label for s in steps],
                "panicked": outcome.panicked,
                "nmi_sent": outcome.nmi_sent,
                "phases": {k: round(v, 3) for k, v in outcome.phases.items()},
            },
            indent=2,
        )
        + "\n",
    )
    return LabRun(directory, outcome, chosen)
