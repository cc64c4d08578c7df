"""Stacks: drgn unwinds (CFI, with its frame-pointer fallback); a stack scan recovers frames past a wild pc.

Each frame says how it was found: ``context`` (the registers saved in the
dump), ``unwound`` (by drgn from the frame before it: call frame information,
or frame pointers where there is none; drgn does not say which), ``inline``
(a function inlined at the same pc), or ``scan`` (a word on the stack that
points just after a call in a known function: a guess, as WinDbg's
stack-scan frames are).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from notmyfault.base.files import user_cache_dir
from notmyfault.dumps.buildid import build_id_text, file_build_id, file_usable
from notmyfault.dumps.elfcore import PF_X, ElfCore
from notmyfault.dumps.errors import DumpError, UnreadableMemory
from notmyfault.dumps.linkmap import LoadedImage
from notmyfault.unwind.debugcache import keep_decompressed, memory_copy, offer_cached, offer_in_memory
from notmyfault.unwind.frames import Frame, renumbered
from notmyfault.unwind.isa import disassembler
from notmyfault.unwind.names import is_mangled
from notmyfault.unwind.variables import Callers, frame_variables

SCAN_BYTES = 64 * 1024
SCAN_FRAMES = 16
FP_FRAMES = 1 << 20
"""The most frames our own frame-pointer walk takes (each must climb the stack, so a walk ends long
before on any real stack; one that reaches it says so)."""
WALK_LIMIT = 1_000_000
"""Frames a walk follows at most: far past any real stack (an 8 MiB stack of the smallest x86_64
frames holds 524,288); a walk that reaches it stops and says so (``Walk.stopped``)."""
VARIABLE_FRAMES = 1000
"""Frames whose arguments and locals a walk reads when asked, at most (the views show 1,000; a
35,000-frame recursion is not read 35,000 times)."""
DRGN_TRACE = 1024
"""drgn unwinds at most this many frames (inline ones included) in one stack trace; a deeper stack
is walked on from the registers of a frame near that end (``_traces``)."""


@dataclass(frozen=True)
class OtherBuild:
    """A module whose file on this machine is not the build that ran: its build-id differs from the
    one the dump records, so it was not used (gdb warns and uses it; its symbols would be wrong)."""

    module: str
    """The path the dump records."""
    path: str
    """The file found at that path (or under the sysroot)."""
    build_id: str | None
    """The file's build-id (None: it has none)."""
    dump_build_id: str
    used: bool = False
    """True where it was used all the same, because it was asked for (``--exe``)."""


@dataclass(frozen=True)
class Program:
    """A drgn program over a core, and what could not be loaded."""

    prog: Any
    missing: tuple[str, ...]
    other_builds: tuple[OtherBuild, ...] = ()
    """The missing modules whose file is here, but another build of it."""


def load_program(core: ElfCore, exe: str | None = None, sysroot: str | None = None) -> Program:
    """Open ``core`` with drgn and load what debug information and symbols can be found.

    ``exe`` names the executable when it is not at the path the core records;
    ``sysroot`` is a directory under which the recorded paths of the
    executable and libraries are looked up first.
    """
    # drgn looks up plugins through every installed distribution's entry points when a
    # program is created (0.27 s of a 0.7 s analysis here); a process core needs none.
    # setdefault: a user who asks for plugins still gets them.
    os.environ.setdefault("DRGN_DISABLE_PLUGINS", "*")
    import drgn

    logging.getLogger("drgn").setLevel(logging.CRITICAL)  # it warns on stderr for each missing file
    prog = drgn.Program()
    try:
        prog.set_core_dump(core.path)
    except Exception as e:  # whatever drgn cannot read is unusable input, said in one line
        raise DumpError(f"{core.path}: drgn cannot read this core ({type(e).__name__}: {e})") from None
    if sysroot and not core.has_file_note:
        core.search_first(sysroot)
    with contextlib.suppress(Exception):
        prog.create_loaded_modules()
    if not core.has_file_note:
        _create_modules(prog, core, exe, core.images)
    else:
        _fill_ranges(prog, core)
        _add_unlisted(prog, core, exe)
    if sysroot:
        for module in prog.modules():
            candidate = os.path.join(sysroot, module.name.lstrip("/"))
            if os.path.exists(candidate):
                module.try_file(candidate)
    if exe:
        with contextlib.suppress(LookupError):
            prog.main_module().try_file(exe, force=True)
    offer_cached(prog)  # debug files this user's earlier analyses kept decompressed
    offer_in_memory(prog)  # those inflated while this process started (notmyfault.prefetch)
    asked = _debuginfod(prog)
    missing: list[str] = []
    try:
        # each module's files, found as load_default_debug_info finds them; unlike it, this indexes
        # no DWARF up front: drgn indexes what a lookup needs when it is made (half of a small
        # analysis's loading, most of it libc's debug info that no frame on the stack looks at)
        _load_files(prog)
        missing = [m.name for m in prog.modules() if m.wants_loaded_file() or m.wants_debug_file()]
        if missing and asked:
            _await_other_fetches(prog)
            missing = [m.name for m in prog.modules() if m.wants_loaded_file() or m.wants_debug_file()]
    except Exception as e:  # broken debug info: go on with what loaded, and say so
        missing = [f"(debug info failed to load: {type(e).__name__}: {e})"]
    keep_decompressed(prog)
    others = _other_builds(prog, core) if missing else ()
    if exe:
        others += _asked_build(prog, exe)
    program = Program(prog, tuple(missing), others)
    report_debuginfod(program)
    return program


def _load_files(prog: Any) -> None:
    """Load every module's files, as ``load_default_debug_info`` does but without indexing their
    DWARF: the main executable's file first names more modules (the dynamic loader's link map, which
    a core without NT_FILE, qemu's, is read through), so they are looked for again until no new
    module appears."""
    count = -1
    for _ in range(8):  # in practice two rounds: the executable, then what its link map names
        modules = list(prog.modules())
        if len(modules) == count:
            return
        count = len(modules)
        prog.load_module_debug_info(*modules)
        with contextlib.suppress(Exception):
            prog.create_loaded_modules()


def _asked_build(prog: Any, exe: str) -> tuple[OtherBuild, ...]:
    """The executable given with ``--exe``, if it is not the build that ran (used as asked)."""
    try:
        main = prog.main_module()
    except LookupError:
        return ()
    wanted = getattr(main, "build_id", None)
    if not wanted:
        return ()
    ours = build_id_text(wanted)
    theirs = file_build_id(exe)
    return () if theirs == ours else (OtherBuild(str(main.name), exe, theirs, ours, used=True),)


def _other_builds(prog: Any, core: ElfCore) -> tuple[OtherBuild, ...]:
    """The modules drgn found no file for while a file lies at their path: another build (drgn's
    finders take only a file whose build-id is the dump's)."""
    out = []
    for m in prog.modules():
        wanted = getattr(m, "build_id", None)
        if not m.name or not wanted or not m.wants_loaded_file():
            continue
        path = core.locate(str(m.name))
        if path is None:
            continue
        theirs = file_build_id(path)
        ours = build_id_text(wanted)
        if theirs != ours:
            out.append(OtherBuild(str(m.name), path, theirs, ours))
    return tuple(out)


DEBUGINFOD_ENV = "NOTMYFAULT_DEBUGINFOD"
"""1: fetch missing executables and debug info from DEBUGINFOD_URLS; 0: never; unset: when
DEBUGINFOD_URLS is set (as gdb and drgn do), saying so.  ``--debuginfod/--no-debuginfod`` set it."""
progress: Callable[[str], None] | None = None
"""Where load_program says what it fetches (the front ends set it; None: silent)."""


def debuginfod_cache() -> str:
    """Where libdebuginfod keeps what it fetched (by build-id: each file is fetched once)."""
    if os.environ.get("DEBUGINFOD_CACHE_PATH"):
        return os.environ["DEBUGINFOD_CACHE_PATH"]
    return os.path.join(user_cache_dir(), "debuginfod_client")


