"""``notmyfault lab``: crash a real kernel in a disposable QEMU guest and analyse its vmcore.

notmyfault lab run -- leak --pool nonpaged --rate 10MB --stop-at 200MB --then-crash high-irql
notmyfault lab run -- crash null-deref
notmyfault lab run -- hang dpc
notmyfault lab shell
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from notmyfault.base import WriteFailed
from notmyfault.cli.common import EXIT_INTERRUPTED, echo_safe, emit_json, fail, interruptible, note
from notmyfault.cli.kernel import code_option, leak_options, leak_request_from, parse_code
from notmyfault.faults import KERNEL_CRASHES as CRASHES
from notmyfault.faults import KERNEL_HANGS as HANGS
from notmyfault.render import SCHEMA_VERSION

accel_option = click.option(
    "--accel",
    type=click.Choice(["tcg", "kvm", "auto"]),
    default="tcg",
    show_default=True,
    help="QEMU's accelerator: tcg emulates (works everywhere); kvm needs a usable /dev/kvm.",
)
out_option = click.option(
    "--out", type=click.Path(file_okay=False), help="Directory for the vmcore and console log."
)
memory_option = click.option("--memory", default=512, show_default=True, help="Guest memory in MiB.")
kernel_option = click.option(
    "--kernel",
    "release",
    metavar="RELEASE",
    help="Debian kernel ABI (default: what linux-image-amd64 is today).",
)


@click.group()
def lab() -> None:
    """A disposable QEMU guest with a real distribution kernel and myfault.ko: crash, hang, leak, analyse."""


def _kit(release: str | None) -> Any:
    from notmyfault.lab import KitError, check_host, fetch

    try:
        kit = fetch(release, say=note)
    except KitError as e:
        fail(str(e))
    problems = check_host(kit)
    if problems:
        fail("; ".join(problems))
    return kit


def _emit_run(kit: Any, result: Any, analysis: bool) -> None:
    """The run as JSON: where it left what, how long each phase took, and the vmcore's analysis."""
    found = None
    if analysis:
        import notmyfault
        from notmyfault.render.analysis import analysis_json

        try:
            with notmyfault.open(str(result.vmcore)) as vm:
                if vm.kind != "vmcore":
                    fail(f"{result.vmcore} is no kernel vmcore", 1)
                found = analysis_json(vm.analysis())
        except notmyfault.DumpError as e:
            fail(str(e), 1)
    kdump = result.directory / "vmcore.kdump"
    emit_json(
        {
            "schema_version": SCHEMA_VERSION,
            "kind": "lab-run",
            "release": kit.release,
            "accel": result.accel,
            "directory": str(result.directory),
            "vmcore": str(result.vmcore),
            "kdump": str(kdump) if kdump.exists() else None,
            "console": str(result.outcome.console),
            "panicked": result.outcome.panicked,
            "nmi_sent": result.outcome.nmi_sent,
            "phases": {k: round(v, 3) for k, v in result.outcome.phases.items()},
            "analysis": found,
        }
    )


@lab.command()
@kernel_option
@click.option("--json", "as_json", is_flag=True, help="JSON output (docs/json-schema.md).")
def fetch(release: str | None, as_json: bool) -> None:
    """Download and unpack the kernel kit (image, debug vmlinux) into the cache, once."""
    kit = _kit(release)
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, "kind": "lab-kit", "release": kit.release, "root": str(kit.root),
                   "vmlinuz": str(kit.vmlinuz), "vmlinux": str(kit.vmlinux)})  # fmt: skip
    else:
        echo_safe(f"{kit.release}: {kit.root}")


# The scenario: the words after `lab run --`, parsed by their own small command set.
@click.group(name="lab run --")
def scenario() -> None:
    """What the guest does."""


@scenario.command("crash")
@click.argument("crash_type", type=click.Choice(list(CRASHES)))
@code_option
@click.pass_obj
def scenario_crash(steps: list[Any], crash_type: str, code: str) -> None:
    """Crash the guest's kernel in myfault.ko."""
    from notmyfault.faults import crash_request
    from notmyfault.lab import Step

    steps.append(Step(crash_request(crash_type, parse_code(code)), f"crash {crash_type}", fault=True))


@scenario.command("hang")
@click.argument("hang_type", type=click.Choice(list(HANGS)))
@click.pass_obj
def scenario_hang(steps: list[Any], hang_type: str) -> None:
    """Hang the guest's kernel in myfault.ko."""
    from notmyfault.faults import hang_request
    from notmyfault.lab import Step

    steps.append(Step(hang_request(hang_type), f"hang {hang_type}", fault=True))


