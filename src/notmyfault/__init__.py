"""notmyfault: a fault lab for Linux.

Crash, hang and leak on purpose inside a native module named ``myfault``, make
sure the fault leaves a core dump and say where it is, and (in later stages)
analyse the dump the way WinDbg analysed myfault.sys's crashes.
"""

__version__ = "0.1.0"
