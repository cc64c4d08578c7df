"""``notmyfault.open``: one object per dump, whatever its kind, with every view of the seed's session.

A :class:`Dump` wraps the reader that :func:`notmyfault.dumps.open_dump` picked (an ELF process core,
a Linux kernel vmcore, a minidump or a Windows kernel dump) and answers each question the way that
kind of dump allows: the analysis (``!analyze -v``), stacks (``kvL``), registers (``.trap``), memory
(``!vm``), pools (``!poolused``), modules (``lm``), search (``s -a``) and disassembly (``u``).

A question that a dump cannot answer raises :class:`DumpError` with one line that says why, which
the command-line front end prints as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from notmyfault.analysis.decode import decode_bytes
from notmyfault.analysis.result import CrashAnalysis, Instruction
from notmyfault.analysis.signature import (
    DEFAULT_RULES,
    Rules,
    TraceStep,
    bucket_key,
    signature,
    signature_trace,
)
from notmyfault.dumps import (
    KERNEL_DUMP_COMMANDS,
    MINIDUMP_COMMANDS,
    DumpError,
    ElfCore,
    UnreadableMemory,
    is_minidump,
    is_vmcore_reader,
    is_windows_kernel_dump,
    open_dump,
)
from notmyfault.dumps.elfcore import is_vmcore
from notmyfault.unwind.frames import Frame
from notmyfault.unwind.python import PythonStacks, PythonThread, merge

if TYPE_CHECKING:
    from notmyfault.dumps import AnyDump, Minidump, Vmcore, WindowsKernelDump
    from notmyfault.memory.search import Hit
    from notmyfault.unwind.symfile import SymbolStore

Kind = Literal["elf-core", "vmcore", "minidump", "windows-kernel-dump"]
"""What a dump is."""

Side = Literal["both", "native", "python"]
"""Which frames a stack of a CPython process holds."""


@dataclass(frozen=True)
class ThreadStack:
    """One thread's stack, innermost frame first."""

    tid: int
    frames: tuple[Frame, ...]
    """With the Python frames of a CPython process merged in (``Frame.python``) where they were read."""
    python: PythonThread | None = None
    """The thread's Python stack, when the dump is of a CPython process and it runs Python."""
    stopped: str | None = None
    """Why the walk stopped short of the stack's end (a limit), if it did."""


@dataclass(frozen=True)
class Stacks:
    """The stacks asked for, and why a CPython process's Python frames could not be read."""

    threads: tuple[ThreadStack, ...]
    python_error: str | None = None


@dataclass(frozen=True)
class Registers:
    """A thread's registers (``thread.regs``), the instruction at its program counter and where it lies."""

    thread: Any
    """The dump's thread (or a vmcore's trap frame): ``regs``, ``pc`` and ``tid``."""
    instruction: Instruction | None
    where: str | None
    extended: dict[str, int] = field(default_factory=dict)
    """The floating-point and vector registers, where the dump keeps them (ELF cores of x86_64:
    x87, SSE, AVX; of aarch64: v0-v31, fpsr, fpcr): ``dumps.fpregs``."""


@dataclass(frozen=True)
class Pools:
    """``!poolused``: tagged blocks by tag and glibc's heap (``kind`` "process"), or a kernel's slab
    caches and vmalloc areas by caller (``kind`` "kernel")."""

    kind: Literal["process", "kernel"]
    usage: list[Any] = field(default_factory=list)
    heap: Any = None
    slabs: list[Any] = field(default_factory=list)
    vmallocs: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Modules:
    """``lm``: the modules of a process core (``kind`` "process"), a minidump ("minidump"), a Windows
    kernel dump's drivers ("drivers", with ``versions`` by base address) or a vmcore's ("kernel")."""

    kind: Literal["process", "minidump", "drivers", "kernel"]
    modules: list[Any]
    versions: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Memory:
    """``!vm``: a process core's memory by kind ("process"), or a kernel's counters ("windows", "linux")."""

    kind: Literal["process", "windows", "linux"]
    summary: Any


@dataclass(frozen=True)
class Disassembly:
    """``u``: instructions, and the ``module!function+0xoff`` of the addresses that have one."""

    instructions: list[Instruction]
    where: dict[int, str]


