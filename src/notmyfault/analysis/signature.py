"""Crash signatures and buckets: one definition for ``analyze`` (BUCKET_ID), ``triage`` and its report.

The rule has Socorro's shape, with its lists kept as data (``Rules``; ``--rules FILE`` replaces them):

1. **Names are normalised** (``normalize``, regular expression and replacement, in order): GCC's
   clone suffixes go (``oops_end.cold``, ``f.isra.0``), glibc's ``__GI_`` aliases and ``__libc_``
   allocator names become the public name (``__GI___libc_free`` -> ``free``), and the CPU-specific
   variants that glibc picks at load time become their generic function (``__strlen_evex``,
   ``__strlen_avx2`` and ``__strlen_sse2`` -> ``strlen``; ``__memmove_avx_unaligned_erms`` ->
   ``memcpy``, since glibc runs memcpy and memmove by the same code and names it either way), so
   one bug is one signature on every CPU. Names arrive demangled (C++, Rust, Swift).
2. **A sentinel** (``sentinel``) is a frame that names the kind of failure better than the frames
   above it (``std::terminate``: C++ gave up, whether an exception nobody caught passed
   ``__cxa_throw``, left a noexcept function through GCC's personality or clang's
   ``__clang_call_terminate``, or the program called it: every such path is normalised to that one
   name, since which of them a stack shows depends on the compiler); when the stack holds one, the
   signature starts there.
3. **Irrelevant frames are skipped**: frames in the system's own modules (``irrelevant_modules``:
   the C library, the loader, the C++ and GCC runtimes, the vDSO, Windows' ntdll and kernelbase)
   and frames whose name is machinery (``irrelevant``: libc's signal-sending and abort paths, the
   interpreter's eval loop, the kernel's and Windows' bug-check paths). A frame of a system module
   is kept when its name is a prefix frame (``free``, ``memcpy``: where the application handed the
   system a bad pointer).
4. **A language runtime's frames** (``interpreter_modules``: CPython's interpreter, ctypes and
   libffi, and the Python frames of the interpreter's own library, signed as the module
   ``<python library>``). Where the program has a Python frame, it names the call: the runtime's
   native frames are skipped (a distribution's stripped python shows ``python3+0x..`` where pyenv's
   shows ``os_abort_impl``, and inlining differs by version), and only the innermost Python frame of
   the runtime's library is kept (``ctypes.string_at``: the same on every interpreter). Without a
   Python frame (an embedding program), the innermost runtime frame is kept, since it names what the
   program asked the runtime to do (``PyBytes_FromStringAndSize``).
5. **Prefix frames** (``prefix``: the allocator and string functions, an unknown pc ``??``) are too
   generic to end a signature: they are kept and the walk goes on to the next relevant frame.
   The first frame that is not a prefix frame ends it: the first frame in application code
   decides. At most ``max_frames`` tokens; a recursion (the same token again) counts once.

A frame's token is its normalised function name (for a Python frame of a CPython process, its
function, ``module.function`` in the interpreter's library: the stack reads the Python frames
where the eval loop runs them, see ``analysis.crash.sign_frames``); without one, ``module+0xoffset`` (the offset from
the module's load address, so it survives ASLR; a rebuild changes it); in no module, ``??``.

C++ and Rust names are collapsed (``collapse_name``: template arguments to ``<T>``, parameter
lists and return types gone), and the standard libraries' frames (``std::``, ``core::``,
``alloc::``, ``__gnu_cxx::``, trait impls on primitive types) are skipped: which of them a stack
shows depends on what the compiler inlined at each level (``std::vector<T>::at`` is a frame at
-O0 and gone at -O2 where no inline record names it), while the program's own frame below is there
in every build. Rust's panic path is part of them. In a static link, glibc's internals are in the
program's module and are skipped by name (``gsignal``, ``munmap_chunk``).

**The bucket** is ``KIND:program:signature`` (``failure_kind``): the program as Socorro scopes by
product and abrt's duphash by component, and the kind of failure, not its class: ``FAULT`` for every
class where the processor refused an instruction, ``ABORT`` for every check that stopped the
program, ``KILLED_BY_SIGNAL(SIGQUIT)`` for a signal sent from outside (``KILLED_BY_SIGNAL(SIGQUIT):cat:cat+0x5d26``).
One line fails as a read at -O0 and a write at -O2, and one overflow trips one of three glibc
checks: the class tells them apart and is stored and shown, the bucket must not; the kind keeps
apart two bugs of one function that fail differently (a NULL write and an assert()). The program is
the executable's file name with a trailing dotted version dropped (``python3.11`` -> ``python3``),
``linux`` for a kernel vmcore and ``windows`` for a Windows kernel dump.

Every stored signature records ``Rules.stamp()`` (the rules' version and a digest of their data),
so ``triage rebucket`` knows which rows were made by other rules and recomputes them from the stored
frames without reading a dump again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from notmyfault.base.utf8 import storable

SIGN_DEPTH = 64
"""How many frames, innermost first, a signature reads (and triage stores, so that ``rebucket``
sees what ``analyze`` saw)."""
RULES_VERSION = 5
"""The built-in rules' version: 1 was the first (bare names, no program scope); 2 scoped by program;
3 reads Python frames and keeps one frame of the interpreter's own modules; 4 keys by program,
failure kind and signature (the class is an attribute), collapses C++ and Rust names (templates,
parameters, hashes, clone suffixes), skips the Rust panic machinery, and lets no native runtime
frame decide where a Python frame exists; 5 skips the C++ and Rust standard libraries' frames (which
of them are inlined changes with every build), names every path to C++'s terminate
``std::terminate`` and starts there, skips glibc's internals as a static link shows them, and lets
no native runtime frame into a Python program's signature."""

