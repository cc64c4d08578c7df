"""One QEMU guest of the lab: boot, watch for the panic, write the vmcore, stop.

QEMU is told to pause when the guest panics (``-device pvpanic -action
panic=pause``) and to keep the guest's VMCOREINFO (``-device vmcoreinfo``).
On the ``GUEST_PANICKED`` event of its QMP socket, ``dump-guest-memory``
writes an ELF vmcore with the registers of the panic and the VMCOREINFO note.

A guest that hangs without panicking (interrupts off on every CPU: nothing
inside it can notice) gets an NMI after a deadline, as a Windows machine gets
one from its NMI button; the lab's kernel command line makes an unknown NMI
panic.  A guest that ends its scenario without a panic gets one too, so every
run leaves a dump.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from notmyfault.base.lifetime import tied, tied_env

KERNEL_ARGS = (
    "console=ttyS0",
    "oops=panic",  # an oops is fatal, as a bug check is
    "panic=0",  # and the guest waits in the panic for QEMU to pause it
    "panic_on_taint=0x20",  # SLUB's "object corrupted" (TAINT_BAD_PAGE) panics: BAD_POOL_HEADER
    "hung_task_panic=1",  # a task in D state too long panics (the IRP hang, the deadlock)
    "sysctl.kernel.hung_task_timeout_secs=3",
    "unknown_nmi_panic=1",  # the lab's NMI button
    "loglevel=6",
)

BOOT_TIMEOUT = 180.0
"""Seconds from QEMU's start to the guest's ready line (TCG boots in about 10 s)."""
READY = "notmyfault-lab: ready"
FAULT = "notmyfault-lab: fault"
DONE = "notmyfault-lab: done"


class LabError(Exception):
    """A one-line reason why the guest could not be run or dumped."""


@dataclass
class Outcome:
    """What happened to the guest, with the time of each phase in seconds."""

    panicked: bool
    vmcore: Path | None
    console: Path
    nmi_sent: bool = False
    phases: dict[str, float] = field(default_factory=dict)


class Qmp:
    """A minimal QMP client: one JSON object per line each way."""

    def __init__(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise LabError(f"QEMU's QMP socket {path} did not open within {timeout:.0f} s") from None
                time.sleep(0.05)
        self.buffer = b""
        self.events: list[dict[str, object]] = []
        self.receive()  # the greeting
        self.execute("qmp_capabilities")

    def receive(self, timeout: float | None = None) -> dict[str, object] | None:
        """The next message, or None when ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return None
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:
                raise LabError(f"QEMU's QMP socket failed: {e}") from None
            if not chunk:
                raise LabError("QEMU closed its QMP socket (it exited)")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        msg: dict[str, object] = json.loads(line)
        return msg

    def execute(self, command: str, **arguments: object) -> object:
        """Run a command and return its result; events that arrive meanwhile are kept."""
        req: dict[str, object] = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self.receive()
            assert msg is not None
            if "event" in msg:
                self.events.append(msg)
            elif "error" in msg:
                err = msg["error"]
                desc = err.get("desc") if isinstance(err, dict) else err
                raise LabError(f"QEMU refused {command}: {desc}")
            elif "return" in msg:
                return msg["return"]

    def event(self, timeout: float) -> dict[str, object] | None:
        """The next event (kept ones first), or None after ``timeout`` seconds."""
        if self.events:
            return self.events.pop(0)
        msg = self.receive(timeout)
        while msg is not None and "event" not in msg:
            msg = self.receive(timeout)
        return msg

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def accelerator(choice: str) -> str:
    """``kvm`` when asked and /dev/kvm is usable, ``tcg`` otherwise (``auto``: kvm if usable)."""
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    if choice == "kvm" and not usable:
        raise LabError("--accel kvm: /dev/kvm is missing or not writable (use --accel tcg)")
    return "kvm" if choice == "kvm" or (choice == "auto" and usable) else "tcg"


def qemu_argv(
    vmlinuz: Path, initrd: Path, qmp: Path, console: Path | None, accel: str, memory_mb: int, cpus: int
) -> list[str]:
    """The QEMU command line of a lab guest (``console`` None: the serial line is this terminal)."""
    argv = [
        "qemu-system-x86_64",
        "-machine",
        f"q35,accel={accel}",
        "-cpu",
        "host" if accel == "kvm" else "max",
        "-m",
        str(memory_mb),
        "-smp",
        str(cpus),
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        " ".join(KERNEL_ARGS),
        "-device",
        "pvpanic",
        "-device",
        "vmcoreinfo",
        "-action",
        "panic=pause",
        "-qmp",
        f"unix:{qmp},server=on,wait=off",
        "-display",
        "none",
        "-no-reboot",
    ]
    if console is None:
        argv += ["-serial", "mon:stdio"]
    else:
        argv += ["-serial", f"file:{console}"]
    return argv


