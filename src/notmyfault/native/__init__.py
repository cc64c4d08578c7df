"""The native code that commits the faults, and nothing else.

- ``user/``: the C sources of the user-mode module ``myfault`` (the analog of myfault.sys), which
  setup.py builds as ``notmyfault.native.myfault``; ``myfault.pyi`` is its type stub;
- ``kernel/``: the sources of the kernel module ``myfault.ko`` and its guest tool ``myfaultctl``,
  which ``notmyfault.faults.kernel`` builds with kbuild at run time (GPL-2.0-only).

Only the injector (``faults``) loads the module.

May import: nothing.
"""
