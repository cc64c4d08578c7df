"""The crash story of a process dump: what happened, and who did it.

- ``crash``: the ``!analyze -v`` of an ELF process core (class, arguments, faulting instruction,
  stacks, blame); ``minidump``: the same for minidumps;
- ``classes``: the crash classes; ``wincodes``: Windows exception codes;
- ``blame``: "Probably caused by", with its skip list as data; ``deadlock``: lock cycles;
- ``signature``: the bucket signature and its rules (data), shared by ``analyze`` and triage.

Pure functions from a dump reader to typed, frozen results. Never imports the injector (faults):
the two meet only in tests, the demo and the front ends. Internal: scripts use ``notmyfault.api``.

May import: unwind, dumps, base.
"""
