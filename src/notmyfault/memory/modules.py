"""``lm`` / ``lmvm``: the modules of a process core, with build-ids and the files that match them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from notmyfault.dumps.buildid import dumped_package, file_package
from notmyfault.dumps.elfcore import ElfCore
from notmyfault.unwind.elf import Program, module_span
from notmyfault.unwind.names import module_matches, short_name

_VERSION = re.compile(r"\.so\.(\d+(?:\.\d+)*)$")


@dataclass(frozen=True)
class ModuleInfo:
    """One loaded module."""

    path: str
    """The path the core records."""
    name: str
    """Short name (myfault, libc)."""
    start: int | None
    end: int | None
    build_id: str | None
    file: str | None
    """The file on disk whose build-id matches the dump's, if found."""
    file_matches: bool | None
    """True: a matching file was found; False: a file is at the recorded path but its build-id differs; None: no file."""
    debug_info: bool
    soname: str | None
    version: str | None
    """From the module's package note, else from the file name (libz.so.1.2.13 -> 1.2.13)."""
    version_source: str | None
    """Where the version comes from: "package note in the dump", "package note in the file", "file name"."""
    package: dict[str, str] | None
    """The package note (https://systemd.io/ELF_PACKAGE_METADATA/): type, name, version, ..."""
    file_size: int | None
    file_mtime: float | None


def _soname(path: str) -> str | None:
    try:
        from elftools.elf.dynamic import DynamicSection
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            for sec in ELFFile(f).iter_sections():
                if isinstance(sec, DynamicSection):
                    for tag in sec.iter_tags():
                        if tag.entry.d_tag == "DT_SONAME":
                            return str(tag.soname)  # type: ignore[attr-defined]
    except Exception:
        return None
    return None


def _package(core: ElfCore | None, path: str, real: str | None) -> tuple[dict[str, str] | None, str | None]:
    """The module's package note: from its ELF header page in the dump, else from the matching file."""
    found = dumped_package(core, path) if core is not None else None
    if found:
        return found, "package note in the dump"
    found = file_package(real) if real else None
    return (found, "package note in the file") if found else (None, None)


def modules(program: Program, core: ElfCore | None = None) -> list[ModuleInfo]:
    """Every module drgn found in the core, by load address; with ``core``, package notes are read from it."""
    out = []
    for m in program.prog.modules():
        start, end = module_span(m)
        if start is None and m.name in ("", "?") and core is not None and core.images:
            continue  # drgn's empty stand-in for a main module it could not find; ours are listed
        loaded = m.loaded_file_path
        real = os.path.realpath(loaded) if loaded and os.path.exists(loaded) else None
        matches: bool | None = True if loaded and real else (False if os.path.exists(m.name) else None)
        st = os.stat(real) if real else None
        package, source = _package(core, m.name, real)
        version = package.get("version") if package else None
        if version is None:
            source = None
            for candidate in (real or "", m.name):
                found = _VERSION.search(os.path.basename(candidate))
                if found:
                    version, source = found.group(1), "file name"
                    if "." in version:
                        break
        out.append(
            ModuleInfo(
                path=m.name,
                name=short_name(m.name),
                start=start,
                end=end,
                build_id=m.build_id.hex() if m.build_id else None,
                file=real,
                file_matches=matches,
                debug_info=m.debug_file_path is not None,
                soname=_soname(real) if real else None,
                version=version,
                version_source=source,
                package=package,
                file_size=st.st_size if st else None,
                file_mtime=st.st_mtime if st else None,
            )
        )
    return sorted(out, key=lambda i: (i.start is None, i.start or 0))


def select_modules(mods: list[ModuleInfo], name: str) -> list[ModuleInfo]:
    """The modules called ``name`` (short name, file name or path)."""
    return [m for m in mods if module_matches(m.path, name)]
