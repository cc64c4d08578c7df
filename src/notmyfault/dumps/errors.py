"""The dump readers' own small exception tree."""


class DumpError(Exception):
    """The file cannot be used as a dump; the message is one line saying why."""


class UnreadableMemory(LookupError):
    """The dump does not hold the memory asked for."""
