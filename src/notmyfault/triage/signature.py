"""Crash signatures: which frames of the crashing stack name a bug, by a rule kept as data.

The rule (as Socorro's signature generation, with our own lists):

1. Each frame becomes a token: its function name; else ``module+0xoffset`` (the offset from the
   module's load address, so the token survives ASLR); else ``??`` (a pc in no module).
2. Leading frames that match ``skip`` are dropped: the machinery between the bug and the dump
   (``raise``, ``abort``, glibc's heap checks, the kernel's bug check).
3. From the first frame left, frames are taken while they match ``prefix`` (frames too generic to
   name a bug: ``free``, ``memcpy``, an unknown pc) and then one more, the first that does not,
   at most ``max_frames`` in all.
4. Repeated tokens in a row (a recursion) count once.

The signature is the tokens joined by `` | ``; the bucket is the crash class and the signature
(``NULL_POINTER_WRITE myfault_null_deref``), so that two bugs in one function that fail differently
stay apart. Function names do not move with ASLR, rebuilds or the dump's format; module offsets
survive ASLR but not a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

DEFAULT_SKIP = (
    # glibc: the way from a failed check to the signal that dumped
    r"__pthread_kill_implementation", r"__pthread_kill_internal", r"__GI___pthread_kill", r"pthread_kill",
    r"__GI_raise", r"raise", r"__GI_abort", r"abort", r"__libc_message(_impl)?", r"malloc_printerr",
    r"__fortify_fail", r"__stack_chk_fail", r"__assert_fail(_base)?", r"__GI___assert_fail",
    r"_int_free(_merge_chunk|_create_chunk)?", r"_int_malloc", r"_int_realloc", r"__restore_rt",
    # Windows: the bug check itself
    r"KeBugCheckEx", r"KiBugCheckDispatch", r"KiPageFault", r"KiTrap0E",
    # Linux kernel: from the fault or the detector to the panic (and QEMU's pvpanic), and a sleep
    r"pvpanic_\w+", r"(atomic_)?notifier_call_chain", r"panic", r"nmi_panic(\.cold)?", r"oops_end(\.cold)?",
    r"page_fault_oops", r"handle_page_fault", r"(asm_)?exc_\w+", r"do_trap(_no_signal)?", r"do_error_trap",
    r"handle_invalid_op", r"handle_stack_overflow", r"unknown_nmi_error(\.cold)?", r"default_do_nmi",
    r"kernelmode_fixup_or_oops", r"(__)?bad_area_nosemaphore", r"do_(user|kern)_addr_fault",
    r"set_freepointer", r"(do_|__)?slab_free", r"__kmem_cache_free", r"free_to_partial_list",
    r"add_taint", r"slab_err", r"object_err", r"check_bytes_and_report", r"check_object",
    r"free_(debug_processing|consistency_checks)", r"rep_nop", r"cpu_relax", r"context_switch",
    r"__schedule", r"schedule(_timeout|_preempt_disabled)?", r"(do_|__)?wait_for_common",
    r"__mutex_lock(_common|_slowpath)?(\.constprop\.\d+)?", r"mutex_lock",
)  # fmt: skip
DEFAULT_PREFIX = (
    r"free", r"cfree", r"__libc_free", r"__GI___libc_free", r"malloc", r"__libc_malloc", r"realloc",
    r"__libc_realloc", r"calloc", r"__libc_calloc", r"operator (new|delete)(\[\])?",
    r"mem(cpy|move|set|cmp)", r"__mem(cpy|move|set|cmp)_\w+", r"str(len|cpy|cmp|ncpy|ncmp|chr)",
    r"__str(len|cpy|cmp|ncpy|ncmp|chr)_\w+", r"\?\?",
    # Linux kernel allocators
    r"kfree", r"kmem_cache_(alloc|free)", r"__?kmalloc", r"set_freepointer", r"(do_|__)?slab_free", r"v(free|malloc)",
)  # fmt: skip


def _alternatives(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression matching any of ``patterns`` (none: matching nothing)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


@dataclass(frozen=True)
class Rules:
    """The signature rule's data: regular expressions matched against whole tokens."""

    skip: tuple[str, ...] = DEFAULT_SKIP
    prefix: tuple[str, ...] = DEFAULT_PREFIX
    max_frames: int = 5

    @cached_property
    def _skip(self) -> re.Pattern[str]:
        return _alternatives(self.skip)

    @cached_property
    def _prefix(self) -> re.Pattern[str]:
        return _alternatives(self.prefix)

    def skips(self, token: str) -> bool:
        """True if ``token`` is machinery to drop from the top of the stack."""
        return self._skip.fullmatch(token) is not None

    def extends(self, token: str) -> bool:
        """True if ``token`` is too generic to end a signature."""
        return self._prefix.fullmatch(token) is not None

    def digest(self) -> str:
        """A short hash of the rules, stored with each signature computed by them."""
        text = json.dumps({"skip": self.skip, "prefix": self.prefix, "max_frames": self.max_frames})
        return hashlib.sha256(text.encode()).hexdigest()[:12]


DEFAULT_RULES = Rules()


def load_rules(path: str | Path) -> Rules:
    """Rules from a JSON file: {"skip": [...], "prefix": [...], "max_frames": N}; keys left out keep
    the defaults. ValueError with the reason if the file is not such an object."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read signature rules from {path}: {e}") from e
    if not isinstance(data, dict) or set(data) - {"skip", "prefix", "max_frames"}:
        raise ValueError(f"{path}: signature rules are an object with skip, prefix and max_frames")
    try:
        rules = Rules(
            skip=tuple(str(p) for p in data.get("skip", DEFAULT_SKIP)),
            prefix=tuple(str(p) for p in data.get("prefix", DEFAULT_PREFIX)),
            max_frames=int(data.get("max_frames", 5)),
        )
        rules.skips("x")
        rules.extends("x")
    except (TypeError, ValueError, re.error) as e:
        raise ValueError(f"{path}: bad signature rules: {e}") from e
    if rules.max_frames < 1:
        raise ValueError(f"{path}: max_frames must be at least 1")
    return rules


CLONE_SUFFIX = re.compile(r"(\.(cold|isra|constprop|part|lto_priv)(\.\d+)?)+$")
"""What GCC appends to the functions it splits or specializes (``oops_end.cold``,
``myfault_stack_overflow.isra.0``): a property of one build, not of the code."""


def token(function: str | None, module: str | None, offset: int | None) -> str:
    """A frame as a signature token: the function (without GCC's clone suffixes); else
    module+0xoffset; else ??."""
    if function:
        return CLONE_SUFFIX.sub("", function) or function
    if module and offset is not None:
        return f"{module}+{offset:#x}"
    return "??"


def signature(tokens: list[str], rules: Rules = DEFAULT_RULES) -> str:
    """The signature of a stack given as tokens, innermost first."""
    i = 0
    while i < len(tokens) - 1 and rules.skips(tokens[i]):
        i += 1
    out: list[str] = []
    for t in tokens[i:]:
        if out and out[-1] == t:
            continue
        out.append(t)
        if len(out) >= rules.max_frames or not rules.extends(t):
            break
    return " | ".join(out) if out else "??"


def bucket_key(crash_class: str | None, sig: str) -> str:
    """The bucket a dump falls into: its crash class and its signature."""
    return f"{crash_class or 'UNKNOWN'} {sig}"


def bucket_id(key: str) -> str:
    """A short stable id for a bucket (what ``triage show`` takes)."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]
