"""The ``notmyfault`` console script's entry point.

It sets the stop handlers before anything else is imported (a SIGTERM while the command starts is
a stop like any other, not the interpreter's default death), answers ``--version`` and runs the
core_pattern handler (``collect --from-kernel``: the kernel holds the dying process until it ends)
without importing the command line, starts inflating the debug files of the core that ``analyze``
and ``stack`` will walk (beside the command line's imports), then hands over to ``cli.main``. At
the end it freezes the objects the command made so that the interpreter's last collection at exit
does not walk them all again.
"""

from __future__ import annotations

import sys

from notmyfault.cli.stops import install


def main() -> None:
    """Run ``notmyfault`` with ``sys.argv``."""
    install()
    if sys.argv[1:] == ["--version"]:
        from notmyfault import __version__

        sys.stdout.write(f"notmyfault, version {__version__}\n")
        return
    if sys.argv[1:3] == ["collect", "--from-kernel"]:  # the core_pattern handler: no command line to load
        import os

        from notmyfault.pipeline import from_kernel

        code = from_kernel(sys.argv[3:])
        sys.stderr.flush()
        os._exit(code)  # nothing to tear down: the kernel waits for this process to end
    if sys.argv[1:2] in (["analyze"], ["stack"]) and "--help" not in sys.argv:
        _prefetch(sys.argv[2:])
    try:
        from notmyfault.cli.main import main as run

        run()
    finally:
        import gc

        gc.freeze()  # the collection at exit skips a frozen heap: it freed nothing a process needs


def _prefetch(args: list[str]) -> None:
    """For the commands that walk a core's stacks: start inflating its modules' compressed debug
    files (``notmyfault.prefetch``) before the command line is imported, so that the
    inflating runs beside that. The core is the first argument that is an ELF process core; the
    command itself reads its arguments and says what is wrong with them."""
    import os

    from notmyfault.api import prefetch

    for arg in args:
        if not arg.startswith("-") and os.path.isfile(arg) and prefetch(arg):
            return


if __name__ == "__main__":
    main()