def _debuginfod(prog: Any) -> bool:
    """Enable drgn's debuginfod finder as NOTMYFAULT_DEBUGINFOD says; when it will be asked for
    something, say so first (a download can take a while), and what it brought after. True if it
    will be asked."""
    mode = os.environ.get(DEBUGINFOD_ENV)
    urls = os.environ.get("DEBUGINFOD_URLS", "").strip()
    finders = prog.enabled_debug_info_finders()
    if mode == "0" or not urls or "debuginfod" not in finders:
        with contextlib.suppress(Exception):
            prog.set_enabled_debug_info_finders([f for f in finders if f != "debuginfod"])
        return False
    with contextlib.suppress(Exception):  # what is on this machine first: the network only for the rest
        prog.set_enabled_debug_info_finders([f for f in finders if f != "debuginfod"])
        prog.load_default_debug_info()
    wanted = [m for m in prog.modules() if m.wants_loaded_file() or m.wants_debug_file()]
    prog.set_enabled_debug_info_finders(finders)
    if wanted and progress is not None:
        progress(f"debuginfod: asking {urls} for {len(wanted)} modules' files (kept in {debuginfod_cache()})")
    return bool(wanted)


FETCH_WAIT = 30.0
"""How long a module's debug file is awaited while another process fetches it (seconds)."""


def _await_other_fetches(prog: Any) -> None:
    """Load the debug files that another process was fetching into the shared cache while ours was
    asked for them (two triage workers with one build's dumps): libdebuginfod (elfutils 0.188) then
    fails the second request instead of waiting, and the frames would go unnamed in one dump of two.
    A file that is being written there (a temporary ``debuginfo.*`` written to in the last
    ``STALE_FETCH`` seconds) is awaited up to ``FETCH_WAIT`` seconds."""
    import time

    cache = debuginfod_cache()
    deadline = time.monotonic() + FETCH_WAIT
    for m in prog.modules():
        build_id = getattr(m, "build_id", None)
        if not build_id or not m.wants_debug_file():
            continue
        where = os.path.join(cache, build_id_text(build_id))
        final = os.path.join(where, "debuginfo")
        while not os.path.exists(final) and _in_flight(where) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _fetched(final):
            with contextlib.suppress(Exception):
                m.try_file(final)


STALE_FETCH = 10.0
"""A temporary file of libdebuginfod's not written to for this long is a dead process's (seconds)."""


def _in_flight(where: str) -> bool:
    """True if another process is writing a file into the cache directory ``where``."""
    import time

    try:
        names = os.listdir(where)
    except OSError:
        return False
    for name in names:
        if name.startswith("debuginfo."):
            with contextlib.suppress(OSError):
                if time.time() - os.path.getmtime(os.path.join(where, name)) < STALE_FETCH:
                    return True
    return False


def _fetched(path: str) -> bool:
    """True for a file that libdebuginfod finished (its failure marker is an empty file)."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def report_debuginfod(program: Program) -> None:
    """Say which files debuginfod brought (they are in its cache)."""
    if progress is None:
        return
    cache = debuginfod_cache()
    for m in program.prog.modules():
        for path in {m.loaded_file_path, m.debug_file_path}:
            if path and os.path.realpath(path).startswith(os.path.realpath(cache)):
                progress(f"debuginfod: {m.name}: {path}")


def _fill_ranges(prog: Any, core: ElfCore) -> None:
    """Give the modules drgn listed without an address range (it could not place them, as when
    their file is missing) the range and build-id of the ELF header that a mapping of their path's
    first page (NT_FILE) shows in the dump, where that header's segments land where NT_FILE maps the
    file (a copy of the first page mapped again for the data is not the image's place); without
    such a header, and with no file at the path for drgn to place the module by, the range over
    which NT_FILE maps the file."""
    for module in prog.modules():
        if module.address_ranges or not module.name:
            continue
        name = str(module.name)
        heads = (f.start for f in core.files if f.path == name and f.file_offset == 0)
        ranges, build_id = next((found for at in heads if (found := core.image_at(at, name))[0]), ((), None))
        spans = [(start, end) for start, end, _off in ranges]
        if not spans and core.locate(name) is None:
            spans, build_id = core.file_runs(name)[:1], core.copy_build_id(name)
        if not spans:
            continue
        with contextlib.suppress(Exception):  # drgn may refuse a range for a module kind: leave it
            module.address_ranges = spans
            if build_id and not module.build_id:
                module.build_id = build_id


def _unlisted_code(prog: Any, core: ElfCore) -> list[str]:
    """The files NT_FILE maps executable that no module of drgn's covers: drgn lists a library only
    where the core holds its ELF header (a core written with coredump_filter's bit 4 off, or under
    64 KiB pages, may hold none)."""
    known = [module_span(m) for m in prog.modules()]
    named = {str(m.name) for m in prog.modules()}  # drgn places its main module from the file later
    out: list[str] = []
    for f in core.files:
        seg = core.segment_at(f.start)
        if seg is None or not seg.flags & PF_X or f.path in out or f.path in named:
            continue
        if not any(lo is not None and hi is not None and lo <= f.start < hi for lo, hi in known):
            out.append(f.path)
    return out


def _add_unlisted(prog: Any, core: ElfCore, exe: str | None) -> None:
    """Give drgn the libraries of a core with NT_FILE whose headers the core left out: those the
    dynamic loader's link map names (as gdb lists them), then any other file mapped executable, over
    the range NT_FILE maps it (as eu-unstrip and Breakpad take a module from the mappings)."""
    if not _unlisted_code(prog, core):
        return
    _create_modules(prog, core, exe, [img for img in core.linked_images if img.kind == "shared"])
    for path in _unlisted_code(prog, core):
        runs = core.file_runs(path)
        if not runs:
            continue
        heads = (f.start for f in core.files if f.path == path and f.file_offset == 0)
        _ranges, build_id = next((image for at in heads if (image := core.image_at(at, path))[0]), ((), None))
        build_id = build_id or core.copy_build_id(path)
        with contextlib.suppress(Exception):  # a module drgn will not take is left out
            module = prog.extra_module(path, runs[0][0], create=True)
            module.address_ranges = runs[:1]
            if build_id:
                module.build_id = build_id
            found = core.locate(path)
            if found is not None and file_usable(core, path, found):
                module.try_file(found)


def _create_modules(prog: Any, core: ElfCore, exe: str | None, images: Sequence[LoadedImage]) -> None:
    """Give drgn the modules of ``images``, as the core's memory shows them (dumps/linkmap.py): for
    a core without NT_FILE drgn finds little there by itself (the vDSO at most).  An image with a
    dynamic section is made a shared-library module even when it is the executable: drgn then
    takes its load bias from that section's address (it cannot work out a main module's bias in
    such a core); a static one an extra module with a single range, whose bias drgn takes from the
    range's start."""
    known = [module_span(m) for m in prog.modules()]
    for img in images:
        start = img.ranges[0][0] if img.ranges else None
        if start is None or any(lo is not None and hi is not None and lo <= start < hi for lo, hi in known):
            continue  # drgn found this one itself (the vDSO, from the auxiliary vector)
        try:
            if img.kind == "vdso":
                module = prog.vdso_module(img.path, img.dynamic or 0, create=True)
            elif img.dynamic is not None:
                module = prog.shared_library_module(img.path, img.dynamic, create=True)
            else:  # a static executable: one range, so drgn takes the bias from its start
                module = prog.extra_module(img.path, 0, create=True)
            if img.dynamic is None and img.kind != "vdso":
                module.address_ranges = [(img.ranges[0][0], max(end for _s, end, _o in img.ranges))]
            else:
                module.address_ranges = [(start, end) for start, end, _off in img.ranges]
            if img.build_id:
                module.build_id = img.build_id
            found = (
                exe if img.kind == "main" and exe else (core.locate(img.path) if img.kind != "vdso" else None)
            )
            if found is not None and (found == exe or file_usable(core, img.path, found)):
                module.try_file(found, force=found == exe)
        except Exception:  # an image drgn will not take is left out, as a missing file is
            continue