@dataclass(frozen=True)
class Provenance:
    """What a dump says of the build that crashed: the program's version, its build-id (a minidump's
    first module's code id, a Windows kernel dump's first driver's), the build-ids of modules by short
    name, and when it crashed where the dump records it."""

    version: str | None
    build_id: str | None
    build_ids: dict[str, str]
    crash_time: datetime | None = None


def limit_unpacked(size: int) -> None:
    """Refuse packed dumps (.zst, .gz, apport reports ...) that unpack to more than ``size`` bytes
    (default 32 GiB), in this process and the processes it starts (triage workers): the environment
    variable NOTMYFAULT_MAX_UNPACKED carries it. An ELF core is also refused past the size its own
    headers give, whatever this limit."""
    from notmyfault.dumps.unpack import MAX_UNPACKED_ENV

    if size < 1:
        raise ValueError("limit_unpacked: give at least 1 byte")
    os.environ[MAX_UNPACKED_ENV] = str(size)


def debuginfod(*, enabled: bool | None = None, progress: Callable[[str], None] | None = None) -> None:
    """Whether ELF cores' missing executables and debug info are fetched by build-id from the servers
    in $DEBUGINFOD_URLS (``enabled``; by default, when that is set), and who hears what is fetched."""
    from notmyfault.unwind import elf

    if progress is not None:
        elf.progress = progress
    if enabled is not None:
        os.environ[elf.DEBUGINFOD_ENV] = "1" if enabled else "0"


def open(
    path: str | os.PathLike[str],
    *,
    exe: str | None = None,
    sysroot: str | None = None,
    symbols: str | None = None,
    symbol_urls: Sequence[str] = (),
    symbol_cache: str | None = None,
    debug_files: Sequence[str] = (),
    say: Callable[[str], None] | None = None,
) -> Dump:
    """Open any dump: an ELF process core, a Linux kernel vmcore, a minidump or a Windows kernel dump,
    compressed (zstd, lz4, xz, gzip) or in an apport report, by its magic.

    ``exe`` and ``sysroot`` find an ELF core's executable and libraries where the core's paths do not;
    ``symbols`` (a directory of Breakpad symbol files), ``symbol_urls`` (symbol servers, fetched into
    ``symbol_cache``) serve minidumps; ``debug_files`` (vmlinux, ``.ko``) serve vmcores; ``say`` hears
    what is fetched. Raises :class:`DumpError` with one line for anything that is no dump it reads.
    """
    reader = open_dump(path)
    if is_vmcore_reader(reader):
        reader.extra_paths = list(debug_files)
    source: str | SymbolStore | None = symbols
    if symbol_urls:
        from notmyfault.unwind.symfile import SymbolStore

        source = SymbolStore([symbols] if symbols else [], list(symbol_urls), symbol_cache, say=say)
    return Dump(reader, os.fspath(path), exe=exe, sysroot=sysroot, symbols=source)


def open_core(path: str | os.PathLike[str], *, exe: str | None = None, sysroot: str | None = None) -> Dump:
    """Open an ELF process core only (compressed or not): any other dump is refused with one line that
    says which commands read it."""
    return Dump(open_dump(path, ElfCore), os.fspath(path), exe=exe, sysroot=sysroot)


def prefetch(path: str | os.PathLike[str]) -> bool:
    """``Dump.prefetch`` from a path alone, for a front end to call before its own start-up: True if
    the file there is an ELF process core (whose debug files are then being inflated). Anything else
    (another dump, no file) starts nothing and says nothing: the command that opens it says what is
    wrong."""
    try:
        core = ElfCore(path)  # refuses, from its header, whatever is no ELF core
    except DumpError:
        return False
    try:
        if is_vmcore(core):
            return False
        _prefetch(core)
    finally:
        core.close()
    return True


def _prefetch(core: ElfCore) -> None:
    """Start inflating the compressed debug files of ``core``'s modules (found by the build-ids that
    the dump's copies of their ELF headers name)."""
    from notmyfault.unwind.debugcache import inflate_ahead

    try:
        found = [core.copy_build_id(path) for path in dict.fromkeys(f.path for f in core.files)]
    except Exception:  # only time is at stake: the analysis says itself what the core lacks
        return
    inflate_ahead(b.hex() for b in found if b)


