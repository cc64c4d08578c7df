"""Windows bug checks as data: public names, what each means, what its four arguments are, and which
argument (if any) holds the address of the faulting code, which the blame rule follows.

The texts are ours, written from the public documentation of each code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BugCheck:
    """One bug check code."""

    code: int
    name: str
    meaning: str = ""
    args: tuple[str, str, str, str] = ("", "", "", "")
    code_arg: int | None = None
    """Which argument (0-3) is the address of the instruction that faulted, when one is."""


KERNEL_MODULES: tuple[str, ...] = (
    "ntoskrnl.exe", "ntkrnlmp.exe", "ntkrnlpa.exe", "ntkrpamp.exe", "hal.dll", "halmacpi.dll", "halacpi.dll",
)  # fmt: skip
"""The kernel and the HAL: they carry out what drivers ask, so the blame rule passes over them."""

_IRQL = (
    "memory referenced",
    "IRQL at the time of the reference",
    "0: read, 1: write, 8: execute",
    "address of the instruction that referenced the memory",
)
_EXCEPTION = (
    "the exception code that was not handled",
    "address of the instruction where the exception happened",
    "parameter 0 of the exception",
    "parameter 1 of the exception",
)
_THREAD_EXCEPTION = (
    "the exception code that was not handled",
    "address of the instruction where the exception happened",
    "address of the exception record",
    "address of the context record",
)

BUGCHECKS: dict[int, BugCheck] = {
    b.code: b
    for b in (
        BugCheck(0x0A, "IRQL_NOT_LESS_OR_EQUAL",
                 "Kernel code touched pageable or invalid memory while the processor ran at a raised IRQL "
                 "(DISPATCH_LEVEL or above), where a page fault cannot be served.", _IRQL, 3),
        BugCheck(0x1E, "KMODE_EXCEPTION_NOT_HANDLED",
                 "Kernel-mode code raised an exception that no handler caught.", _EXCEPTION, 1),
        BugCheck(0x3B, "SYSTEM_SERVICE_EXCEPTION",
                 "An exception happened while running a system service, on the way from user to kernel mode.",
                 ("the exception code", "address of the instruction that caused it",
                  "address of the context record", "0"), 1),
        BugCheck(0x50, "PAGE_FAULT_IN_NONPAGED_AREA",
                 "Memory that should always be resident was referenced and is not there: an invalid or "
                 "freed address, often a driver's stale pointer.",
                 ("memory referenced", "0: read, 1: write, 2: execute (depends on the Windows version)",
                  "address of the instruction that referenced the memory, if known", "type of page fault"), 2),
        BugCheck(0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED",
                 "A system thread raised an exception that no handler caught.", _THREAD_EXCEPTION, 1),
        BugCheck(0x1000007E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M",
                 "A system thread raised an exception that no handler caught (the variant that carries "
                 "the exception and context records).", _THREAD_EXCEPTION, 1),
        BugCheck(0x7F, "UNEXPECTED_KERNEL_MODE_TRAP",
                 "The processor raised a trap the kernel does not catch, such as a double fault from a "
                 "kernel stack overflow or a divide error in kernel mode.",
                 ("the trap number (8: double fault, 0: divide error, ...)", "", "", "")),
        BugCheck(0x8E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED",
                 "Kernel-mode code raised an exception that no handler caught.", _THREAD_EXCEPTION, 1),
        BugCheck(0x1000008E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED_M",
                 "Kernel-mode code raised an exception that no handler caught (the variant that carries "
                 "the trap frame).", ("the exception code", "address of the instruction where it happened",
                                      "address of the trap frame", "0"), 1),
        BugCheck(0x9F, "DRIVER_POWER_STATE_FAILURE",
                 "A driver did not complete a power request (sleep, wake, shutdown) in time or in a "
                 "consistent state.",
                 ("the kind of failure (3: a device object took too long with a power IRP, ...)",
                  "the physical device object", "the functional device object or the IRP (by kind)",
                  "the blocked IRP or the driver's device object (by kind)")),
        BugCheck(0xC2, "BAD_POOL_CALLER",
                 "A driver made a bad pool request: freeing memory twice, at a wrong IRQL, or with a "
                 "wrong tag or size.",
                 ("the kind of violation", "by kind: the pool type, address or header",
                  "by kind: the size, tag or address", "by kind: the tag or caller")),
        BugCheck(0xC5, "DRIVER_CORRUPTED_EXPOOL",
                 "A driver touched pool memory at a raised IRQL after corrupting the pool (or after "
                 "freeing the memory): the system pool is damaged.", _IRQL, 3),
        BugCheck(0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
                 "A driver touched pageable (or invalid) memory while the processor ran at a raised IRQL, "
                 "where a page fault cannot be served: the seed's High IRQL fault.", _IRQL, 3),
        BugCheck(0xD6, "DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
                 "A driver read or wrote past the end of its pool allocation (caught by Special Pool).",
                 ("memory referenced", "0: read, 1: write", "address of the instruction that referenced it",
                  "reserved"), 2),
        BugCheck(0xEF, "CRITICAL_PROCESS_DIED",
                 "A process the system cannot run without (csrss, wininit, smss, ...) ended.",
                 ("the process object", "1 if a thread of it ended, 0 if the process did", "", "")),
        BugCheck(0x133, "DPC_WATCHDOG_VIOLATION",
                 "A deferred procedure call ran too long at DISPATCH_LEVEL, or the processor stayed there "
                 "too long overall: the watchdog stopped the machine (the seed's Hang with DPC).",
                 ("0: one DPC ran too long, 1: too long at DISPATCH_LEVEL in all",
                  "the DPC time count (ticks)", "the DPC time allotment (ticks)", "by kind: watchdog data")),
        BugCheck(0x139, "KERNEL_SECURITY_CHECK_FAILURE",
                 "The kernel found one of its own critical structures corrupted (a stack buffer overrun, "
                 "a corrupt LIST_ENTRY, ...) and stopped rather than run on.",
                 ("the kind of corruption (3: LIST_ENTRY, 2: stack buffer overrun, ...)",
                  "address of the trap frame", "address of the exception record", "reserved")),
        BugCheck(0x1C8, "MANUALLY_INITIATED_POWER_BUTTON_HOLD",
                 "The user held the power button down, and the system was set to take a dump then "
                 "instead of powering off: the picture of whatever was hanging.",
                 ("milliseconds the button was held", "the power button's work item or context", "", "")),
        BugCheck(0xE2, "MANUALLY_INITIATED_CRASH",
                 "The user asked for a crash from the keyboard (right Ctrl + Scroll Lock twice) or a "
                 "debugger: NotMyfault's and CrashOnCtrlScroll's dump.", ("", "", "", "")),
        BugCheck(0xDEADDEAD, "MANUALLY_INITIATED_CRASH1",
                 "The user asked for a crash (NotMyfault /crash, a debugger, or a live dump tool).",
                 ("", "", "", "")),
        BugCheck(0x1A, "MEMORY_MANAGEMENT", "The memory manager found its own state inconsistent.",
                 ("the kind of inconsistency", "", "", "")),
        BugCheck(0x19, "BAD_POOL_HEADER", "A pool block's header is damaged: someone wrote past their block.",
                 ("the kind of damage", "", "", "")),
        BugCheck(0x24, "NTFS_FILE_SYSTEM", "NTFS hit a problem it cannot recover from.", ("", "", "", "")),
        BugCheck(0x4E, "PFN_LIST_CORRUPT", "The page frame number database is corrupt, often by a driver's "
                 "bad memory descriptor list.", ("the kind of corruption", "", "", "")),
        BugCheck(0x7A, "KERNEL_DATA_INPAGE_ERROR", "A page of kernel data could not be read back from the "
                 "paging file: a disk, controller or memory fault.",
                 ("lock type or PTE", "error status", "by kind", "virtual address")),
        BugCheck(0x101, "CLOCK_WATCHDOG_TIMEOUT",
                 "A processor stopped answering clock interrupts: it hangs, perhaps spinning with "
                 "interrupts off.", ("the clock interrupt time-out (ticks)", "0", "the PRCB of the processor",
                                     "the number of the processor")),
        BugCheck(0x124, "WHEA_UNCORRECTABLE_ERROR", "The hardware reported an error it could not correct.",
                 ("the kind of error source", "address of the WHEA error record", "", "")),
        BugCheck(0xC4, "DRIVER_VERIFIER_DETECTED_VIOLATION", "Driver Verifier caught a driver breaking a rule.",
                 ("the kind of violation", "", "", "")),
        BugCheck(0xFC, "ATTEMPTED_EXECUTE_OF_NOEXECUTE_MEMORY", "Kernel code jumped into memory that is not "
                 "executable.", ("the address executed", "its page table entry", "", ""), 0),
        BugCheck(0xBE, "ATTEMPTED_WRITE_TO_READONLY_MEMORY", "A driver wrote to read-only memory.",
                 ("the address written", "its page table entry", "", "")),
    )
}  # fmt: skip


def bugcheck(code: int) -> BugCheck:
    """The bug check ``code`` (a generic entry for codes the table does not know)."""
    return BUGCHECKS.get(code) or BugCheck(
        code, f"BUGCHECK_{code:X}", "A bug check this table does not describe."
    )