def _console_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def run_guest(
    argv: list[str],
    qmp_path: Path,
    console: Path,
    vmcore: Path,
    *,
    nmi_after: float,
    timeout: float,
    interactive: bool = False,
    kdump: Path | None = None,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Start QEMU, wait for the panic (sending the NMI when the deadline passes), dump, quit.

    With ``kdump``, QEMU also writes the same memory there in makedumpfile's compressed format
    (``kdump-zlib``, flattened: what kdump-tools and RHEL's kdump keep, once put in place).
    """
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    stdio = None if interactive else subprocess.DEVNULL
    if shutil.which(argv[0]) is None:
        raise LabError("qemu-system-x86_64 is missing: apt-get install qemu-system-x86")
    qemu = subprocess.Popen(  # the guest dies with us: a killed lab left QEMU running
        tied(argv), stdin=stdio, stdout=stdio, stderr=subprocess.PIPE, env=tied_env()
    )
    qmp: Qmp | None = None
    try:
        try:
            qmp = Qmp(qmp_path, 30)
        except LabError:
            qemu.poll()
            err = (
                qemu.stderr.read().decode(errors="replace")
                if qemu.stderr and qemu.returncode is not None
                else ""
            )
            raise LabError(
                f"QEMU did not start: {err.strip().splitlines()[-1] if err.strip() else 'no message'}"
            ) from None
        ready_at = fault_at = None
        nmi_sent = False
        panicked = False
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            ev = qmp.event(0.2)
            now = time.monotonic()
            if ev is not None:
                name = ev.get("event")
                if name == "GUEST_PANICKED":
                    panicked = True
                    break
                if name == "SHUTDOWN":
                    break
            if interactive:
                continue
            text = _console_text(console)
            if ready_at is None and READY in text:
                ready_at = now
                phases["boot"] = now - t0
            if ready_at is None and now - t0 > BOOT_TIMEOUT:
                raise LabError(f"the guest did not boot within {BOOT_TIMEOUT:.0f} s (console: {console})")
            if fault_at is None and (FAULT in text or DONE in text):
                fault_at = now
            if fault_at is not None and not nmi_sent and now - fault_at > nmi_after:
                say(f"lab: no panic {nmi_after:.0f} s after the fault: sending the guest an NMI")
                qmp.execute("inject-nmi")
                nmi_sent = True
        else:
            raise LabError(
                f"the guest neither panicked nor stopped within {timeout:.0f} s (console: {console})"
            )
        panic_at = time.monotonic()
        if ready_at is not None:
            phases["scenario"] = panic_at - ready_at
        if not panicked:
            return Outcome(False, None, console, nmi_sent, phases)
        # the kdump first: QEMU 7.2 fails a flattened dump written after another dump
        dumps = ([(kdump, "kdump-zlib")] if kdump is not None else []) + [(vmcore, "elf")]
        for path, fmt in dumps:
            # QEMU sends DUMP_COMPLETED from the dump's thread before that thread closes its file:
            # a second dump started at once can have its file closed under it ("Bad file
            # descriptor", seen on a loaded machine). Such a dump is written again, once.
            for attempt in (1, 2):
                if path.exists():
                    path.unlink()
                qmp.execute(
                    "dump-guest-memory", paging=False, protocol=f"file:{path}", detach=True, format=fmt
                )
                error = None
                while True:
                    ev = qmp.event(120)
                    if ev is None:
                        raise LabError(f"QEMU did not finish writing the {fmt} vmcore within 120 s")
                    if ev.get("event") == "DUMP_COMPLETED":
                        data = ev.get("data")
                        error = data.get("error") if isinstance(data, dict) else None
                        break
                if error is None:
                    break
                if attempt == 2:
                    raise LabError(f"QEMU could not write the {fmt} vmcore: {error}")
                time.sleep(1.0)
        phases["dump"] = time.monotonic() - panic_at
        return Outcome(True, vmcore, console, nmi_sent, phases)
    finally:
        if qmp is not None:
            with contextlib.suppress(LabError, OSError):
                qmp.execute("quit")
            qmp.close()
        try:
            qemu.wait(10)
        except subprocess.TimeoutExpired:
            qemu.send_signal(signal.SIGKILL)
            qemu.wait()
        if qemu.stderr:
            qemu.stderr.close()
        if qmp_path.exists():
            qmp_path.unlink()
