"""The native code: the module that commits the faults, and one helper of the analyzer.

- ``user/``: the C sources of the user-mode module ``myfault`` (the analog of myfault.sys), which
  setup.py builds as ``notmyfault.native.myfault``; ``myfault.pyi`` is its type stub; and of
  ``notmyfault.native.scan`` (``scan.pyi``), the pointer scan of ``unwind.pycore``, which commits no
  fault and is never blamed;
- ``kernel/``: the sources of the kernel module ``myfault.ko`` and its guest tool ``myfaultctl``,
  which ``notmyfault.faults.kernel`` builds with kbuild at run time (GPL-2.0-only).

Only the injector (``faults``) loads myfault; only ``unwind.pycore`` loads scan.

May import: nothing.
"""