DEFAULT_NORMALIZE: tuple[tuple[str, str], ...] = (
    # demangled names: GCC's clone suffixes as the demanglers print them ("f(int) [clone .cold]",
    # "f(int) (.cold)"), GCC's ABI tags, the C++ libraries' inline namespaces (std::__cxx11,
    # libc++'s std::__1), Rust's legacy hashes and v0 crate disambiguators, closures named either way
    (r"(\s*(\[clone [^\]]*\]|\(\.(cold|isra|constprop|part|lto_priv|localalias)(\.\d+)?\)))+$", ""),
    (r"\[abi:[\w.]+\]", ""),
    (r"\bstd::__(cxx11|\d+)::", "std::"),
    (r"::h[0-9a-f]{16}$", ""),
    (r"(?<=\w)\[[0-9a-f]{1,16}\](?=::|$)", ""),
    (r"\{\{closure\}\}|\{closure#\d+\}", "{closure}"),
    # GCC's clones and splits: a property of one build
    (r"(\.(cold|isra|constprop|part|lto_priv|localalias)(\.\d+)?)+$", ""),
    # glibc's internal aliases of public functions
    (r"^__GI_", ""),
    # every way C++ reaches terminate: an exception nobody catches (__cxa_throw, __cxa_rethrow), one
    # that leaves a noexcept function (GCC's personality, clang's __clang_call_terminate), a direct call
    (
        r"^(__cxa_throw|__cxa_rethrow|__cxa_call_terminate|__clang_call_terminate|std::terminate(\(\))?|"
        r"__cxxabiv1::__terminate(\(.*\))?|std::__terminate(\(.*\))?)$",
        "std::terminate",
    ),
    (r"^(?:__libc_|__)(malloc|free|calloc|realloc|memalign|valloc|pvalloc)$", r"\1"),
    (r"^cfree$", "free"),
    # glibc's CPU variants (x86: sse2, ssse3, avx, avx2, avx512, evex, erms; arm64: generic, asimd,
    # sve, mops, ...): __strlen_evex -> strlen, __memset_avx512_unaligned_erms -> memset
    (
        r"^__((?:mem|str|stp|wcs|wmem|wcp|rawmem)[a-z0-9_]*?)(?:_chk)?_(?:avx|evex|sse|ssse|erms|unaligned|"
        r"aligned|generic|nocache|asimd|simd|sve|mops|zva|mte|thunderx|falkor|kunpeng|a64fx|emag|oryon|"
        r"rtm|no_bsf|ia32|i386|i586|i686|power|ppc|z13|z15|vx|arch13|lasx|lsx|rvv)\w*$",
        r"\1",
    ),
    # the fortified forms (_FORTIFY_SOURCE): __memcpy_chk -> memcpy, __sprintf_chk -> sprintf
    (r"^__(\w+?)_chk$", r"\1"),
    # memcpy and memmove run the same code in glibc, named after either
    (r"^memmove$", "memcpy"),
)
DEFAULT_IRRELEVANT: tuple[str, ...] = (
    # libc: sending the fatal signal, aborting, reporting a failed check
    r"kill", r"tgkill", r"raise", r"abort", r"pthread_kill\w*", r"__libc_\w+",
    r"__restore_rt", r"__assert_fail(_base)?", r"__assert_perror_fail", r"malloc_printerr",
    r"_int_\w+", r"__fortify_fail", r"__chk_fail", r"__stack_chk_fail(_local)?", r"__futex\w*",
    r"futex_\w+", r"__lll_\w+", r"__pthread_\w+", r"___pthread_\w+", r"__syscall_cancel\w*",
    r"__internal_syscall_cancel", r"syscall", r"_start", r"gsignal", r"__restore_rt", r"<signal handler called>",
    # glibc's allocator internals (a static link keeps them in the program's own module)
    r"munmap_chunk", r"unlink_chunk", r"malloc_consolidate", r"tcache_\w+", r"sysmalloc\w*",
    r"__malloc_assert", r"__libc_fatal",
    # the C++ runtime between a throw and the abort (std::terminate itself is the sentinel)
    r"__gnu_cxx::__verbose_terminate_handler", r"_Unwind_\w+", r"__gxx_personality_\w+", r"__cxxabiv1::.*",
    r"__cxa_(pure|deleted)_virtual",
    # Rust: from a panic to the abort (panic=abort, or a panic that cannot unwind), and the start-up
    # frames below main (names as normalised: hashes gone, templates collapsed, parameters dropped);
    # std::panicking, core::panicking and the rest are the standard library's, below
    r"__rg_oom", r"__rust_\w+", r"__rustc::.*", r"rust_begin_unwind", r"rust_panic\w*", r"panic_abort::.*",
    r"panic_unwind::.*", r"<T>::call_once\w*",
    # the C++ and Rust standard libraries, instantiated in the program's own module (any program's
    # map::at, Vec indexing, sort, RefCell, panics): which of them are inlined changes with the
    # compiler and the optimisation level, so they are skipped and the code that called them decides
    r"(std|__gnu_cxx|core|alloc)::.*",
    r"<(?:(?:std|core|alloc)::\S*|[iu](?:8|16|32|64|128|size)|f32|f64|bool|char|str|\[T\]|&\S*|\*\S*)(?: as .*)?>::.*",
    # CPython's eval loop and call machinery (the frames of every Python call)
    r"_PyEval_EvalFrameDefault", r"_PyEval_EvalFrame", r"_PyEval_Vector", r"PyEval_EvalCode(Ex)?",
    r"_PyFunction_Vectorcall", r"_PyObject_VectorcallTstate", r"PyObject_Vectorcall(Method|Dict)?",
    r"_PyObject_Call\w*", r"PyObject_Call\w*", r"cfunction_\w+", r"method_vectorcall_\w+",
    r"_PyObject_MakeTpCall", r"vectorcall_\w+", r"slot_tp_call", r"object_vacall", r"run_eval_code_obj",
    r"run_mod", r"pyrun_\w+", r"_PyRun_\w+", r"PyRun_\w+", r"pymain_\w+", r"Py_RunMain", r"Py_BytesMain",
    # Perl's and Ruby's run loops
    r"Perl_runops_\w+", r"S_run_body", r"perl_run", r"vm_exec\w*", r"rb_vm_exec",
    # Windows: the bug check itself
    r"KeBugCheckEx", r"KiBugCheckDispatch", r"KiPageFault", r"KiTrap0E",
    # Linux kernel: from the fault or the detector to the panic (and QEMU's pvpanic), and a sleep
    r"pvpanic_\w+", r"(atomic_)?notifier_call_chain", r"panic", r"nmi_panic", r"oops_end",
    r"page_fault_oops", r"handle_page_fault", r"(asm_)?exc_\w+", r"do_trap(_no_signal)?", r"do_error_trap",
    r"handle_invalid_op", r"handle_stack_overflow", r"unknown_nmi_error", r"default_do_nmi",
    r"kernelmode_fixup_or_oops", r"(__)?bad_area_nosemaphore", r"do_(user|kern)_addr_fault",
    r"add_taint", r"slab_err", r"object_err", r"check_bytes_and_report", r"check_object",
    r"free_(debug_processing|consistency_checks)", r"free_to_partial_list", r"__kmem_cache_free",
    r"rep_nop", r"cpu_relax", r"context_switch", r"__schedule", r"schedule(_timeout|_preempt_disabled)?",
    r"(do_|__)?wait_for_common", r"__mutex_lock(_common|_slowpath)?(\.constprop\.\d+)?", r"mutex_lock",
)  # fmt: skip
DEFAULT_IRRELEVANT_MODULES: tuple[str, ...] = (
    "libc.so*", "libc-*.so", "libc.musl-*", "ld-linux*.so*", "ld-*.so*", "ld64.so*", "ld-musl-*",
    "libpthread.so*", "libpthread-*.so", "libdl.so*", "librt.so*", "libgcc_s.so*", "libstdc++.so*",
    "libc++.so*", "libc++abi.so*", "linux-vdso.so*", "linux-gate.so*", "[vdso]",
    "ntdll.dll", "kernel32.dll", "kernelbase.dll", "msvcrt.dll", "ucrtbase.dll", "vcruntime*.dll",
    "msvcp*.dll", "win32u.dll", "user32.dll",
)  # fmt: skip
PYTHON_LIBRARY = "<python library>"
"""The module a Python frame of the interpreter's own library is signed with."""
DEFAULT_INTERPRETER_MODULES: tuple[str, ...] = (
    # CPython: the interpreter, its foreign-function calls, and its own library's Python frames
    "python", "python3", "python3.[0-9]*", "libpython3*.so*", "_ctypes*.so", "libffi.so*", PYTHON_LIBRARY,
)  # fmt: skip
DEFAULT_PREFIX: tuple[str, ...] = (
    # allocators: a bad pointer handed to them is the caller's bug
    r"free", r"malloc", r"realloc", r"calloc", r"memalign", r"posix_memalign", r"aligned_alloc",
    r"operator (new|delete)(\[\])?(\(.*\))?", r"RtlFreeHeap", r"RtlAllocateHeap", r"HeapFree", r"HeapAlloc",
    r"_free_base", r"_malloc_base",
    # memory and string functions
    r"mem(cpy|set|cmp|chr|rchr|pcpy|mem)", r"rawmemchr", r"bcmp", r"wmem\w+",
    r"str(len|nlen|cpy|ncpy|cat|ncat|cmp|ncmp|casecmp|ncasecmp|chr|rchr|chrnul|str|spn|cspn|pbrk|dup|ndup)(_l)?",
    r"stp(cpy|ncpy)", r"wcs\w+", r"wcp\w+",
    # a pc in no module, and the sentinel (the walk goes on to the frame that threw)
    r"\?\?", r"std::terminate",
    # Linux kernel allocators
    r"kfree", r"kmem_cache_(alloc|free)", r"__?kmalloc", r"set_freepointer", r"(do_|__)?slab_free", r"v(free|malloc)",
)  # fmt: skip
DEFAULT_SENTINEL: tuple[str, ...] = (r"std::terminate",)
KEYS = (
    "version", "normalize", "collapse", "irrelevant", "irrelevant_modules", "interpreter_modules", "prefix",
    "sentinel", "max_frames",
)  # fmt: skip


