"""The child that reads a CPython core's Python frames: ``python -m notmyfault.unwind.pyreader CORE
EXECUTABLE [--locals]`` prints them as JSON (``unwind.python`` starts it and reads its answer).

``--wait`` instead: import pystack (50 ms), then read the request, one JSON line on standard input
(``{"core": ..., "executable": ..., "locals": false}``); end of input ends the child with nothing
read. ``unwind.python`` starts it so while the native stacks are still being walked.

pystack's engine is C++ over memory read from an untrusted dump, so it runs here, in a process of its
own, under a memory limit (and the parent's time limit): a crash or a hang ends this child, not the
analysis. It imports nothing of notmyfault but what dies with the parent, so that it starts fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

MEMORY_LIMIT = 1 << 30
"""Bytes of data (heap and private mappings: RLIMIT_DATA) the child may take; the core itself is
mapped read-only and does not count."""


def read(core_path: str, executable: str, with_locals: bool) -> dict[str, Any]:
    """pystack over the core: each thread's frames, innermost first, as JSON."""
    from pystack.engine import NativeReportingMode, get_process_threads_for_core

    threads = get_process_threads_for_core(
        core_path, executable, native_mode=NativeReportingMode.OFF, locals=with_locals
    )
    out: list[dict[str, Any]] = []
    for t in threads:
        frames: list[dict[str, Any]] = []
        carry = False
        for f in t.all_frames:
            entry = bool(f.is_entry) or carry
            if f.is_shim:  # 3.12+: a frame the C stack owns marks a run: its mark goes to the next real one
                carry = entry
                continue
            carry = False
            frames.append(
                {
                    "function": f.code.scope,
                    "file": f.code.filename,
                    "line": f.code.location.lineno,
                    "arguments": list(f.arguments.items()) if with_locals else [],
                    "locals": list(f.locals.items()) if with_locals else [],
                    "entry": entry,
                }
            )
        out.append({"tid": t.tid, "gil": bool(t.holds_the_gil), "frames": frames[::-1]})
    return {"threads": out}


def main(argv: list[str]) -> int:
    """Read the frames of ``argv``'s core; JSON on stdout, 0; else a line on stderr, 1 (2: usage)."""
    if argv == ["--wait"]:
        import pystack.engine  # noqa: F401  (imported while the parent still walks)

        line = sys.stdin.readline()
        if not line:
            return 0  # not needed after all
        try:
            request = json.loads(line)
            argv = [str(request["core"]), str(request["executable"])] + (
                ["--locals"] if request["locals"] else []
            )
        except (ValueError, KeyError, TypeError):
            print(
                "pyreader: the request is not one JSON line with core, executable and locals", file=sys.stderr
            )
            return 2
    if len(argv) < 2:
        print(
            "usage: python -m notmyfault.unwind.pyreader CORE EXECUTABLE [--locals] | --wait", file=sys.stderr
        )
        return 2
    import resource

    with contextlib.suppress(ValueError, OSError):  # a lower hard limit stays
        resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    try:
        data = read(argv[0], argv[1], "--locals" in argv[2:])
    except MemoryError:
        print(f"pystack: it needed more than {MEMORY_LIMIT >> 20} MiB", file=sys.stderr)
        return 1
    except Exception as e:
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"pystack: {message}", file=sys.stderr)
        return 1
    json.dump(data, sys.stdout, ensure_ascii=True)
    return 0


if __name__ == "__main__":
    from notmyfault.base.lifetime import die_with_parent

    die_with_parent()  # a killed analysis takes its pystack with it
    sys.exit(main(sys.argv[1:]))
