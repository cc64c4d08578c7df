"""Unwinders: the stacks of a dump's threads, and the names of what is on them.

- ``frames``: the frame types every unwinder returns and every view shows (native and Python);
- ``elf``: ELF process cores, through drgn (DWARF CFI, symbols, debuginfod), with frame-pointer and
  stack-scan fallbacks;
- ``minidump``: minidumps, walked as minidump-stackwalk walks them, with Breakpad symbols
  (``symfile``: symbol files and symbol servers);
- ``windows``: frame-pointer walks of Windows dumps; ``pe``: x64 unwind data of PE images;
- ``python``: the Python frames of a CPython process (pystack, in a child process: ``pyreader``;
  a large core's reachable part copied for it: ``pycore``);
- ``inlines``: the qualified names of the functions inlined at a pc, from DWARF (C++, Rust);
- ``names``: demangled function names and WinDbg's short module names; ``isa``: capstone per
  architecture.

Internal: scripts use ``notmyfault.open(...)`` (``notmyfault.api``).

May import: dumps, native, base.
"""