def module_span(module: Any) -> tuple[int | None, int | None]:
    """Lowest start and highest end of a drgn module's address ranges (a module may have several)."""
    ranges = [r for r in (module.address_ranges or ()) if r]
    if not ranges:
        return None, None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _module_of(prog: Any, pc: int) -> tuple[str | None, int | None]:
    try:
        m = prog.module(pc)
    except LookupError:
        return None, None
    return str(m.name), module_span(m)[0]


def _symbol(prog: Any, pc: int, return_address: bool = False) -> tuple[str | None, int | None]:
    """The symbol holding ``pc`` and pc's offset in it.

    A return address is looked up at pc - 1: after a call to a function that
    never returns (abort), the return address is one past the caller's last
    instruction and may be the first byte of the next function.
    """
    if pc <= 0:
        return None, None
    at = pc - 1 if return_address else pc
    cache: dict[int, tuple[str, int] | None] = prog.cache.setdefault(_SYMBOL_CACHE, {})  # drgn's own
    if at in cache:
        hit = cache[at]
    else:
        try:
            sym = prog.symbol(at)
            hit = (sym.name.split("@", 1)[0], sym.address)  # clock_nanosleep@GLIBC_2.2.5 -> clock_nanosleep
        except (LookupError, OverflowError):
            hit = None
        if hit is not None and _MAPPING_SYMBOL.match(hit[0]):
            hit = None  # an ARM/AArch64 mapping symbol marks code or data, it names no function
        if len(cache) < MAX_CACHED_SYMBOLS:
            cache[at] = hit
    return (hit[0], pc - hit[1]) if hit is not None else (None, None)


_MAPPING_SYMBOL = re.compile(r"\$[atdx](\..*)?$")
"""The ELF for the Arm Architecture's mapping symbols ($a, $t, $d; AArch64's $x and $d)."""
_SYMBOL_CACHE = "notmyfault.symbols"
"""The key in a drgn Program's ``cache`` (a dict drgn keeps for its users) of its symbol lookups by address: the threads of a
process share their outer frames (10,000 threads made 300,000 lookups of a few dozen addresses, 21 s)."""
MAX_CACHED_SYMBOLS = 1 << 20


@dataclass(frozen=True)
class Walk:
    """A thread's frames, innermost first, and why the walk stopped short of the stack's end (None
    when it ran to the end: the outermost frame, or a return address no code lies at)."""

    frames: list[Frame]
    stopped: str | None = None


def thread_frames(program: Program, core: ElfCore, tid: int) -> list[Frame]:
    """The frames of thread ``tid``, innermost first; scanned frames follow a wild pc."""
    return thread_walk(program, core, tid).frames


# drgn's register names in the order of the kernel's struct pt_regs (arch/x86/include/uapi/asm/ptrace.h),
# which drgn's stack_trace() takes as a thread's registers: a walk goes on from them past DRGN_TRACE
_PT_REGS = {
    "x86_64": (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
        "rdi", "orig_rax", "rip", "cs", "rflags", "rsp", "ss",
    ),
    "aarch64": (*(f"x{i}" for i in range(31)), "sp", "pc", "pstate"),  # struct user_pt_regs
    "arm": (*(f"r{i}" for i in range(16)), "cpsr", "orig_r0"),  # uregs[18], 32-bit words
    "ppc64le": (
        *(f"r{i}" for i in range(32)), "nip", "msr", "orig_gpr3", "ctr", "lr", "xer", "ccr", "softe",
        "trap", "dar", "dsisr", "result",
    ),
    "s390x": ("args0", "pswm", "pswa", *(f"r{i}" for i in range(16))),  # args[1], psw, gprs[16]
}  # fmt: skip
_PT_REGS["ppc64"] = _PT_REGS["ppc64le"]
_PC = {"x86_64": "rip", "aarch64": "pc", "arm": "r15", "ppc64le": "nip", "ppc64": "nip", "s390x": "pswa"}
_PT_REGS_WORD = {"arm": 4}
"""The size of struct pt_regs' words where it is not 8 bytes."""
_PT_REGS_ORDER = {"s390x": ">", "ppc64": ">"}
"""The byte order of struct pt_regs where it is big-endian."""


def _traces(prog: Any, core: ElfCore, trace: Any) -> Iterator[Any]:
    """drgn's frames of ``trace`` and on over the whole stack, innermost first.

    drgn stops at DRGN_TRACE frames. The walk goes on from the last concrete frame whose return
    address lies in the function that made the call (after a call to a function that never
    returns it lies in the next one, whose unwind rules are not the caller's): its registers are
    given to drgn again (``_trace_from``), and of the new trace the frames that drgn makes again at
    that pc (the concrete one and those inlined there) are skipped. On architectures without
    ``_PT_REGS`` the walk ends at DRGN_TRACE."""
    skip = 0
    while True:
        n = len(trace)
        cut = None
        if n >= DRGN_TRACE and core.arch in _PT_REGS:
            cut = next((k for k in range(n - 1, 0, -1) if _restartable(prog, trace[k])), None)
        for k in range(skip, n if cut is None else cut + 1):
            yield trace[k]
        if cut is None:
            return
        try:
            regs = {str(r): int(v) for r, v in trace[cut].registers().items()}
            regs[_PC[core.arch]] = int(trace[cut].pc)
        except LookupError:
            return
        trace = _trace_from(prog, core, regs)
        if trace is None:
            return
        skip = next((k + 1 for k in range(len(trace)) if not trace[k].is_inline), len(trace))


def _trace_from(prog: Any, core: ElfCore, regs: dict[str, int]) -> Any | None:
    """drgn's stack trace from the registers ``regs`` (drgn's names; those missing are 0), given to
    it as the kernel's struct pt_regs, which its ``stack_trace()`` takes for a thread; None on an
    architecture without ``_PT_REGS`` or where drgn refuses them."""
    import drgn

    names = _PT_REGS.get(core.arch)
    if names is None:
        return None
    size = _PT_REGS_WORD.get(core.arch, 8)
    regs_type = prog.cache.get(_PT_REGS_TYPE)
    if regs_type is None:
        word = prog.int_type("unsigned long", size, False)
        regs_type = prog.struct_type(
            "pt_regs",
            size * len(names),
            [drgn.TypeMember(word, r, 8 * size * i) for i, r in enumerate(names)],
        )
        prog.cache[_PT_REGS_TYPE] = regs_type
    if "ccr" in names and "ccr" not in regs:  # drgn gives powerpc's condition register as cr0-cr7
        regs = {**regs, "ccr": sum((regs.get(f"cr{i}", 0) & 0xF) << (4 * (7 - i)) for i in range(8))}
    fmt = f"{_PT_REGS_ORDER.get(core.arch, '<')}{len(names)}{'I' if size == 4 else 'Q'}"
    values = struct.pack(fmt, *(regs.get(r, 0) & ((1 << (8 * size)) - 1) for r in names))
    try:
        return prog.stack_trace(drgn.Object.from_bytes_(prog, regs_type, values))
    except Exception:  # drgn refuses these registers
        return None


_PT_REGS_TYPE = "notmyfault.pt_regs"
"""The key in a drgn Program's ``cache`` of the struct pt_regs type ``_trace_from`` made."""


def _restartable(prog: Any, frame: Any) -> bool:
    """True for a concrete frame at a return address that the function making the call holds
    (pc - 1 and pc in one symbol): drgn can unwind it again as if it were interrupted there."""
    if frame.is_inline or frame.interrupted:
        return False
    try:
        pc = frame.pc
    except LookupError:
        return False
    before, here = _symbol(prog, pc, return_address=True), _symbol(prog, pc)
    return before[0] is not None and before[0] == here[0] and (before[1] or 0) > 0