@scenario.command("leak")
@leak_options("10MB", "40MB")
@click.option("--then-crash", type=click.Choice(list(CRASHES)), help="Then crash this way.")
@click.option("--then-hang", type=click.Choice(list(HANGS)), help="Then hang this way.")
@click.pass_obj
def scenario_leak(
    steps: list[Any],
    pool: str,
    rate: str,
    stop_at: str,
    block: str,
    tag: str,
    then_crash: str | None,
    then_hang: str | None,
) -> None:
    """Leak kernel memory at a rate with a tag (and then crash or hang)."""
    from notmyfault.faults import crash_request, hang_request
    from notmyfault.lab import Step

    steps.append(
        Step(
            leak_request_from(pool, rate, stop_at, block, tag), f"leak {pool} {rate}/s to {stop_at} tag {tag}"
        )
    )
    if then_crash:
        steps.append(Step(crash_request(then_crash), f"crash {then_crash}", fault=True))
    if then_hang:
        steps.append(Step(hang_request(then_hang), f"hang {then_hang}", fault=True))


def _out_dir(out: str | None) -> Path:
    from notmyfault.capture import state_dir

    if out:
        return Path(out)
    return Path(state_dir()) / "lab" / time.strftime("%Y%m%d-%H%M%S")


@lab.command(context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, type=click.UNPROCESSED, required=True)
@kernel_option
@accel_option
@out_option
@memory_option
@click.option("--cpus", default=1, show_default=True, help="Guest CPUs.")
@click.option(
    "--nmi-after", default=10.0, show_default=True, help="Seconds to wait for a panic before the NMI button."
)
@click.option("--no-analysis", is_flag=True, help="Only capture the vmcore.")
@click.option(
    "--kdump",
    is_flag=True,
    help="Also write vmcore.kdump: the same memory in makedumpfile's compressed format (as kdump-tools "
    "and RHEL's kdump keep it).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="The run and its analysis as JSON (docs/json-schema.md)."
)
def run(
    words: tuple[str, ...],
    release: str | None,
    accel: str,
    out: str | None,
    memory: int,
    cpus: int,
    nmi_after: float,
    no_analysis: bool,
    kdump: bool,
    as_json: bool,
) -> None:
    """Boot a guest, run a scenario (after --: crash TYPE | hang TYPE | leak ...), capture and analyse the vmcore."""
    steps: list[Any] = []
    try:
        scenario.main(list(words), prog_name="notmyfault lab run --", standalone_mode=False, obj=steps)
    except click.ClickException as e:
        fail(e.format_message())
    if not steps:
        return  # --help of the scenario was printed
    if not any(s.fault for s in steps):
        note("lab: the scenario has no fault: the NMI button will end it with a panic")
    _run(
        steps,
        release,
        accel,
        out,
        memory,
        cpus,
        nmi_after,
        interactive=False,
        analysis=not no_analysis,
        kdump=kdump,
        as_json=as_json,
    )


@lab.command()
@kernel_option
@accel_option
@out_option
@memory_option
def shell(release: str | None, accel: str, out: str | None, memory: int) -> None:
    """An interactive guest (myfault.ko loaded, myfaultctl on PATH); a panic is captured as in run."""
    _run([], release, accel, out, memory, 1, 0, interactive=True, analysis=True)


def _run(
    steps: list[Any],
    release: str | None,
    accel: str,
    out: str | None,
    memory: int,
    cpus: int,
    nmi_after: float,
    *,
    interactive: bool,
    analysis: bool,
    kdump: bool = False,
    as_json: bool = False,
) -> None:
    from notmyfault.faults import KernelError
    from notmyfault.lab import LabError, run_lab

    kit = _kit(release)
    directory = _out_dir(out)
    try:
        with interruptible():
            result = run_lab(
                kit,
                steps,
                directory,
                accel=accel,
                memory_mb=memory,
                cpus=cpus,
                nmi_after=nmi_after,
                timeout=float("inf") if interactive else 600.0,
                interactive=interactive,
                kdump=kdump,
                say=note,
            )
    except (LabError, KernelError, WriteFailed) as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        fail("interrupted: the guest was stopped", EXIT_INTERRUPTED)
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in result.outcome.phases.items())
    note(f"lab: {kit.release} under {result.accel}: {phases}")
    if result.outcome.console.exists():
        note(f"lab: console log: {result.outcome.console}")
    if result.vmcore is None:
        fail("the guest stopped without a panic: no vmcore", 1)
    note(f"lab: vmcore: {result.vmcore} ({os.path.getsize(result.vmcore) >> 20} MiB)")
    if as_json:
        _emit_run(kit, result, analysis)
        return
    if analysis:
        from notmyfault.cli.analyze import analyze

        analyze.main([str(result.vmcore)], prog_name="notmyfault analyze", standalone_mode=False)