def _alternatives(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regular expression matching any of ``patterns`` (none: matching nothing)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


@dataclass(frozen=True)
class SignFrame:
    """What a signature reads of a frame (and what triage stores of it, so that new rules can be
    applied to stored rows): the raw function name as the analysis gave it, the module's file name,
    and the pc's offset from the module's load address."""

    function: str | None
    module: str | None
    offset: int | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form triage stores."""
        return {"function": self.function, "module": self.module, "offset": self.offset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignFrame:
        """Back from the stored form."""
        offset = d.get("offset")
        return cls(d.get("function"), d.get("module"), int(offset) if offset is not None else None)


@dataclass(frozen=True)
class Rules:
    """The signature rule's data (see the module's docstring). Regular expressions match whole names."""

    version: int = RULES_VERSION
    normalize: tuple[tuple[str, str], ...] = DEFAULT_NORMALIZE
    irrelevant: tuple[str, ...] = DEFAULT_IRRELEVANT
    irrelevant_modules: tuple[str, ...] = DEFAULT_IRRELEVANT_MODULES
    interpreter_modules: tuple[str, ...] = DEFAULT_INTERPRETER_MODULES
    prefix: tuple[str, ...] = DEFAULT_PREFIX
    sentinel: tuple[str, ...] = DEFAULT_SENTINEL
    max_frames: int = 5
    collapse: bool = True
    """Collapse C++ and Rust names (``collapse_name``): template arguments to ``<T>``, parameter
    lists and return types dropped, lambdas as ``{lambda}``, and a lambda or closure signed as the
    function that defines it."""

    @cached_property
    def _normalizers(self) -> list[tuple[re.Pattern[str], str]]:
        return [(re.compile(p), r) for p, r in self.normalize]

    @cached_property
    def _irrelevant(self) -> re.Pattern[str]:
        return _alternatives(self.irrelevant)

    @cached_property
    def _prefix(self) -> re.Pattern[str]:
        return _alternatives(self.prefix)

    @cached_property
    def _sentinel(self) -> re.Pattern[str]:
        return _alternatives(self.sentinel)

    @cached_property
    def _interpreter(self) -> re.Pattern[str]:
        return re.compile("|".join(fnmatch.translate(p.lower()) for p in self.interpreter_modules) or "(?!)")

    @cached_property
    def _modules(self) -> re.Pattern[str]:
        return re.compile("|".join(fnmatch.translate(g.lower()) for g in self.irrelevant_modules) or r"(?!)")

    def name(self, function: str) -> str:
        """``function`` normalised (clone suffixes, aliases and CPU variants gone); collapsed, a
        lambda or closure is named after the function that defines it."""
        for pattern, replacement in self._normalizers:
            function = pattern.sub(replacement, function)
        if not self.collapse:
            return function
        collapsed = collapse_name(function)
        return _CLOSURE.sub("", collapsed) or collapsed

    def token(self, frame: SignFrame) -> str:
        """The frame as a signature token: its normalised name, else module+0xoffset, else ??."""
        if frame.function:
            return self.name(frame.function) or frame.function
        if frame.module and frame.offset is not None:
            return f"{_short(frame.module)}+{frame.offset:#x}"
        return "??"

    def system_module(self, module: str | None) -> bool:
        """True if ``module`` (a path or file name) is one of the system's own."""
        return bool(module) and self._modules.fullmatch(os.path.basename(str(module)).lower()) is not None

    def interpreter(self, module: str | None) -> bool:
        """True if ``module`` is one of a language runtime's (CPython's interpreter, ctypes, its library)."""
        return bool(module) and self._interpreter.fullmatch(os.path.basename(str(module)).lower()) is not None

    def extends(self, token: str) -> bool:
        """True if ``token`` is too generic to end a signature."""
        return self._prefix.fullmatch(token) is not None

    def machinery(self, token: str) -> bool:
        """True if ``token`` names machinery (an irrelevant name), wherever it lies."""
        return self._irrelevant.fullmatch(token) is not None

    def relevant(self, frame: SignFrame, token: str) -> bool:
        """False for machinery: an irrelevant name, or a system module's frame that is no prefix frame."""
        if self.machinery(token):
            return False
        return not self.system_module(frame.module) or self.extends(token)

    def sentinel_at(self, tokens: Sequence[str]) -> int | None:
        """The index of the first sentinel frame, if the stack holds one."""
        return next((i for i, t in enumerate(tokens) if self._sentinel.fullmatch(t)), None)

    def data(self) -> dict[str, Any]:
        """The rules as the JSON object ``load_rules`` reads."""
        return {
            "version": self.version,
            "normalize": [list(p) for p in self.normalize],
            "irrelevant": list(self.irrelevant),
            "irrelevant_modules": list(self.irrelevant_modules),
            "interpreter_modules": list(self.interpreter_modules),
            "prefix": list(self.prefix),
            "sentinel": list(self.sentinel),
            "max_frames": self.max_frames,
            "collapse": self.collapse,
        }

    def stamp(self) -> str:
        """What a stored signature records of the rules that made it: ``v3-<digest of the data>``."""
        digest = hashlib.sha256(json.dumps(self.data(), sort_keys=True).encode()).hexdigest()[:12]
        return f"v{self.version}-{digest}"