def thread_walk(program: Program, core: ElfCore, tid: int, variables: bool = False) -> Walk:
    """The frames of thread ``tid`` over its whole stack, innermost first; scanned frames follow a
    wild pc.

    The walk ends where the unwinders' invariants say the stack ends (as gdb's does): a return
    address of 0, or one where no code lies (``[unmapped] 0x1`` past ``_start`` is no frame); a
    caller whose stack pointer is below its callee's, or a frame identical to the one before it
    (a loop). A signal frame's registers are exempt (a handler may run on another stack). Only
    ``WALK_LIMIT`` stops it short, and says so. With ``variables``, each frame drgn made carries
    its arguments and locals (``unwind.variables``)."""
    prog = program.prog
    frames: list[Frame] = []
    raw: list[str | None] = []  # each frame's ELF symbol as the file has it (mangled or not)
    inlined: list[bool] = []  # whether drgn made each frame from an inline record
    stopped: str | None = None
    physical: tuple[int, int | None] | None = None  # the last concrete frame's pc and sp
    last: Any = None  # the last drgn frame taken
    thumb_mask = ~1 if core.arch == "arm" else -1
    drgn_frames: list[Any] = []  # with ``variables``: drgn's frame of each of ``frames``, in step
    at_pc: dict[tuple[int, bool, bool], tuple[Any, ...]] = {}  # a concrete frame's facts, by its pc
    executable: dict[int, bool] = {}  # whether code may lie at an address, by address

    def take(trace: Iterator[Any], first_how: str | None = None) -> str | None:
        """Append the frames of ``trace`` (the first one's trust ``first_how`` when given: a frame
        whose registers we made, at a return address); why a limit stopped it, if one did."""
        nonlocal physical, last
        for k, f in enumerate(_guarded(trace)):
            i = len(frames)
            if i >= WALK_LIMIT:
                return f"the walk stopped at {WALK_LIMIT:,} frames: the stack goes on past them"
            try:
                pc = f.pc & thumb_mask  # a 32-bit ARM return address's bit 0 says Thumb: not the address
            except LookupError:  # drgn knows no pc for this frame: the trace ends here
                break
            try:
                sp = f.sp
            except LookupError:  # drgn could not recover it for this frame
                sp = None
            made = first_how is not None and k == 0
            drgn_interrupted = bool(f.interrupted)
            # a made frame is a return address unless its registers are a whole context (a signal return)
            interrupted = (drgn_interrupted and not made) or (made and first_how == "context")
            if not f.is_inline:
                if i > 0 and not interrupted and _walk_ends(core, pc, sp, physical, executable):
                    break
                physical = (pc, sp)
            last = f
            # what a concrete frame's pc alone decides is looked up once per pc (a deep recursion
            # repeats a few pcs thousands of times); an inline frame's depends on its depth too
            key = (pc, drgn_interrupted, interrupted)
            hit = None if f.is_inline else at_pc.get(key)
            if hit is None:
                symbol, offset = _symbol(prog, pc, return_address=not interrupted)
                name = symbol
                # the function as the debug info names it (as gdb does), else the ELF symbol; but a
                # mangled (C++, Rust) symbol names the outer function fully, where DWARF's name is bare
                if f.is_inline or not (name and is_mangled(name)):
                    name = f.function_name or name
                file = line = None
                if not f.is_inline and not interrupted and (made or thumb_mask != -1):
                    # drgn looks a return address's line up at pc - 1 only for the frames it unwound
                    # itself, and with ARM's Thumb bit still set: the call's line is at (pc & ~1) - 1
                    file, line = source_line(prog, pc, return_address=True)
                else:
                    try:
                        src = f.source()
                        file, line = src[0], src[1]
                    except LookupError:
                        pass
                module, base = _module_of(prog, pc)
                hit = (symbol, name, offset, file, line, module, base)
                if not f.is_inline:
                    at_pc[key] = hit
            symbol, name, offset, file, line, module, base = hit
            raw.append(symbol)
            inlined.append(bool(f.is_inline))
            # an interrupted frame's registers come from a context: the core's, or a signal frame's;
            # the functions inlined at its pc (drgn marks them interrupted too) are inline frames
            how = "inline" if f.is_inline else ("context" if i == 0 or interrupted else "unwound")
            if made and not f.is_inline:
                how = first_how or how
            if variables and i <= VARIABLE_FRAMES:
                drgn_frames.append(f)  # each frame's arguments and locals are read once the walk is done
            frames.append(Frame(i, pc, sp, module, name, offset, file, line, how, base))
        return None

    try:
        first = prog.thread(tid).stack_trace()
    except Exception:  # drgn cannot unwind this thread
        first = None
    if first is not None:
        stopped = take(_traces(prog, core, first))
        if stopped is None and _guessed_past_lr(core, frames, first):
            # drgn guessed past a wild pc's caller (by a frame record the caller had not yet
            # written): the link register names the caller, as gdb takes it (``_past_wild_pc``)
            del frames[1:], raw[1:], inlined[1:], drgn_frames[1:]
            last, physical = first[0], (frames[0].pc, frames[0].sp)
        if stopped is None and core.arch not in _PT_REGS and len(frames) >= DRGN_TRACE:
            stopped = f"drgn unwinds {DRGN_TRACE} frames at most on {core.arch}: the stack goes on past them"
        resumed = _past_wild_pc(program, core, frames, last) if stopped is None else None
        if resumed is None and stopped is None:
            resumed = _past_leaf(program, core, frames, last)
        if resumed is not None:
            stopped = take(_traces(prog, core, resumed[0]), resumed[1])
        while stopped is None and last is not None:  # take() stops at WALK_LIMIT, and says so
            # where drgn's walk ends, the caller's registers by a rule drgn does not know (ARM's
            # EHABI tables, a signal trampoline's frame, the link register): drgn goes on from them
            resume = _resume_registers(program, core, frames, last)
            trace = _trace_from(prog, core, resume[0]) if resume is not None else None
            if trace is None or resume is None:
                break
            if resume[1] == "context" and frames[-1].function is None:
                frames[-1] = replace(frames[-1], function=SIGNAL_TRAMPOLINE, offset=None)
            before = len(frames)
            stopped = take(_traces(prog, core, trace), resume[1])
            if len(frames) == before:
                break
    if not frames:
        # drgn cannot unwind this core (it refuses i386; x32's registers are too short for it):
        # the registers, then our own frame-pointer walk, else a stack scan
        state = next((t for t in core.threads if t.tid == tid), None)
        if state is None or state.pc is None:
            return Walk([])
        name, offset = _symbol(prog, state.pc)
        module, base = _module_of(prog, state.pc)
        if module is None:
            module, base = _file_module(core, state.pc)
        file, line = source_line(prog, state.pc)
        frames.append(Frame(0, state.pc, state.sp, module, name, offset, file, line, "context", base))
        walked = frame_pointer_frames(program, core, state.fp, start_index=1)
        frames.extend(walked or scan_frames(program, core, state.sp, start_index=1))
        cut = None
        if len(walked) >= FP_FRAMES:
            cut = f"the frame-pointer walk stops at {FP_FRAMES:,} frames: the stack goes on past them"
        return Walk(_mark_code(core, frames), cut)
    if variables:
        frames = _with_variables(prog, core, tid, frames, drgn_frames)
    frames, raw, inlined = _tail_calls(prog, core, frames, raw, inlined)
    frames = _qualified_inlines(prog, frames, raw, inlined)
    frames = _named_trampolines(_without_guesses(core, frames))
    linked = _link_caller(program, core, frames, tid)
    if linked is not None:
        frames = renumbered([frames[0], linked, *frames[1:]])
    elif _at_wild_pc(frames):
        # the walk ended at an interrupted pc in no module (a call through a bad pointer), the core's
        # or a signal frame's, and drgn could not go on from a return address: those on the stack go on
        frames.extend(scan_frames(program, core, frames[-1].sp, start_index=len(frames)))
    caller = leaf_caller(program, core, frames)
    if caller is not None:
        frames = renumbered([frames[0], caller, *frames[1:]])
    return Walk(_mark_code(core, frames), stopped)