class Dump:
    """One opened dump. Close it (or use it as a context manager) to release the file."""

    def __init__(
        self,
        reader: AnyDump,
        path: str,
        *,
        exe: str | None = None,
        sysroot: str | None = None,
        symbols: str | SymbolStore | None = None,
    ) -> None:
        self.reader = reader
        """The format's reader (internal: its interface may change)."""
        self.path = path
        self.exe = exe
        self.sysroot = sysroot
        self.symbols = symbols
        self._program: Any = None
        self._analysis: dict[tuple[bool, bool, bool], CrashAnalysis] = {}
        self._prefetched = False

    def __enter__(self) -> Dump:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file (and remove what was unpacked for it)."""
        self.reader.close()

    @property
    def kind(self) -> Kind:
        """``elf-core``, ``vmcore``, ``minidump`` or ``windows-kernel-dump``."""
        if is_vmcore_reader(self.reader):
            return "vmcore"
        if is_minidump(self.reader):
            return "minidump"
        if is_windows_kernel_dump(self.reader):
            return "windows-kernel-dump"
        return "elf-core"

    @property
    def arch(self) -> str:
        """The machine: x86_64, i386, aarch64, ..."""
        return str(self.reader.arch)

    @property
    def truncation(self) -> str | None:
        """None for a whole dump; else what it is missing (every view should say so first)."""
        return getattr(self.reader, "truncation", None)

    @property
    def thread_ids(self) -> list[int]:
        """The dump's threads (tasks of a vmcore are not listed here), the crashing one first."""
        if is_vmcore_reader(self.reader):
            return []
        return [t.tid for t in self.reader.threads]

    def _process(self, what: str) -> ElfCore:
        if not isinstance(self.reader, ElfCore) or is_vmcore_reader(self.reader):
            raise DumpError(f"{self.path}: {what} reads ELF process cores only")
        return self.reader

    def _loaded(self) -> Any:
        """An ELF core's drgn program with its debug information loaded (once), and what is missing."""
        from notmyfault.unwind.elf import load_program

        core = self._process("drgn's program")
        if self._program is None:
            self._program = load_program(core, self.exe, self.sysroot)
        return self._program

    def prefetch(self) -> None:
        """Start, in the background, what loading an ELF core's debug information will need: its
        modules' compressed debug files, inflated in a child process beside the caller's next steps
        (unwind.debugcache's ``inflate_ahead``; the program's loading takes the copies). Call it right
        after opening a dump whose stacks will be walked, before the process's other work; it is an
        opt-in, not done by the analysis itself, as it forks (only a process of one thread). Once per
        dump; nothing for other dumps."""
        r = self.reader
        if self._prefetched or self._program is not None or not isinstance(r, ElfCore) or is_vmcore_reader(r):
            return
        self._prefetched = True
        _prefetch(r)

    def drgn_program(self) -> Any:
        """drgn's ``Program`` over an ELF core (its debug information loaded) or a Linux vmcore, for
        the questions the views do not answer; raises DumpError for other dumps."""
        if is_vmcore_reader(self.reader):
            return self.reader.prog
        return self._loaded().prog

    def analysis(
        self, python_locals: bool = False, *, python: bool = True, native_locals: bool = False
    ) -> CrashAnalysis:
        """``!analyze -v``: the crash class, its arguments, the faulting instruction, the stack, and who
        is probably to blame (``python_locals``: the reprs of Python frames' locals too; ``python``
        False: a CPython process's Python frames are not read, the native ones alone are shown;
        ``native_locals``: ELF cores' native frames carry their arguments and locals from DWARF)."""
        key = (python_locals, python, native_locals)
        if key not in self._analysis:
            r = self.reader
            if is_vmcore_reader(r):
                from notmyfault.kernel.vmcore import analyze_vmcore

                result = analyze_vmcore(r)
            elif is_minidump(r):
                from notmyfault.analysis.minidump import analyze_minidump

                result = analyze_minidump(r, self.symbols)
            elif is_windows_kernel_dump(r):
                from notmyfault.kernel.windows import analyze_kernel_dump

                result = analyze_kernel_dump(r)
            else:
                from notmyfault.analysis.crash import analyze
                from notmyfault.unwind.python import reader_started

                with reader_started(r) if python else contextlib.nullcontext():
                    result = analyze(
                        r, self.exe, self.sysroot, self._loaded(), python_locals=python_locals,
                        python=python, native_locals=native_locals,
                    )  # fmt: skip
            self._analysis[key] = result
        return self._analysis[key]

    def provenance(self, top_frames: int = 32) -> Provenance:
        """The version and build-ids of what crashed: the build-ids of the modules of the crashing
        stack's first ``top_frames`` frames, the executable's (a minidump's first module's, a Windows
        kernel dump's first driver's), and the version: an ELF executable's package note, else an
        apport report's Package line; a minidump's version resource; a vmcore's kernel release."""
        from notmyfault.dumps import report_fields
        from notmyfault.dumps.buildid import dumped_build_id, dumped_package
        from notmyfault.unwind.names import short_name

        r = self.reader
        a = self.analysis()
        on_stack = {f.module for f in a.frames[:top_frames] if f.module}
        names = {short_name(m) for m in on_stack}
        build_ids: dict[str, str] = {}
        if is_minidump(r):
            for m in r.modules:
                if m.code_id and short_name(m.name) in names:
                    build_ids.setdefault(short_name(m.name), m.code_id)
            first = r.modules[0] if r.modules else None
            return Provenance(
                (first.product_version or first.file_version) if first else None,
                (first.code_id or None) if first else None,
                build_ids,
            )
        if is_vmcore_reader(r):
            return Provenance(r.release or None, None, {})
        if is_windows_kernel_dump(r):
            for d in r.drivers:
                if short_name(d.name) in names:
                    build_ids.setdefault(short_name(d.name), d.code_id)
            return Provenance(None, r.drivers[0].code_id if r.drivers else None, build_ids, r.system_time)
        for module in on_stack:
            bid = dumped_build_id(r, module)
            if bid:
                build_ids[short_name(module)] = bid
        exe_build_id = version = None
        if a.executable:
            exe_build_id = dumped_build_id(r, a.executable)
            package = dumped_package(r, a.executable)
            version = package.get("version") if package else None
        if version is None:  # apport: "Package: bash 5.2.15-2+b1"
            version = (report_fields(r).get("Package") or "").partition(" ")[2].strip() or None
        return Provenance(version, exe_build_id, build_ids)

    def signature(self, rules: Rules | str | Path | None = None) -> str:
        """The crash signature (the frames the bucket is made of) by ``rules``: a Rules object, a rules
        file (see ``triage --rules``), or the built-in rules."""
        a = self.analysis()
        if rules is None:
            return a.signature
        if not isinstance(rules, Rules):
            from notmyfault.analysis.signature import load_rules

            rules = load_rules(rules)
        return signature(a.sign_stack, rules)

    def signature_trace(self, rules: Rules | str | Path | None = None) -> list[TraceStep]:
        """Every frame the signature rule read, with what it did (kept, skipped, unread) and the rule
        that decided (``triage explain``)."""
        if rules is not None and not isinstance(rules, Rules):
            from notmyfault.analysis.signature import load_rules

            rules = load_rules(rules)
        return signature_trace(self.analysis().sign_stack, rules or DEFAULT_RULES)

    def bucket(self, rules: Rules | str | Path | None = None) -> str:
        """The bucket ``KIND:program:signature`` (the BUCKET_ID of ``analyze``, triage's bucket)."""
        a = self.analysis()
        sig = self.signature(rules) if rules is not None else a.signature
        return bucket_key(a.crash_class, a.program, sig, a.signal_name or a.exception_name)

    @property
    def default_rules(self) -> Rules:
        """The built-in signature rules."""
        return DEFAULT_RULES

    def environment(self) -> list[str]:
        """The process's environment (it may hold secrets: show it only when asked). ELF cores: from
        the initial stack; minidumps: Breakpad's environment stream."""
        r = self.reader
        if is_vmcore_reader(r) or is_windows_kernel_dump(r):
            raise DumpError(
                f"{self.path}: --show-environment reads process dumps (ELF cores, minidumps) only"
            )
        env = r.environment
        if env is None:
            raise DumpError(
                f"{self.path}: the dump does not hold the process's environment (no initial stack, no environ stream)"
            )
        return list(env)

    def home_directory(self) -> str | None:
        """The ``HOME`` of the process's environment: the home directory of the user who crashed,
        which triage redacts wherever a stored path starts with it; None where the dump holds no
        environment or no absolute ``HOME`` below the root."""
        try:
            env = self.environment()
        except DumpError:
            return None
        home = next((v[5:] for v in env if v.startswith("HOME=")), None)  # as getenv: the first
        home = home.rstrip("/") if home else None
        return home if home and home.startswith("/") else None

    def _thread_ids(self, tid: int | None, all_threads: bool) -> list[int]:
        tids = self.thread_ids
        if not tids:
            raise DumpError(f"{self.path} records no threads")
        if tid is not None and tid not in tids:
            raise DumpError(f"the dump has no thread {tid}; its threads are {', '.join(map(str, tids))}")
        return tids if all_threads else [tid if tid is not None else tids[0]]

    def stacks(
        self,
        tid: int | None = None,
        all_threads: bool = False,
        *,
        python: bool = True,
        python_locals: bool = False,
        native_locals: bool = False,
    ) -> Stacks:
        """``kvL``: the stack of the crashing thread (or ``tid``, or every thread), each frame with how
        it was found (its trust); a CPython process's Python frames merged in unless ``python`` is
        False (``python_locals``: with their arguments' and locals' reprs; ``native_locals``: ELF
        cores' native frames with their arguments and locals from DWARF, as gdb's ``bt full``).
        Vmcores: the crashed task's (or task ``tid``'s, or every task's)."""
        r = self.reader
        stacks: list[tuple[int, list[Frame]]]
        stopped: dict[int, str | None] = {}
        pystacks: PythonStacks | None = None
        if is_vmcore_reader(r):
            from notmyfault.kernel.vmcore import task_stacks

            try:
                stacks = [(t, list(fs)) for t, fs in task_stacks(r, tid, all_threads)]
            except LookupError as e:
                raise DumpError(str(e)) from None
        else:
            chosen = self._thread_ids(tid, all_threads)
            by_tid: dict[int, Any] = {t.tid: t for t in r.threads}
            if is_minidump(r):
                from notmyfault.unwind.minidump import Walker

                walker = Walker(r, self.symbols)
                # the dump writer's own thread is listed, not walked (its stack is the writer's)
                stacks = [(t, [] if t == r.dump_thread_id else walker.frames(by_tid[t])) for t in chosen]
            elif is_windows_kernel_dump(r):
                from notmyfault.kernel.windows import kernel_frames

                stacks = [(t, list(kernel_frames(r, by_tid[t], [], self.symbols))) for t in chosen]
            else:
                from notmyfault.unwind.elf import thread_walk
                from notmyfault.unwind.python import reader_started

                with reader_started(r) if python else contextlib.nullcontext():
                    program = self._loaded()
                    walks = [(t, thread_walk(program, r, t, native_locals)) for t in chosen]
                    stacks = [(t, w.frames) for t, w in walks]
                    stopped = {t: w.stopped for t, w in walks}
                    if python:
                        from notmyfault.analysis.crash import python_stacks

                        pystacks = python_stacks(r, program, self.exe, self.sysroot, python_locals, walks)
        out = []
        for t, fs in stacks:
            py = pystacks.thread(t) if pystacks else None
            merged = (merge(fs, py) or tuple(fs)) if py else tuple(fs)
            out.append(ThreadStack(t, tuple(merged), py, stopped.get(t)))
        return Stacks(tuple(out), pystacks.error if pystacks else None)

    def frames(self, tid: int | None = None, python: bool = True) -> tuple[Frame, ...]:
        """The frames of one thread (the crashing one by default), innermost first."""
        return self.stacks(tid, python=python).threads[0].frames

    def registers(self, tid: int | None = None) -> Registers:
        """``.trap``: a thread's registers and the instruction at its program counter (the crashing
        thread by default). Vmcores: the crashed task's trap frame."""
        r = self.reader
        if is_vmcore_reader(r):
            from notmyfault.kernel.vmcore import trap_frame

            try:
                trap = trap_frame(r, tid)
            except LookupError as e:
                raise DumpError(str(e)) from None
            if trap is None:
                raise DumpError(
                    f"{self.path}: no registers: the crashed task's stack cannot be read and the log holds none"
                )
            return Registers(trap, trap.instruction, trap.where)
        t = next(th for th in r.threads if th.tid == self._thread_ids(tid, False)[0])
        if not t.regs:
            raise DumpError(f"registers of {r.arch} dumps are not decoded yet")
        insn, where = None, None
        if is_minidump(r) or is_windows_kernel_dump(r):
            module = r.module_at(t.pc) if t.pc is not None else None
            where = f"in {module.name}" if module else None
            if t.pc is not None:
                try:
                    insn = decode_bytes(r.read(t.pc, 16), t.pc, r.arch)
                except UnreadableMemory:
                    insn = None
        else:
            from notmyfault.analysis.crash import decode

            insn = decode(r, t.pc, self.sysroot, t.regs) if t.pc is not None else None
            mapping = r.file_at(t.pc) if t.pc is not None else None
            where = f"in {mapping.path}" if mapping else None
        extended = r.extended_registers(t.tid) if isinstance(r, ElfCore) else {}
        return Registers(t, insn, where, extended)

    def _need_types(self, command: str) -> Vmcore:
        """A vmcore whose kernel types (the debug vmlinux) were found; DumpError without them."""
        assert is_vmcore_reader(self.reader)
        if not self.reader.has_types():
            raise DumpError(
                f"{command} on a vmcore needs the kernel's debug information: give --debug-file vmlinux "
                f"(Debian: linux-image-{self.reader.release}-dbg; the lab keeps it beside its vmcores); "
                "'notmyfault analyze' works without it from the kernel log"
            )
        return self.reader

    def _not_windows(self, command: str) -> None:
        r = self.reader
        if is_minidump(r):
            raise DumpError(
                f"{self.path} is a minidump: {MINIDUMP_COMMANDS} read minidumps; {command} reads Linux "
                "process cores and vmcores"
            )
        if is_windows_kernel_dump(r):
            raise DumpError(
                f"{self.path} is a Windows kernel crash dump: {KERNEL_DUMP_COMMANDS} read those; {command} "
                "reads Linux process cores and vmcores"
            )

    def pools(self) -> Pools:
        """``!poolused``: tagged leak blocks by tag with count and bytes, and glibc's main heap; vmcores:
        slab caches (a cache named after the tag is the tag's nonpaged pool) and vmalloc by caller."""
        if is_vmcore_reader(self.reader):
            from notmyfault.kernel.kmem import slab_usage, vmalloc_usage

            vm = self._need_types("poolused")
            return Pools("kernel", slabs=slab_usage(vm), vmallocs=vmalloc_usage(vm))
        self._not_windows("poolused")
        from notmyfault.memory.heap import heap_summary
        from notmyfault.memory.pool import pool_usage

        core = self._process("poolused")
        return Pools("process", usage=pool_usage(core), heap=heap_summary(core))

    def modules(self, name: str | None = None, versions: bool = False) -> Modules:
        """``lm``: the modules with load range, build-id or debug id, and whether the file on disk
        matches; ``name`` picks one (``lmvm``). ``versions``: a Windows driver's version resource."""
        from notmyfault.unwind.names import module_matches

        r = self.reader
        if is_vmcore_reader(r):
            from notmyfault.kernel.kmem import kernel_modules

            self._need_types("modules")
            kmods = [m for m in kernel_modules(r) if name is None or module_matches(m.name, name)]
            if name is not None and not kmods:
                raise DumpError(f"no module named {name!r} is loaded in the dump")
            return Modules("kernel", kmods)
        if is_windows_kernel_dump(r):
            drivers = [d for d in r.drivers if name is None or module_matches(d.name, name)]
            if not r.drivers:
                why = r.module_list_problem or "its memory is not read (see 'notmyfault analyze')"
                raise DumpError(
                    f"{self.path} is a {r.dump_type} dump and no module list could be read: {why}"
                )
            if name is not None and not drivers:
                raise DumpError(f"no module named {name!r} in the dump")
            found = {d.base: r.image(d).version for d in drivers} if versions or name is not None else {}
            return Modules("drivers", drivers, found)
        if is_minidump(r):
            mini = [m for m in r.modules if name is None or module_matches(m.name, name)]
            if name is not None and not mini:
                names = ", ".join(sorted({m.name for m in r.modules}))
                raise DumpError(f"no module named {name!r} in the dump; modules: {names}")
            return Modules("minidump", mini)
        from notmyfault.memory.modules import modules as list_modules
        from notmyfault.memory.modules import select_modules

        mods = list_modules(self._loaded(), r)
        if name is not None:
            chosen = select_modules(mods, name)
            if not chosen:
                names = ", ".join(sorted({m.name for m in mods}))
                raise DumpError(f"no module named {name!r} in the dump; modules: {names}")
            mods = chosen
        return Modules("process", mods)

    def memory(self, top: int = 10, pools: Pools | None = None) -> Memory:
        """``!vm``: memory by kind (file, anonymous, heap, stacks, tagged pools), the ``top`` biggest
        mappings and the warnings; kernel dumps: the kernel's memory counters. ``pools``: what
        :meth:`pools` found already (a process core's heap is then not walked again)."""
        r = self.reader
        if is_vmcore_reader(r):
            from notmyfault.kernel.kmem import kernel_vm

            return Memory("linux", kernel_vm(self._need_types("vm")))
        if is_windows_kernel_dump(r):
            from notmyfault.kernel.winvm import windows_vm

            return Memory("windows", windows_vm(r))
        if is_minidump(r):
            raise DumpError(f"{self.path} is a minidump: it holds no system memory counters for !vm")
        from notmyfault.memory.pool import pool_usage
        from notmyfault.memory.vm import vm_summary

        if pools is not None and pools.kind == "process":
            return Memory("process", vm_summary(r, pools.usage, top, heap=pools.heap))
        return Memory("process", vm_summary(r, pool_usage(r), top))

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes of the dumped memory at ``address``; raises UnreadableMemory where the dump
        holds none."""
        return bytes(self.reader.read(address, size))

    def search(self, pattern: bytes, module: str | None = None) -> list[Hit]:
        """``s -a``: every place ``pattern`` occurs in the dump (ELF cores: and in the mapped files the
        dump left out), or only in ``module``'s mappings."""
        if not pattern:
            raise DumpError("give a non-empty pattern")
        r = self.reader
        if is_vmcore_reader(r):
            from notmyfault.kernel.kmem import kernel_search

            self._need_types("search")
            try:
                return kernel_search(r, pattern, module)
            except LookupError as e:
                raise DumpError(str(e)) from None
        from notmyfault.memory.search import has_module, search, search_memory

        if module is not None and not has_module(r, module):
            raise DumpError(
                f"--module {module!r}: the dump holds no such module ('notmyfault modules {self.path}' lists them)"
            )
        if is_minidump(r) or is_windows_kernel_dump(r):
            return search_memory(r, pattern, module)
        return search(r, pattern, module)

    def disassemble(self, target: str | int, count: int = 8, syntax: str = "intel") -> Disassembly:
        """``u``: ``count`` instructions at an address or a symbol (minidumps and Windows kernel dumps:
        an address) in ``intel`` or ``att`` syntax."""
        from notmyfault.memory.disasm import UnknownTarget

        r = self.reader
        text = target if isinstance(target, str) else hex(target)
        try:
            if is_vmcore_reader(r):
                from notmyfault.kernel.vmcore import kernel_disasm

                insns, where = kernel_disasm(r, text, count, syntax)
                return Disassembly(insns, where)
            if is_minidump(r) or is_windows_kernel_dump(r):
                return self._disassemble_memory(r, text, count, syntax)
            return self._disassemble_core(r, text, count, syntax)
        except UnknownTarget as e:
            raise DumpError(str(e)) from None

    def _disassemble_memory(
        self, r: Minidump | WindowsKernelDump, target: str, count: int, syntax: str
    ) -> Disassembly:
        from notmyfault.memory.disasm import disassemble_memory
        from notmyfault.unwind.names import short_name

        try:
            address = int(target, 0)
        except ValueError:
            raise DumpError(
                f"{target!r}: give an address (0x...): symbols of minidumps and kernel dumps are not read"
            ) from None
        insns = disassemble_memory(r, address, count, syntax)
        mod = r.module_at(address)
        return Disassembly(insns, {address: f"{short_name(mod.name)}+{address - mod.base:#x}"} if mod else {})

    def _disassemble_core(self, r: ElfCore, target: str, count: int, syntax: str) -> Disassembly:
        from notmyfault.memory.disasm import disassemble, resolve
        from notmyfault.unwind.names import demangle

        program = self._loaded()
        address = resolve(program, target)
        insns = disassemble(r, address, count, syntax, self.sysroot)
        where = {}
        try:
            sym = program.prog.symbol(address)
            where[address] = f"{demangle(sym.name)}+{address - sym.address:#x}"
        except LookupError:
            pass
        return Disassembly(insns, where)
