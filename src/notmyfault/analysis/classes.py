"""Crash classes: a stable UPPER_SNAKE name and a paragraph for each (the bug check names of notmyfault).

Data, not code: the classifier picks a name, renderers print the paragraph.
Names never change meaning; new ones may be added (the JSON enum is open).
"""

from __future__ import annotations

CRASH_CLASSES: dict[str, str] = {
    "NULL_POINTER_READ": "The program read through a NULL (or nearly NULL) pointer: the address lies in the first page, which is never mapped. A pointer was used before it was set, or after a failed allocation or lookup returned NULL.",
    "NULL_POINTER_WRITE": "The program wrote through a NULL (or nearly NULL) pointer: the address lies in the first page, which is never mapped. A pointer was used before it was set, or after a failed allocation or lookup returned NULL.",
    "NULL_POINTER_EXECUTE": "The program jumped to address 0: it called through a NULL function pointer (a callback or method that was never set). The caller's return address is still on top of the stack.",
    "INVALID_MEMORY_READ": "The program read memory that is not mapped: a stale, uninitialised or corrupted pointer, for instance to memory that was already freed and returned to the system (use after free), or that was unmapped.",
    "INVALID_MEMORY_WRITE": "The program wrote to memory that is not mapped: a stale, uninitialised or corrupted pointer, for instance to memory already freed and returned to the system.",
    "WRITE_TO_READONLY_MEMORY": "The program wrote to memory mapped without write permission, such as its own machine code or read-only data (string literals, constants): a wild pointer, or code overwriting itself.",
    "EXECUTE_NON_EXECUTABLE": "The program jumped into memory that is mapped but not executable (data, heap or stack): a corrupted function pointer or return address.",
    "STACK_OVERFLOW": "The thread ran out of stack: the fault lies in or next to the guard area below its stack. Usually unbounded recursion, sometimes a very large local array.",
    "STACK_CORRUPTION": "The program counter points outside every executable mapping: a return address or saved frame pointer on the stack was overwritten (a stack buffer overflow), so the function returned to a wild address. Caller frames are recovered by scanning the stack for return addresses.",
    "STACK_BUFFER_OVERRUN": "A stack buffer overrun was caught before the function returned: its stack cookie (MSVC's /GS, GCC's -fstack-protector) was overwritten by a write past the end of a local array, and the check ended the process on the spot. The function that overran its buffer is the one that called the check.",
    "HEAP_CORRUPTION": "The C library's heap allocator found its own bookkeeping damaged and aborted the process: a write past the end (or before the start) of a heap block, or a write to freed memory, overwrote the allocator's metadata. The culprit ran earlier than the abort; the blamed frame is the call into the allocator that noticed.",
    "DOUBLE_FREE": "The program freed the same heap block twice; the C library noticed and aborted the process.",
    "ASSERTION_FAILURE": "An assert() failed: the program found one of its own invariants broken and aborted.",
    "ABORT": "The program called abort() (directly, or through a library that gave up).",
    "BREAKPOINT": "The program executed a breakpoint instruction with no debugger attached: a hard-coded debug trap, or code that jumped into padding filled with breakpoints.",
    "ILLEGAL_INSTRUCTION": "The processor met an instruction it cannot execute: a deliberate trap (ud2, __builtin_trap, often a compiler-inserted check), code built for a newer CPU, or a jump into data.",
    "DIVIDE_BY_ZERO": "An integer division (or remainder) by zero trapped.",
    "ARITHMETIC_ERROR": "An arithmetic exception other than integer division by zero (integer overflow in division, or an enabled floating-point trap).",
    "BUS_ERROR": "The memory access could not be completed although the address is mapped: a mapped file was accessed past its end (it was truncated, or mapped beyond it), or an access was misaligned where that traps.",
    "KILLED_BY_SIGNAL": "Another process (or the process itself) sent a fatal signal; no fault happened in the code.",
    "DEADLOCK": "Threads wait on mutexes held by one another in a cycle; none can go on. The dump was taken from the hung process.",
    "LIVE_DUMP": "No crash: the process was dumped while it ran (notmyfault dump, gcore, a minidump written on request), with no signal or exception. The stacks show what each thread was doing at that moment.",
    "UNKNOWN": "The dump does not say enough to classify the crash.",
}