def _with_variables(
    prog: Any, core: ElfCore, tid: int, frames: list[Frame], drgn_frames: list[Any]
) -> list[Frame]:
    """``frames`` with the arguments and locals of the first ``VARIABLE_FRAMES`` (``drgn_frames``
    are drgn's frames of them, in step), arguments' entry values from their callers' call sites."""
    from notmyfault.unwind.inlines import chains

    def dwarf(pc: int) -> tuple[Any, int] | None:
        found = _debug_file(prog, pc)
        table = chains(found[0]) if found is not None else None
        return (table, found[1]) if table is not None and found is not None else None

    def read(address: int, size: int) -> bytes | None:
        return code_bytes(core, address, size)

    concrete = [f for f in drgn_frames if not f.is_inline]
    place = {id(f): k for k, f in enumerate(concrete)}
    callers = Callers(core.arch, concrete, dwarf, core.extended_registers(tid), read)
    out = list(frames)
    for i, f in enumerate(drgn_frames[:VARIABLE_FRAMES]):
        arguments, local = frame_variables(prog, f, read, callers, place.get(id(f), 0))
        out[i] = replace(out[i], arguments=arguments, locals=local)
    return out


def _at_wild_pc(frames: list[Frame]) -> bool:
    """True if the last frame is an interrupted pc in no module (the core's or a signal frame's)."""
    return bool(frames) and frames[-1].module is None and frames[-1].how == "context"


def _guessed_past_lr(core: ElfCore, frames: list[Frame], trace: Any) -> bool:
    """True for an arm64 walk whose frame 0 is a pc where no code lies and whose frame 1 is not the
    link register's return address while that one is code: a call through a bad pointer ran nothing,
    so lr is the caller, and drgn's frame 1 is a guess."""
    if (
        core.arch != "aarch64"
        or len(frames) < 2
        or not _at_wild_pc(frames[:1])
        or _executable(core, frames[0].pc)
    ):
        return False
    try:
        lr = int(trace[0].registers()["x30"])
    except (LookupError, KeyError, IndexError):
        return False
    return frames[1].pc != lr and _executable(core, lr) and follows_call(core, lr)


def _past_wild_pc(program: Program, core: ElfCore, frames: list[Frame], last: Any) -> tuple[Any, str] | None:
    """Where drgn stopped at a wild pc (a call through a bad pointer: no module, no unwind rules),
    a trace from its caller and that frame's trust: on x86_64 the word at sp when it follows a call
    (the call pushed it and the target ran nothing), else the nearest named return address above
    sp, with sp just past it; on arm64 the link register. The rest of the stack is then unwound by its CFI, as gdb does,
    instead of scanned."""
    if not _at_wild_pc(frames) or last is None:
        return None
    try:
        regs = {str(r): int(v) for r, v in last.registers().items()}
    except LookupError:
        return None
    if core.arch == "x86_64":
        # the word the call pushed is at sp (the target ran nothing), named or not (a stripped
        # library's hidden function has no symbol); else the nearest named return address above
        ret = leaf_return(core, frames[-1])
        if ret is not None and follows_call(core, ret) and frames[-1].sp is not None:
            regs.update(rip=ret, rsp=frames[-1].sp + 8)
            how = "return address at sp"
        else:
            found = scan_frames(program, core, frames[-1].sp, start_index=0, limit=1)
            if not found or found[0].sp is None:
                return None
            regs.update(rip=found[0].pc, rsp=found[0].sp + 8)
            how = "scan"
    elif core.arch == "aarch64" and "x30" in regs:
        if not _executable(core, regs["x30"]) or not follows_call(core, regs["x30"]):
            return None
        regs["pc"] = regs["x30"]
        how = "return address in lr"
    else:
        return None
    trace = _trace_from(program.prog, core, regs)
    return (trace, how) if trace is not None and len(trace) else None


def _past_leaf(program: Program, core: ElfCore, frames: list[Frame], last: Any) -> tuple[Any, str] | None:
    """Where drgn's walk ended at frame 0 in a module (its unwind rules there gave no caller, as in
    clone3 between the system call and the return), a trace from the return address still at sp
    (``leaf_return``), as gdb's prologue analysis finds the caller."""
    if len(frames) != 1 or last is None or frames[0].module is None:
        return None
    ret = leaf_return(core, frames[0])
    if ret is None or frames[0].sp is None:
        return None
    try:
        regs = {str(r): int(v) for r, v in last.registers().items()}
    except LookupError:
        return None
    regs.update(rip=ret, rsp=frames[0].sp + 8)
    trace = _trace_from(program.prog, core, regs)
    return (trace, "return address at sp") if trace is not None and len(trace) else None


def _resume_registers(
    program: Program, core: ElfCore, frames: list[Frame], last: Any
) -> tuple[dict[str, int], str] | None:
    """The registers (drgn's names) of the caller of the last of ``frames`` (drgn's frame ``last``),
    where drgn's walk ended there, and that caller's trust: on ARM by the EHABI tables
    (``_exidx_caller``); at an s390x signal trampoline from the signal frame it returns through
    (``_s390x_sigreturn``); for a frame 0 where no code lies (a call through a bad pointer ran
    nothing), from the link register the call set."""
    frame = frames[-1]
    if core.arch == "arm":
        return _exidx_caller(program, core, frame, last)
    if (
        core.arch == "s390x"
        and frame.sp is not None
        and (context := _s390x_sigreturn(core, frame.pc, frame.sp))
    ):
        return context, "context"
    register = LINK_REGISTERS.get(core.arch)
    if register is None or len(frames) != 1 or frame.how != "context" or _executable(core, frame.pc):
        return None
    try:
        regs = {str(r): int(v) for r, v in last.registers().items()}
    except LookupError:
        return None
    if register not in regs or core.arch not in _PC:
        return None
    regs[_PC[core.arch]] = regs[register]
    return regs, "return address in lr"


S390_SVC_SIGRETURN, S390_SVC_RT_SIGRETURN = b"\x0a\x77", b"\x0a\xad"
"""The s390x signal trampolines' one instruction: svc 119 and svc 173."""
S390_SIGNAL_FRAMESIZE = 160
"""The callee's save area at the start of an s390x signal frame (arch/s390/kernel/signal.c)."""
S390_RT_MCONTEXT = 336
"""Where an rt_sigframe holds the interrupted registers: 160 bytes, svc_insn, siginfo (128 bytes,
8-aligned: at 168), then the ucontext's flags, link and stack (40 bytes) before uc_mcontext."""


def _s390x_sigreturn(core: ElfCore, pc: int, sp: int) -> dict[str, int] | None:
    """The interrupted registers (drgn's names) of the signal frame at ``sp`` that the trampoline at
    ``pc`` returns through (the kernel's layout, which qemu-user follows): a sigframe's sigcontext
    points at its _sigregs; an rt_sigframe holds them in its ucontext. _sigregs starts with the
    PSW (mask, address) and the 16 general registers."""
    try:
        insn = core.read(pc, 2)
        if insn == S390_SVC_SIGRETURN:
            (regs_at,) = struct.unpack(">Q", core.read(sp + S390_SIGNAL_FRAMESIZE + 8, 8))
        elif insn == S390_SVC_RT_SIGRETURN:
            regs_at = sp + S390_RT_MCONTEXT
        else:
            return None
        values = struct.unpack(">18Q", core.read(regs_at, 18 * 8))
    except (UnreadableMemory, struct.error):
        return None
    regs = {f"r{i}": v for i, v in enumerate(values[2:])}
    regs.update(pswm=values[0], pswa=values[1])
    return regs


