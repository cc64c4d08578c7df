"""Type stub for the native module myfault (src/notmyfault/myfault.c)."""

def do_bug(name: str, arg: int = 0, /) -> bool:
    """Commit the fault called ``name``; returns True only if the process survived it."""

def faults() -> tuple[str, ...]:
    """The names of the faults this module can commit, in table order."""

def wild_pc() -> int:
    """The address stack-trash writes over its return address."""
