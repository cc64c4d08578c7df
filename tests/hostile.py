"""Hostile-strings fixtures, made by script: a program whose file name, command line, crashing
function and abort message carry HTML, SQL, terminal escapes, invalid UTF-8, a 64 KB name and NUL
bytes, crashed two ways (a NULL write in the 64 KB-named function; an abort() with a hostile message,
a NUL inside it, in glibc's __abort_msg).  The cores are the kernel's own (the plain 'core' pattern).

Run: python tests/hostile.py DIR  (prints the two cores' paths)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HTML = "<img src=x onerror=alert(1)>"
SQL = "'); DROP TABLE dumps; --"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"
"""OSC retitle, BEL, clear screen, a C1 CSI, a right-to-left override."""
NAME = os.fsencode(f"{HTML}{SQL}{ESCAPES}") + b"\xff\xfe"
"""The program's file name (bytes: it ends in invalid UTF-8)."""
ARGUMENT = f"--token={ESCAPES}{HTML}"
LONG = "f" * 65536
"""The crashing function's name: 64 KB."""
MESSAGE = f"{HTML} {SQL} {ESCAPES}".encode() + b"\xff"
"""The abort message (before its NUL; it ends in a byte that is not UTF-8)."""
RAW = ("\x1b", "\x07", "\x9b", "\u202e")
"""What no terminal page may hold."""

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
struct abort_msg_s { unsigned int size; char msg[0]; };  /* glibc's last message, __abort_msg */
__attribute__((noinline)) void %(long)s(volatile int *p) { *p = 1; }
int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[2], "abort") == 0) {
        static const char m[] = "%(message)s\0after a NUL";
        struct abort_msg_s *a = malloc(sizeof *a + sizeof m);
        a->size = sizeof *a + sizeof m;
        memcpy(a->msg, m, sizeof m);
        *(struct abort_msg_s **)dlsym(RTLD_DEFAULT, "__abort_msg") = a;
        abort();
    }
    %(long)s(0);
    return 0;
}
"""


def _c_string(data: bytes) -> str:
    """``data`` as the inside of a C string literal (every byte outside printable ASCII as an escape)."""
    out = []
    for b in data:
        c = chr(b)
        out.append(c if 32 <= b < 127 and c not in '"\\?' else f"\\{b:03o}")
    return "".join(out)


def make(directory: Path) -> tuple[Path, Path]:
    """Build the hostile program in ``directory`` and crash it twice; return (segv core, abort core)."""
    from tests.coretools import unlimited_cores

    directory.mkdir(parents=True, exist_ok=True)
    src = directory / "hostile.c"
    src.write_text(SOURCE % {"long": LONG, "message": _c_string(MESSAGE)})
    exe = os.path.join(os.fsencode(directory), NAME)
    subprocess.run(["gcc", "-g", "-O1", str(src), "-o", exe], check=True, capture_output=True)
    cores = []
    for how, signo in (("segv", 11), ("abort", 6)):
        run = directory / how
        run.mkdir(exist_ok=True)
        r = subprocess.run([exe, ARGUMENT.encode(), how.encode()], cwd=run, preexec_fn=unlimited_cores,
                           capture_output=True, check=False)  # fmt: skip
        assert r.returncode == -signo, (how, r.returncode, r.stderr[-400:])
        core = run / "core"
        assert core.is_file(), f"{how}: no core in {run}"
        cores.append(core)
    return cores[0], cores[1]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for c in make(Path(sys.argv[1])):
        print(c)