def _exidx_caller(
    program: Program, core: ElfCore, frame: Frame, last: Any
) -> tuple[dict[str, int], str] | None:
    """The registers (drgn's names) of the caller of ``frame``, drgn's frame ``last``, by the
    EHABI table of the module holding its pc (looked up at pc - 1 for a return address), and the
    caller frame's trust: "context" where the table restored a whole interrupted context (a signal
    return), else "unwound"; for a frame 0 where no code lies (a call through a bad pointer ran
    nothing), the link register's caller."""
    from notmyfault.unwind import armexidx

    try:
        regs = {str(r): int(v) for r, v in last.registers().items()}
    except LookupError:
        return None
    if frame.sp is None:
        return None
    numbered = {i: regs[f"r{i}"] for i in range(16) if f"r{i}" in regs}
    numbered.update({armexidx.SP: frame.sp, armexidx.PC: frame.pc})
    if frame.index == 0 and frame.how == "context" and not _executable(core, frame.pc):
        if armexidx.LR not in numbered:
            return None
        caller: tuple[dict[int, int], bool] | None = ({**numbered, armexidx.PC: numbered[armexidx.LR]}, False)
    else:
        found = _exidx_table(program.prog, frame.pc)
        if found is None:
            return None
        table, bias = found
        at = frame.pc - bias - (0 if frame.how == "context" else 1)
        ops = table.opcodes(at)

        def read(addr: int) -> int | None:
            try:
                return int(struct.unpack("<I", core.read(addr, 4))[0])
            except UnreadableMemory:
                return None

        if ops is not None:
            caller = armexidx.unwind(ops, numbered, read)
        else:
            # no entry covers it (glibc's abort comes before the index), or the entry says it cannot
            # be unwound (EXIDX_CANTUNWIND: glibc's start_thread): its prologue, as gdb then reads it
            _name, offset = _symbol(program.prog, frame.pc, return_address=frame.how != "context")
            if not offset:
                return None
            code = table.read(frame.pc - offset - bias, offset)
            pushed = armexidx.thumb_prologue(code, frame.pc - offset, frame.pc) if code else None
            if pushed is None:
                return None
            leaf = frame.index == 0 and frame.how == "context"
            regs_after = armexidx.prologue_caller(pushed, numbered, read, leaf)
            caller = (regs_after, False) if regs_after is not None else None
    if caller is None:
        return None
    regs_after, whole = caller
    pc = regs_after[armexidx.PC]
    out = {f"r{i}": v for i, v in regs_after.items()}
    out.update(r15=pc & ~1, cpsr=0x30 if pc & 1 else 0x10)  # user mode; T: Thumb
    return out, "context" if whole else "unwound"


def _exidx_table(prog: Any, pc: int) -> tuple[Any, int] | None:
    """The EHABI table of the module holding ``pc`` and its load bias (read once per file)."""
    from notmyfault.unwind import armexidx

    try:
        m = prog.module(pc)
        path, bias = m.loaded_file_path, m.loaded_file_bias
    except (LookupError, AttributeError):
        return None
    if not path or bias is None:
        return None
    tables: dict[str, Any] = prog.cache.setdefault(_EXIDX_TABLES, {})
    if path not in tables:
        tables[path] = armexidx.read_table(str(path))
    table = tables[path]
    return (table, int(bias)) if table is not None else None


_EXIDX_TABLES = "notmyfault.exidx"
"""The key in a drgn Program's ``cache`` of the EHABI tables read, by file."""


LINK_REGISTERS = {"ppc64le": "lr", "ppc64": "lr", "s390x": "r14", "arm": "lr"}
"""Where a call leaves its return address, on the architectures whose walk drgn cannot resume
(arm64's is resumed by ``_past_wild_pc``)."""


def _link_caller(program: Program, core: ElfCore, frames: list[Frame], tid: int) -> Frame | None:
    """The caller of a frame 0 at a pc where no code lies (a call through a bad pointer ran nothing),
    from the link register the call set, where drgn's walk does not already give it as frame 1."""
    register = LINK_REGISTERS.get(core.arch)
    if register is None or not frames or frames[0].module is not None or _executable(core, frames[0].pc):
        return None
    state = next((t for t in core.threads if t.tid == tid), None)
    ret = state.regs.get(register) if state is not None else None
    if ret is not None and core.arch == "arm":
        ret &= ~1  # the Thumb bit
    if ret is None or not _executable(core, ret) or (len(frames) > 1 and frames[1].pc == ret):
        return None
    name, offset = _symbol(program.prog, ret, return_address=True)
    module, base = _module_of(program.prog, ret)
    return Frame(1, ret, frames[0].sp, module, name, offset, None, None, "return address in lr", base)


def _guarded(frames: Iterator[Any]) -> Iterator[Any]:
    """``frames``, ended quietly where drgn fails to go on (a trace it cannot make is no frame)."""
    try:
        yield from frames
    except Exception:  # drgn's errors past the first trace: the walk ends with what it found
        return


def _walk_ends(
    core: ElfCore,
    pc: int,
    sp: int | None,
    callee: tuple[int, int | None] | None,
    known: dict[int, bool] | None = None,
) -> bool:
    """True where an unwound frame (a return address, not a signal frame's registers) is past the
    stack's end: a return address of 0 or one where no code lies, a stack pointer below the
    callee's, or the callee's own pc and sp again (gdb: "previous frame inner to this frame",
    "previous frame identical to this frame"). ``known`` memoises where code lies, by address."""
    if pc == 0:
        return True
    code = known.get(pc) if known is not None else None
    if code is None:
        code = _executable(core, pc)
        if known is not None:
            known[pc] = code
    if not code:
        return True
    if callee is None or sp is None or callee[1] is None:
        return False
    return sp < callee[1] or (pc, sp) == callee


TAIL_CALL_DEPTH = 16
"""Tail calls are looked for among the innermost frames up to this index (the ones a signature and a
reader look at)."""


def _debug_file(prog: Any, pc: int) -> tuple[str, int] | None:
    """The debug file of the module at ``pc`` and its bias, if drgn found one (a file libdebuginfod
    was still writing under a temporary name is read under its final one; a copy inflated in memory,
    through this process's descriptor of it)."""
    try:
        m = prog.module(pc)
        path, bias = m.debug_file_path, m.debug_file_bias
    except (LookupError, AttributeError):
        return None
    if not path or bias is None:
        return None
    path = str(path)
    if path.startswith("/memfd:"):  # a copy inflated in memory (unwind.debugcache), by its memfd's name
        path = memory_copy(m) or path
    if not os.path.exists(path) and _fetched(os.path.join(os.path.dirname(path), "debuginfo")):
        path = os.path.join(os.path.dirname(path), "debuginfo")
    return path, int(bias)


def _direct_call_target(core: ElfCore, return_address: int) -> int | None:
    """The target of the direct call that ``return_address`` follows (x86-64 ``call rel32``, arm64
    ``bl``); None for an indirect call or another instruction. Cached per core: threads share
    their return addresses."""
    cache: dict[int, int | None] | None = getattr(core, "_call_targets", None)
    if cache is None:
        cache = {}
        core._call_targets = cache  # type: ignore[attr-defined]
    if return_address not in cache:
        if len(cache) >= MAX_CACHED_SYMBOLS:
            return _call_target(core, return_address)
        cache[return_address] = _call_target(core, return_address)
    return cache[return_address]


def _call_target(core: ElfCore, return_address: int) -> int | None:
    if core.arch == "x86_64":
        code = code_bytes(core, return_address - 5, 5)
        if code is None or code[0] != 0xE8:
            return None
        return (return_address + int.from_bytes(code[1:], "little", signed=True)) & (2**64 - 1)
    if core.arch == "aarch64":
        code = code_bytes(core, return_address - 4, 4)
        if code is None:
            return None
        insn = int.from_bytes(code, "little")
        if insn & 0xFC000000 != 0x94000000:
            return None
        imm = insn & 0x03FFFFFF
        return (return_address - 4 + ((imm - (1 << 26) if imm & (1 << 25) else imm) << 2)) & (2**64 - 1)
    return None