DEFAULT_RULES = Rules()


_CLOSURE = re.compile(r"::\{(?:lambda|closure)\}(?:::.*)?$")
"""A lambda's or closure's part of a collapsed name: the compilers inline a lambda into the standard
library's algorithm or thread that runs it, and record that inlining at some levels and not at
others (gcc -O0 has ``shapes::rank_players::{lambda}::operator()`` where clang -O2 has only
``shapes::rank_players`` left), so a lambda is signed as the function that defines it."""


def _short(module: str) -> str:
    """A module's short name: its file name up to the first dot (libc.so.6 -> libc)."""
    name = os.path.basename(module.replace("\\", "/"))
    return name.split(".", 1)[0] or name


def load_rules(path: str | Path) -> Rules:
    """Rules from a JSON object with any of the keys of ``Rules.data()``; keys left out keep the
    built-in values (``skip`` is read as ``irrelevant``, its name in version 1). ValueError with the
    reason if the file is no such object."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read signature rules from {path}: {e}") from e
    if isinstance(data, dict) and "skip" in data and "irrelevant" not in data:
        data = {("irrelevant" if k == "skip" else k): v for k, v in data.items()}
    if not isinstance(data, dict) or set(data) - set(KEYS):
        raise ValueError(f"{path}: signature rules are an object with the keys {', '.join(KEYS)}")
    base = DEFAULT_RULES
    try:
        rules = Rules(
            version=int(data.get("version", base.version)),
            normalize=tuple((str(p), str(r)) for p, r in data.get("normalize", base.normalize)),
            irrelevant=tuple(str(p) for p in data.get("irrelevant", base.irrelevant)),
            irrelevant_modules=tuple(str(p) for p in data.get("irrelevant_modules", base.irrelevant_modules)),
            interpreter_modules=tuple(
                str(p) for p in data.get("interpreter_modules", base.interpreter_modules)
            ),
            prefix=tuple(str(p) for p in data.get("prefix", base.prefix)),
            sentinel=tuple(str(p) for p in data.get("sentinel", base.sentinel)),
            max_frames=int(data.get("max_frames", base.max_frames)),
            collapse=bool(data.get("collapse", base.collapse)),
        )
        rules.name("x")  # compiles every pattern: a bad one is a re.error here
        rules.relevant(SignFrame("x", "x", 0), "x")
        rules.extends("x")
        rules.interpreter("x")
        rules.sentinel_at(["x"])
    except (TypeError, ValueError, re.error) as e:
        raise ValueError(f"{path}: bad signature rules: {e}") from e
    if rules.max_frames < 1:
        raise ValueError(f"{path}: max_frames must be at least 1")
    return rules


_OPERATOR_CHARS = set("<>=!+-*/%^&|~[],")
_QUALIFIER = re.compile(r"\s*(?:const\b|volatile\b|noexcept\b|&&|&)")


def _operator_end(name: str, i: int) -> int:
    """If an operator's name (``operator<<``, ``operator()``) starts at ``i``, the index after it, else -1."""
    if not name.startswith("operator", i) or (i > 0 and (name[i - 1].isalnum() or name[i - 1] == "_")):
        return -1
    j = i + len("operator")
    if name.startswith("()", j):
        return j + 2
    while j < len(name) and name[j] in _OPERATOR_CHARS:
        j += 1
    return j


