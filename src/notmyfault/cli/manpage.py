"""notmyfault(1): the manual page, written from the click commands themselves.

``python -m notmyfault.cli.manpage`` prints it; the repository keeps the result in
``man/notmyfault.1`` (the tests check it is current), and the wheel installs it as
``share/man/man1/notmyfault.1``, where ``man notmyfault`` finds it beside the ``notmyfault`` script.
"""

from __future__ import annotations

import click

from notmyfault import __version__

ENVIRONMENT = (
    ("NOTMYFAULT_DUMP_DIR", "Where dumps go when the kernel's core_pattern is relative."),
    ("NOTMYFAULT_PAGER, PAGER", "The pager for long pages on a terminal (default: less, with LESS=FRX)."),
    ("DEBUGINFOD_URLS", "Symbol servers that --debuginfod asks for missing executables and debug info."),
)
EXIT_STATUS = (
    ("0", "The fault left a dump, or the command did what it was asked."),
    ("1", "The fault left no whole dump (the reason is printed), search found nothing, or an output "
          "could not be written."),
    ("2", "Bad input: an unknown type, a bad option or value, a missing file or prerequisite."),
    ("130", "Interrupted by Ctrl-C, SIGTERM or SIGHUP; what the command started is stopped first."),
)  # fmt: skip


def _roff(text: str) -> str:
    """``text`` as roff: backslashes and hyphens escaped, no line starting a request."""
    out = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        out.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(out)


def _paragraphs(help_text: str) -> list[str]:
    """A command's help as paragraphs (click's \\b marks a block kept as it is)."""
    out = []
    for block in help_text.strip().split("\n\n"):
        block = block.strip("\n")
        if block.startswith("\b"):
            out.append(".nf\n" + _roff(block[1:].strip("\n")) + "\n.fi")
        else:
            out.append(_roff(" ".join(line.strip() for line in block.splitlines())))
    return out


def _commands(group: click.Group, prefix: list[str]) -> list[tuple[list[str], click.Command]]:
    ctx = click.Context(group)
    out: list[tuple[list[str], click.Command]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        if isinstance(command, click.Group):
            out += _commands(command, [*prefix, name])
        else:
            out.append(([*prefix, name], command))
    return out


def _option_lines(command: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue  # arguments are in the usage line
        record = param.get_help_record(ctx)
        if record is None or getattr(param, "hidden", False):
            continue
        names, help_text = record
        out += [".TP", f"\\fB{_roff(names)}\\fR", _roff(help_text) or "\\&"]
    return out


def manpage(cli: click.Group) -> str:
    """The whole page for the command group ``cli``, in roff (man(7))."""
    ctx = click.Context(cli, info_name="notmyfault")
    lines = [
        f'.TH NOTMYFAULT 1 "" "notmyfault {__version__}" "User Commands"',
        ".ad l",  # ragged right: long paths and option names need no stretched lines
        ".SH NAME",
        "notmyfault \\- a fault lab for Linux: crash, hang and leak on purpose, then tell the story from the dump",
        ".SH SYNOPSIS",
        ".B notmyfault",
        "[\\fB\\-\\-no\\-pager\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
    ]
    lines.append("\n.PP\n".join(_paragraphs(cli.help or "")))
    lines += [".SH OPTIONS", *_option_lines(cli, ctx), ".SH COMMANDS"]
    for words, command in _commands(cli, []):
        sub = click.Context(command, info_name=" ".join(words), parent=ctx)
        usage = " ".join(command.collect_usage_pieces(sub))
        lines += [".SS " + _roff(f"notmyfault {' '.join(words)}"), f".B notmyfault {_roff(' '.join(words))}",
                  _roff(usage), ".PP"]  # fmt: skip
        lines.append("\n.PP\n".join(_paragraphs(command.help or "")))
        lines += _option_lines(command, sub)
    lines.append(".SH ENVIRONMENT")
    for name, meaning in ENVIRONMENT:
        lines += [".TP", f"\\fB{_roff(name)}\\fR", _roff(meaning)]
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines += [".SH SEE ALSO", "gdb(1), coredumpctl(1), core(5), eu\\-stack(1)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the page (``python -m notmyfault.cli.manpage > man/notmyfault.1``)."""
    from notmyfault.cli.main import cli

    click.echo(manpage(cli), nl=False)


if __name__ == "__main__":
    main()