def _tail_calls(
    prog: Any, core: ElfCore, frames: list[Frame], raw: list[str | None], inlined: list[bool]
) -> tuple[list[Frame], list[str | None], list[bool]]:
    """The frames with the functions that tail-called their way to a callee put back between it and
    its caller (``how="tail call"``, no pc of their own), where DWARF's call sites say so by one path
    only (``unwind.inlines``, as gdb's tail-call frames): a tail call leaves no return address, so
    ``release`` calling ``free`` as its last act is otherwise no frame at -O2 and one at -O0.

    DWARF is read only where the machine code already says a function went missing: the caller's
    direct call went to a function (a symbol; a PLT stub has none) that is not the callee."""
    from notmyfault.unwind.inlines import chains

    out_f: list[Frame] = []
    out_r: list[str | None] = []
    out_i: list[bool] = []

    def keep(ks: range) -> None:
        for k in ks:
            out_f.append(frames[k])
            out_r.append(raw[k] if k < len(raw) else None)
            out_i.append(inlined[k] if k < len(inlined) else False)

    callee: int | None = None  # the index of the last concrete frame seen
    start = 0  # where the current group (inlined frames, then their concrete frame) begins
    for j, f in enumerate(frames):
        if j >= TAIL_CALL_DEPTH:  # past the frames looked at: the rest is kept as it is
            break
        if j < len(inlined) and inlined[j]:
            continue
        if callee is not None and f.how == "unwound" and f.module is not None:
            names = {n for n in (frames[callee].function, raw[callee] if callee < len(raw) else None) if n}
            target = _direct_call_target(core, f.pc)
            called = _symbol(prog, target)[0] if target is not None else None
            offset = frames[callee].offset
            entry = frames[callee].pc - offset if offset is not None else None
            missing = called is not None and called not in names and target != entry
            debug = _debug_file(prog, f.pc) if missing else None
            table = chains(debug[0]) if debug is not None else None
            path = table.tail_calls(f.pc - debug[1], names) if table is not None and debug else None
            for name in path or []:
                out_f.append(replace(f, function=name, offset=None, file=None, line=None, how="tail call"))
                out_r.append(None)
                out_i.append(False)
        keep(range(start, j + 1))
        callee, start = j, j + 1
    keep(range(start, len(frames)))
    return renumbered(out_f), out_r, out_i


_RUST_SYMBOL = re.compile(r"^(_ZN.*17h[0-9a-f]{16}E|_R)")


def _written_in_c(prog: Any) -> bool:
    """Whether the program's main function is C's (drgn's ``Program.language``, from its DWARF): a
    C++ program's own functions may have no mangled symbol at all (all of them inlined into main)."""
    if _WRITTEN_IN_C not in prog.cache:  # drgn's per-program dict: asked once per thread otherwise
        try:
            prog.cache[_WRITTEN_IN_C] = str(prog.language.name) == "C"
        except Exception:
            prog.cache[_WRITTEN_IN_C] = False
    return bool(prog.cache[_WRITTEN_IN_C])


_WRITTEN_IN_C = "notmyfault.written_in_c"


def _qualified_inlines(
    prog: Any, frames: list[Frame], raw: list[str | None], inlined: list[bool]
) -> list[Frame]:
    """Each frame's inlined functions with their qualified names (``unwind.inlines``): drgn names an
    inlined C++ frame by its bare DWARF name (``at``) and shows none in Rust's units. A frame (with
    the inlined ones drgn put before it, all at one pc) is re-read from DWARF when drgn gave an
    inlined frame an unqualified name or its symbol is Rust's; otherwise it is left alone. A C program's
    module whose symbols are all C's (``names_namespaces``) is not re-read: C has no namespaces."""
    from notmyfault.unwind.inlines import chains, names_namespaces

    # nothing to re-read: a 30,000-frame recursion is not looked at 30,000 times
    if not any(inlined) and not any(_RUST_SYMBOL.match(s) for s in set(raw) if s):
        return renumbered(frames)
    out: list[Frame] = []
    group: list[Frame] = []
    for i, f in enumerate(frames):
        group.append(f)
        if i < len(inlined) and inlined[i]:
            continue
        symbol = raw[i] if i < len(raw) else None
        bare = any(
            g.function and "::" not in re.split(r"[<(]", g.function, maxsplit=1)[0] for g in group[:-1]
        )
        names = None
        rust = bool(symbol and _RUST_SYMBOL.match(symbol))
        if f.module is not None and (bare or rust):
            debug = _debug_file(prog, f.pc)
            if debug is not None and not rust and _written_in_c(prog) and not names_namespaces(debug[0]):
                debug = None  # C's inlined functions: drgn's names are the names
            if debug is not None:
                path, bias = debug
                table = chains(path)
                lookup = f.pc if f.how == "context" else f.pc - 1  # frame 0 and signal frames: no call
                names = table.at(lookup - bias) if table is not None else None
        same = names is not None and len(names) == len(group)  # drgn's frames, renamed
        found = names is not None and len(group) == 1 and len(names) > 1  # inlined frames drgn missed
        if names and (same or found):
            for k, name in enumerate(names):
                base = group[k] if same else f
                how = base.how if same else (f.how if k == len(names) - 1 else "inline")
                keep_line = same or k == 0
                out.append(
                    replace(
                        base,
                        function=name,
                        how=how,
                        file=base.file if keep_line else None,
                        line=base.line if keep_line else None,
                    )
                )
        else:
            out.extend(group)
        group = []
    out.extend(group)
    return renumbered(out)


def signal_context(program: Program, tid: int) -> tuple[int, int | None, dict[str, int]] | None:
    """The innermost frame past frame 0 that a signal interrupted (its registers restored from the
    signal frame the kernel pushed): its pc, sp and registers; None if the stack holds none."""
    try:
        trace = program.prog.thread(tid).stack_trace()
    except Exception:
        return None
    for i, f in enumerate(trace):
        if i == 0 or not f.interrupted or f.is_inline:
            continue
        try:
            regs = {str(k): int(v) for k, v in f.registers().items()}
            sp: int | None = f.sp
        except LookupError:
            regs, sp = {}, None
        return f.pc, sp, regs
    return None


SIGNAL_TRAMPOLINE = "<signal handler called>"
"""The name of a signal trampoline's frame that has no symbol (glibc's ``__restore_rt`` is a local
symbol that Debian's libc.so and static links drop), as gdb names it."""


def _named_trampolines(frames: list[Frame]) -> list[Frame]:
    """Each frame without a name right above a frame that a signal interrupted (its registers from a
    signal frame) is the signal trampoline the handler returns to: named ``SIGNAL_TRAMPOLINE``."""
    out = list(frames)
    below: Frame | None = None  # the next frame outward that is not an inline one
    for i in range(len(frames) - 1, -1, -1):
        f = frames[i]
        if not f.function and f.module is not None and below is not None and below.how == "context":
            out[i] = replace(f, function=SIGNAL_TRAMPOLINE, offset=None)
        if f.how != "inline":
            below = f
    return out


def _without_guesses(core: ElfCore, frames: list[Frame]) -> list[Frame]:
    """The frames up to the first that was unwound from a frame in no module (no CFI there: drgn
    guessed) onto a pc where no code lies (unmapped or not executable): such a frame, and all after
    it, are no frames."""
    for i in range(1, len(frames)):
        guessed = frames[i - 1].module is None and frames[i].how == "unwound" and frames[i].module is None
        if guessed and code_kind(core, frames[i].pc) in ("unmapped", "non-executable"):
            return frames[:i]
    return frames


def _mark_code(core: ElfCore, frames: list[Frame]) -> list[Frame]:
    """Every frame outside the modules says what lies at its pc (drgn's walk and our own alike)."""
    return [replace(f, code=code_kind(core, f.pc)) if f.module is None else f for f in frames]


def code_kind(core: ElfCore, pc: int) -> str:
    """What lies at a pc outside every module: JIT code (anonymous executable memory), data, or nothing."""
    seg = core.segment_at(pc)
    if seg is None:
        return "unmapped"
    if not seg.flags & PF_X:
        return "non-executable"
    return "jit" if core.file_at(pc) is None else "unknown"


LEAF_PROLOGUE = 64
"""How far into a function frame 0 may be for :func:`leaf_caller` to read its code from the start."""


def leaf_caller(program: Program, core: ElfCore, frames: list[Frame]) -> Frame | None:
    """The caller that a frame-pointer unwind skips when frame 0 has not set up a frame (x86_64).

    Without unwind tables drgn follows rbp, but a leaf function that pushes no
    frame (or one stopped at its first instruction) leaves rbp pointing at its
    caller's frame, so the caller is skipped.  As gdb's prologue analysis does:
    when no instruction from the function's start to the pc moves rsp, the
    return address is still the word at rsp; if that is not frame 1, it is
    the missing caller.  Frames found this way are marked ``return address at
    sp``.
    """
    if core.arch != "x86_64" or len(frames) < 2 or frames[1].how not in ("unwound", "frame pointer"):
        return None
    top = frames[0]
    ret = leaf_return(core, top)
    if ret is None or ret == frames[1].pc or top.sp is None:
        return None
    name, offset = _symbol(program.prog, ret, return_address=True)
    module, base = _module_of(program.prog, ret)
    if module is None:
        module, base = _file_module(core, ret)
    return Frame(1, ret, top.sp + 8, module, name, offset, None, None, "return address at sp", base)