def _closing(name: str, i: int) -> int:
    """The index of the bracket that closes the one at ``i`` (brackets of every kind nest; an
    operator's symbols and ``->`` are no brackets), or -1 if none does."""
    pairs = {"<": ">", "(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    j = i
    while j < len(name):
        end = _operator_end(name, j)
        if end > 0:
            j = end
            continue
        c = name[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ">)]}" and not (c == ">" and j > 0 and name[j - 1] == "-"):
            if not stack or c != stack[-1]:
                return -1
            stack.pop()
            if not stack:
                return j
        j += 1
    return -1


def collapse_name(name: str, top: bool = True) -> str:
    """A C++ or Rust function's name without what varies between builds of one function, as
    Socorro collapses them: template arguments become ``<T>`` (``std::map<T>::at``), parameter
    lists, their qualifiers and a leading return type go (DWARF's names have none), and a lambda is
    ``{lambda}`` however the demangler or the compiler's DWARF spells it. ``<A as B>::f`` (a Rust
    trait method) keeps its outer brackets; ``(anonymous namespace)`` and operators stay."""
    if not any(c in name for c in "<( '{"):
        return name
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        c = name[i]
        j = _operator_end(name, i)
        if j > 0:
            out.append(name[i:j])
            i = j
            continue
        if name.startswith("'lambda", i):  # LLVM's demangler: main::'lambda'(int)::operator()
            j = name.find("'", i + 1)
            out.append("{lambda}")
            i = j + 1 if j > 0 else n
            continue
        if c in "<({":
            j = _closing(name, i)
            if j < 0:  # unbalanced: keep the rest as it is
                out.append(name[i:])
                break
            inner = name[i + 1 : j]
            if c == "{":
                out.append("{lambda}" if inner.startswith("lambda") else name[i : j + 1])
            elif c == "<":
                if inner.startswith("lambda"):
                    out.append("{lambda}")
                elif name.endswith("::", 0, i):  # Rust's turbofish (f::<i32>): v0 names only, legacy never
                    if out and out[-1] == ":" and len(out) > 1 and out[-2] == ":":
                        del out[-2:]
                elif i == 0:  # <A as B>::f: a qualified path, not arguments
                    out.append("<" + collapse_name(inner, top=False) + ">")
                else:
                    out.append("<T>")
            elif inner == "anonymous namespace":
                out.append(name[i : j + 1])
            else:  # a parameter list, and the qualifiers after it
                k = j + 1
                while m := _QUALIFIER.match(name, k):
                    k = m.end()
                i = k
                continue
            i = j + 1
            continue
        out.append(c)
        i += 1
    result = "".join(out).strip()
    return _drop_return_type(result) if top else result


def _drop_return_type(name: str) -> str:
    """``int foo<T>`` -> ``foo<T>`` (a template function's demangled name starts with its return type)."""
    depth = 0
    cut = -1
    for j, c in enumerate(name):
        if c in "<({[`":  # `anonymous namespace' (MSVC's undecorated names) holds a space too
            depth += 1
        elif c in ">)}]" or (c == "'" and depth > 0):
            depth -= 1
        elif depth == 0 and _operator_end(name, j) > 0:
            break  # an operator's name may hold a space (operator new, operator< <T>)
        elif c == " " and depth == 0:
            cut = j
    return name[cut + 1 :] if cut >= 0 else name


@dataclass(frozen=True)
class TraceStep:
    """What the signature rule did with one frame (``triage explain``): the frame, its token, and
    the verdict with the rule that gave it."""

    index: int
    frame: SignFrame
    token: str
    verdict: str
    """``kept``, ``skipped`` or ``unread`` (after the signature ended)."""
    rule: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "index": self.index,
            **self.frame.as_dict(),
            "token": self.token,
            "verdict": self.verdict,
            "rule": self.rule,
        }


def _python(frame: SignFrame) -> bool:
    """True for a Python frame (its module is a source file, or the interpreter's library)."""
    m = frame.module or ""
    return frame.offset is None and (m == PYTHON_LIBRARY or m.endswith((".py", ".pyw", ">")))


def signature_trace(frames: Sequence[SignFrame], rules: Rules = DEFAULT_RULES) -> list[TraceStep]:
    """Every frame the rule read, with what it did to it and why (see the module's docstring)."""
    frames = frames[:SIGN_DEPTH]
    tokens = [rules.token(f) for f in frames]
    start = rules.sentinel_at(tokens)
    # the runtime's own Python frame below the program's first (ctypes.string_at): it names the call
    # the same on every interpreter, where their native frames differ (symbols, inlining, stripping)
    own = next((i for i, f in enumerate(frames) if _python(f) and f.module != PYTHON_LIBRARY), len(frames))
    library = next((i for i, f in enumerate(frames[:own]) if f.module == PYTHON_LIBRARY), None)
    named = any(f.function for f in frames)
    steps: list[TraceStep] = []
    kept: list[str] = []
    in_runtime = ended = False

    def step(i: int, verdict: str, rule: str) -> None:
        f, t = frames[i], tokens[i]
        if verdict == "kept" and f.function and t != f.function:
            rule = f"{rule}; the name normalised (normalize, collapse)"
        steps.append(TraceStep(i, f, t, verdict, rule))

    for i in range(len(frames)):
        t, f = tokens[i], frames[i]
        if ended:
            step(i, "unread", "after the end of the signature")
            continue
        if start is not None and i < start:
            step(i, "skipped", f"above the sentinel {tokens[start]!r} (sentinel)")
            continue
        machinery = rules.machinery(t)
        runtime = rules.interpreter(f.module) and not machinery
        if i != start:
            if runtime and library is not None and i != library:
                step(
                    i,
                    "skipped",
                    f"a frame of a language runtime, where its library's Python frame #{library} names the call (interpreter_modules)",
                )
                continue
            if runtime and own < len(frames) and f.module != PYTHON_LIBRARY:
                step(
                    i,
                    "skipped",
                    f"a native frame of a language runtime, where the program's Python frame #{own} names the call (interpreter_modules)",
                )
                continue
            if runtime and not f.function and named:
                step(i, "skipped", "a language runtime's frame without a symbol (interpreter_modules)")
                continue
            if runtime and in_runtime:
                step(i, "skipped", "the runtime's innermost frame is already kept (interpreter_modules)")
                continue
            if machinery:
                step(i, "skipped", "machinery (irrelevant)")
                continue
            if not runtime and rules.system_module(f.module) and not rules.extends(t):
                step(i, "skipped", f"a frame of the system module {f.module} (irrelevant_modules)")
                continue
        if kept and kept[-1] == t:
            step(i, "skipped", "a recursion: the same token again")
            continue
        kept.append(t)
        in_runtime = in_runtime or runtime
        if i == start:
            step(i, "kept", "the sentinel: the signature starts here (sentinel)")
        elif runtime:
            step(
                i, "kept", "the runtime's innermost frame: what the program asked of it (interpreter_modules)"
            )
        elif rules.extends(t):
            step(i, "kept", "too generic to end the signature: the walk goes on (prefix)")
        else:
            step(i, "kept", "the first frame of the program's own code: it ends the signature")
        if len(kept) >= rules.max_frames:
            ended = True
            steps[-1] = replace(steps[-1], rule=steps[-1].rule + f"; max_frames ({rules.max_frames}) reached")
        elif not runtime and not rules.extends(t) and i != start:
            ended = True
    return steps


def signature(frames: Sequence[SignFrame], rules: Rules = DEFAULT_RULES) -> str:
    """The signature of a stack, innermost frame first (see the module's docstring)."""
    frames = frames[:SIGN_DEPTH]
    steps = signature_trace(frames, rules)  # one step per frame, each with its token
    out = [s.token for s in steps if s.verdict == "kept"]
    if not out:  # every frame is machinery: the first name that is not, else the innermost module
        named = next((s.token for s in steps if not rules.machinery(s.token)), None)
        module = next((f.module for f in frames if f.module), None)
        out.append(named or (_short(module) if module else "??"))
    return " | ".join(_bounded(t) for t in out)


MAX_TOKEN = 200
"""A signature token (a function's name) longer than this is cut, and a digest of the whole name
keeps two long names that share a start apart (Socorro caps a signature at 255 characters)."""


def _bounded(token: str) -> str:
    if len(token) <= MAX_TOKEN:
        return token
    digest = hashlib.sha256(token.encode(errors="surrogatepass")).hexdigest()[:12]
    return f"{token[: MAX_TOKEN - 30]}...[{len(token)} chars, {digest}]"


VERSION_SUFFIX = re.compile(r"(\.\d+)+$")


def program(dump_kind: str | None, executable: str | None) -> str:
    """The program a bucket is scoped by: the executable's file name without a trailing dotted version
    (``/usr/bin/python3.11`` -> ``python3``; Windows names in lower case, without ``.exe``); ``linux``
    for a kernel vmcore, ``windows`` for a Windows kernel dump; ``?`` when the dump does not say."""
    if dump_kind == "linux-kernel":
        return "linux"
    if dump_kind == "windows-kernel":
        return "windows"
    if not executable:
        return "?"
    name = os.path.basename(executable.replace("\\", "/").strip())
    if name.lower().endswith(".exe"):
        name = name[:-4].lower()
    return VERSION_SUFFIX.sub("", name) or name or "?"


FAULT_CLASSES = frozenset({
    "NULL_POINTER_READ", "NULL_POINTER_WRITE", "NULL_POINTER_EXECUTE", "INVALID_MEMORY_READ",
    "INVALID_MEMORY_WRITE", "WRITE_TO_READONLY_MEMORY", "EXECUTE_NON_EXECUTABLE", "STACK_OVERFLOW",
    "STACK_CORRUPTION", "BUS_ERROR", "ILLEGAL_INSTRUCTION", "BREAKPOINT", "DIVIDE_BY_ZERO", "ARITHMETIC_ERROR",
})  # fmt: skip
"""Classes where the processor refused one of the program's instructions: one kind, FAULT. The
same line fails as a read at -O0 and a write at -O2, as NULL or not by its input, as a trap where a
compiler proved the access undefined: the class tells them apart, the bucket must not."""
ABORT_CLASSES = frozenset({
    "ABORT", "ASSERTION_FAILURE", "HEAP_CORRUPTION", "DOUBLE_FREE", "STACK_BUFFER_OVERRUN",
})  # fmt: skip
"""Classes where a check in the program or its libraries stopped it: one kind, ABORT. One heap
overflow is caught by whichever of glibc's checks it trips first ("invalid pointer",
"munmap_chunk()", "double free or corruption (out)")."""


def failure_kind(crash_class: str | None, reason: str | None = None) -> str:
    """The part of the crash class a bucket is keyed by: ``FAULT`` (the processor refused an
    instruction), ``ABORT`` (a check stopped the program), ``KILLED_BY_SIGNAL(SIGQUIT)`` (a signal
    sent from outside, or by the process to itself: no fault, and a Ctrl-\\ and a watchdog's SIGSEGV
    that find a program in the same read are two stories), and any other class as it is
    (``DEADLOCK``, ``LIVE_DUMP``, a kernel's stop codes)."""
    cls = crash_class or "UNKNOWN"
    if cls in FAULT_CLASSES:
        return "FAULT"
    if cls in ABORT_CLASSES:
        return "ABORT"
    if cls == "KILLED_BY_SIGNAL" and reason:
        return f"{cls}({reason})"
    return cls


def bucket_key(crash_class: str | None, prog: str, sig: str, reason: str | None = None) -> str:
    """The bucket a dump falls into: ``KIND:program:signature`` (``FAULT:crashers:parse_header``).
    The kind (``failure_kind``) keeps apart two bugs of one function that fail differently (a NULL
    write and an assert() in ``parse``); the class itself is an attribute, stored and shown."""
    return storable(
        f"{failure_kind(crash_class, reason)}:{prog}:{sig}"
    )  # a file name's bytes that were not UTF-8 as \xNN


def bucket_id(key: str) -> str:
    """A short stable id for a bucket (what ``triage show`` takes)."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]
