"""Kernel dumps: the story of a Linux kernel vmcore and of a Windows kernel crash dump.

- ``vmcore``: a Linux vmcore's oops page, task stacks and trap frame (drgn, or the printk buffer
  without vmlinux); ``kmem``: its slab caches, vmalloc, counters, modules and search;
- ``windows``: a Windows kernel dump's ``!analyze`` (``bugcheck``: the bug check codes as data);
  ``winvm``: its ``!vm``.

The kernel module that crashes a kernel on purpose is the injector's (``faults.kernel``); its C
sources are in ``native/kernel``. Internal: scripts use ``notmyfault.api``.

May import: memory, analysis, unwind, dumps, base.
"""
