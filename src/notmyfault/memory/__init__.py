"""Views of a process dump's memory, the seed's ``!vm``, ``!poolused``, ``s -a``, ``u`` and ``lmvm``.

- ``vm``: memory by kind, the biggest mappings and the warnings; ``pool``: tagged leak blocks by tag;
  ``heap``: glibc's main heap;
- ``search``: a string or bytes in the dump and in the mapped files it left out;
- ``disasm``: disassembly at an address or a symbol;
- ``modules``: the module list with build-ids and whether the file on disk matches.

Internal: scripts use ``notmyfault.api``.

May import: analysis, unwind, dumps, base.
"""