def leaf_return(core: ElfCore, top: Frame) -> int | None:
    """The return address still at sp when frame 0 (x86_64) has moved no stack pointer: a pc where
    no code lies ran no instruction at all (a call through a wild pointer), and a function stopped
    within LEAF_PROLOGUE bytes of its start whose code up to the pc moves no rsp (a leaf, or a
    system call's wrapper) has pushed nothing; None otherwise, or if that word is no code."""
    if core.arch != "x86_64" or top.sp is None:
        return None
    nowhere = top.module is None and not _executable(core, top.pc)
    if not nowhere and (top.offset is None or top.offset > LEAF_PROLOGUE):
        return None
    try:
        (ret,) = struct.unpack("<Q", core.read(top.sp, 8))
    except UnreadableMemory:
        return None
    if not _executable(core, ret):
        return None
    if not nowhere and (top.offset is None or _moves_sp(core, top.pc - top.offset, top.offset)):
        return None
    return int(ret)


def _moves_sp(core: ElfCore, start: int, size: int) -> bool:
    """True if the x86_64 code in [start, start + size) may move rsp (or cannot be read to tell)."""
    if size == 0:
        return False
    code = code_bytes(core, start, size)
    if code is None or len(code) < size:
        return True
    md = disassembler("x86_64")
    assert md is not None
    seen = 0
    for insn in md.disasm(code, start):
        seen += insn.size
        if (
            insn.mnemonic in ("push", "pop", "call", "enter", "leave", "pushfq", "popfq")
            or "rsp" in insn.op_str
        ):
            return True
    return seen != size  # undecodable bytes: cannot tell


def _file_module(core: ElfCore, pc: int) -> tuple[str | None, int | None]:
    """The mapped file holding ``pc`` and its load address, from NT_FILE (when drgn knows no module)."""
    f = core.file_at(pc)
    if f is None:
        return None, None
    return f.path, core.file_base(f.path)


def source_line(prog: Any, pc: int, return_address: bool = False) -> tuple[str | None, int | None]:
    """The source file and line of ``pc`` (of the call before it, for a return address, as gdb
    looks it up) from the module's DWARF line table, where drgn has it: the walks drgn does not do
    (i386, x32) name their lines this way."""
    try:
        found = prog.source_location(pc - 1 if return_address else pc)
    except (LookupError, ValueError, OverflowError):
        return None, None
    if not len(found):
        return None, None
    where = found[0]
    return (str(where.filename), int(where.line)) if where.filename and where.line else (None, None)


def frame_pointer_frames(program: Program, core: ElfCore, fp: int | None, start_index: int) -> list[Frame]:
    """Frames found by following saved frame pointers: [fp] is the caller's fp, [fp + word] the return address."""
    word = core.stack_word
    fmt = "<I" if word == 4 else "<Q"
    out: list[Frame] = []
    while fp and len(out) < FP_FRAMES:
        try:
            saved, ret = struct.unpack(fmt[0] + fmt[1] * 2, core.read(fp, 2 * word))
        except UnreadableMemory:
            break
        if not ret or not _executable(core, ret):
            break
        name, offset = _symbol(program.prog, ret, return_address=True)
        module, base = _module_of(program.prog, ret)
        if module is None:
            module, base = _file_module(core, ret)
        file, line = source_line(program.prog, ret, return_address=True)
        out.append(
            Frame(
                start_index + len(out),
                ret,
                fp + 2 * word,
                module,
                name,
                offset,
                file,
                line,
                "frame pointer",
                base,
            )
        )
        if saved <= fp:  # the chain must climb the stack
            break
        fp = saved
    return out


def _executable(core: ElfCore, addr: int) -> bool:
    """True if code may lie at ``addr``: an executable segment holds it, or, where the writer listed no
    segment there (gdb's gcore leaves out the read-only mappings of files, their code included), a
    mapped file does (the kernel lists every mapping, so for its cores the segment decides)."""
    seg = core.segment_at(addr)
    if seg is not None:
        return bool(seg.flags & PF_X)
    return core.file_at(addr) is not None


def scan_frames(
    program: Program, core: ElfCore, sp: int | None, start_index: int, limit: int = SCAN_FRAMES
) -> list[Frame]:
    """Frames found by scanning the stack upward from ``sp`` for return addresses.

    A word counts when it points into an executable mapping, inside a known
    function but not at its first byte, just after a call instruction (a return
    address lands after a call: ``follows_call``).
    """
    if sp is None:
        return []
    prog = program.prog
    seg = core.segment_at(sp)
    if seg is None:
        return []
    size = min(SCAN_BYTES, seg.end - sp)
    step = core.stack_word
    size -= size % step
    try:
        data = core.read(sp, size)
    except UnreadableMemory:
        return []
    out: list[Frame] = []
    for i, (word,) in enumerate(struct.iter_unpack("<I" if step == 4 else "<Q", data)):
        if not _executable(core, word):
            continue
        name, offset = _symbol(prog, word, return_address=True)
        if name is None or not offset or not follows_call(core, word):
            continue
        module, base = _module_of(prog, word)
        out.append(
            Frame(start_index + len(out), word, sp + step * i, module, name, offset, None, None, "scan", base)
        )
        if len(out) >= limit:
            break
    return out


_CALL_LENGTHS = {"x86_64": (5, 2, 3, 6, 7, 4, 8, 9), "i386": (5, 2, 3, 6, 7, 4), "x32": (5, 2, 3, 6, 7, 4)}
"""x86 call instructions' lengths, the likeliest first: call rel32, call through a register, through
memory with a displacement or SIB byte, with a REX prefix."""


def follows_call(core: ElfCore, address: int) -> bool:
    """True if the instruction just before ``address`` is a call, so that ``address`` can be a
    return address (x86: one of the call forms ends there; arm64: BL or BLR). Other
    architectures, and code that cannot be read, are not checked (True)."""
    if core.arch == "aarch64":
        code = code_bytes(core, address - 4, 4)
        if code is None or len(code) < 4:
            return True
        insn = int.from_bytes(code, "little")
        return insn & 0xFC000000 == 0x94000000 or insn & 0xFFFFFC1F == 0xD63F0000
    lengths = _CALL_LENGTHS.get(core.arch)
    if lengths is None:
        return True
    code = code_bytes(core, address - max(lengths), max(lengths))
    if code is None or len(code) < max(lengths):
        return True
    md = disassembler(core.arch)
    if md is None:
        return True
    for n in lengths:
        insns = md.disasm(code[-n:], address - n, 1)
        if insns and insns[0].size == n and insns[0].mnemonic.startswith("call"):
            return True
    return False


def code_bytes(core: ElfCore, pc: int, size: int = 16, sysroot: str | None = None) -> bytes | None:
    """Machine code at ``pc``: from the dump, else from the mapped file on disk (code is rarely dumped)."""
    try:
        return core.read(pc, size)
    except UnreadableMemory:
        pass
    mapping = core.file_at(pc)
    if mapping is None:
        return None
    path = mapping.path
    if sysroot and os.path.exists(os.path.join(sysroot, path.lstrip("/"))):
        path = os.path.join(sysroot, path.lstrip("/"))
    elif not core.has_file_note:  # paths read from memory may be relative: beside the core, then here
        path = core.locate(path) or path
    if not file_usable(core, mapping.path, path):
        return None  # the file on disk is another build than the one that was running
    try:
        with open(path, "rb") as f:
            f.seek(mapping.file_offset + (pc - mapping.start))
            data = f.read(size)
    except OSError:
        return None
    return data or None
