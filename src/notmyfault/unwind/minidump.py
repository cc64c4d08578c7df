"""Stack walking for minidumps, as Breakpad's and rust-minidump's ``minidump-stackwalk`` walk.

From each frame, the caller is found by the first method that works:

1. **cfi**: the module's Breakpad symbol file has unwind rules for the pc:
   ``STACK CFI`` (x86_64, ARM64: the CFA and each register as postfix
   expressions) or ``STACK WIN`` (x86: frame data sizes and a program string);
2. **frame pointer**: the frame pointer points at the saved caller's frame
   pointer with the return address above it (not on Windows x64, where the
   frame pointer need not mark the frame);
3. **scan**: the first word on the stack above the stack pointer that can be a
   return address: the call before it (the word minus one) lies in a module
   (in a function, when the module has symbols; so a module's base address is
   none): a guess, so marked. On x86_64 the frame pointer saved below it is
   recovered only where the callee's frame pointer points at it.

The first method that gives a caller decides, in that order, for every frame
(the context frame too, even at a wild pc): the peers' rule. A walk ends where
the caller's pc is in the first page (null), its stack pointer does not climb,
or after a frame whose pc is non-canonical (never code).  Every memory read is confined to the thread's own
stack memory, as the peers confine it.  Frames carry how they were found:
``context``, ``cfi``, ``frame pointer`` or ``scan``.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from notmyfault.dumps.errors import UnreadableMemory
from notmyfault.dumps.minidump import CONTEXT_LAYOUTS, ContextLayout, Minidump, Thread
from notmyfault.unwind.frames import Frame
from notmyfault.unwind.symfile import SymbolFile, WinRecord
from notmyfault.unwind.windows import Symbols, frame_at, symbol_file

SCAN_WORDS = 40
"""Words a scan looks through; four times as many from a frame found by its context (or by CFI)."""


@dataclass(frozen=True)
class ArchRegs:
    """The register names a walk needs on one architecture (pc, sp and fp are its CONTEXT's)."""

    layout: ContextLayout
    callee_saved: tuple[str, ...]
    aliases: dict[str, str]
    """Names in symbol files (without '$') -> ours."""

    @property
    def word(self) -> int:
        """The pointer size."""
        return self.layout.word

    @property
    def pc(self) -> str:
        """The program counter's name."""
        return self.layout.pc

    @property
    def sp(self) -> str:
        """The stack pointer's name."""
        return self.layout.sp

    @property
    def fp(self) -> str:
        """The frame pointer's name."""
        return self.layout.fp


ARCH_REGS = {
    "x86": ArchRegs(CONTEXT_LAYOUTS["x86"], ("ebp", "ebx", "edi", "esi"), {}),
    "x86_64": ArchRegs(CONTEXT_LAYOUTS["x86_64"], ("rbx", "rbp", "r12", "r13", "r14", "r15"), {}),
    "aarch64": ArchRegs(
        CONTEXT_LAYOUTS["aarch64"],
        (*(f"x{i}" for i in range(19, 29)), "fp"),
        {"x29": "fp", "x30": "lr", "x31": "sp"},
    ),
}

Regs = dict[str, int]
Reader = Callable[[int], int | None]


class PostfixError(Exception):
    """A rule that cannot be evaluated (an unknown name, an unreadable address, a bad token)."""


def evaluate(
    tokens: list[str], env: dict[str, int], read: Reader, mask: int, assigned: set[str] | None = None
) -> list[int]:
    """Run a Breakpad postfix program; ``=`` assigns into ``env``; return what is left on the stack.

    Operators: ``+ - * / %``, ``@`` (align down), ``^`` (dereference); an
    operand is a number or a name in ``env``.
    """
    stack: list[int | str] = []

    def value(item: int | str) -> int:
        if isinstance(item, int):
            return item
        if item in env:
            return env[item]
        raise PostfixError(f"{item} is not known")

    for tok in tokens:
        if tok in ("+", "-", "*", "/", "%", "@"):
            if len(stack) < 2:
                raise PostfixError("an operator lacks operands")
            b, a = value(stack.pop()), value(stack.pop())
            if tok in ("/", "%", "@") and b == 0:
                raise PostfixError("division by zero")
            result = _binary(tok, a, b)
            stack.append(result & mask)
        elif tok == "^":
            if not stack:
                raise PostfixError("^ lacks an operand")
            got = read(value(stack.pop()))
            if got is None:
                raise PostfixError("a dereference reads outside the stack")
            stack.append(got)
        elif tok == "=":
            if len(stack) < 2:
                raise PostfixError("= lacks operands")
            v, name = value(stack.pop()), stack.pop()
            if not isinstance(name, str):
                raise PostfixError("= assigns to a number")
            env[name] = v
            if assigned is not None:
                assigned.add(name)
        else:
            try:
                stack.append(int(tok, 0) & mask)
            except ValueError:
                if not tok or not (tok[0] in "$." or tok[0].isalpha()):
                    raise PostfixError(f"bad token {tok!r}") from None
                stack.append(tok)
    return [value(x) for x in stack]


def _binary(op: str, a: int, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b
    if op == "%":
        return a % b
    return a & ~(b - 1)  # @: align down


class Walker:
    """Walks the threads of one minidump, with one source of Breakpad symbols (or none)."""

    def __init__(self, md: Minidump, symbols: Symbols = None) -> None:
        """Walk ``md``'s threads, with Breakpad symbol files from ``symbols`` when given."""
        self.md = md
        self.symbols = symbols
        self.arch = ARCH_REGS.get(md.arch)
        self.mask = (1 << (8 * self.arch.word)) - 1 if self.arch else 0
        si = md.system_info
        self.windows = si is not None and si.platform_id < 0x8000

    def _syms(self, addr: int) -> tuple[SymbolFile | None, int]:
        module = self.md.module_at(addr)
        if module is None:
            return None, 0
        return symbol_file(self.symbols, module), module.base

    # ------------------------------------------------------------------ walk

    def frames(self, thread: Thread) -> list[Frame]:
        """The thread's frames, innermost first (none for a thread without registers)."""
        arch = self.arch
        if thread.pc is None or thread.sp is None or arch is None:
            return []
        lo, hi = thread.stack_start, thread.stack_start + thread.stack_size
        word = arch.word
        fmt = "<I" if word == 4 else "<Q"

        def read(addr: int) -> int | None:
            if not lo <= addr <= hi - word:
                return None
            try:
                return int(struct.unpack(fmt, self.md.read(addr, word))[0])
            except UnreadableMemory:
                return None

        regs: Regs = dict(thread.regs)
        how = "context"
        out = [frame_at(self.md, 0, regs[arch.pc], regs[arch.sp], how, self.symbols)]
        callee_params = 0
        # no cap but the stack's own size: each caller's sp must climb inside the thread's stack
        # memory, a word at least, so a real walk ends before one frame per stack word (a cap of
        # 256 cut a deep recursion silently)
        while len(out) <= thread.stack_size // word:
            instruction = regs[arch.pc] - (0 if how == "context" else 1)
            params, callee_params = callee_params, 0  # only a STACK WIN step hands its size on
            if (found := self._by_cfi(regs, instruction, read, params)) is not None:
                caller, how, callee_params = found[0], "cfi", found[1]
            elif (caller_fp := self._by_frame_pointer(regs, read, how)) is not None:
                caller, how = caller_fp, "frame pointer"
            elif (caller_scan := self._by_scan(regs, read, how)) is not None:
                caller, how = caller_scan, "scan"
            else:
                break
            pc, sp = caller.get(arch.pc), caller.get(arch.sp)
            if pc is None or sp is None or pc < 4096 or sp <= regs[arch.sp]:
                break
            out.append(frame_at(self.md, len(out), pc, sp, how, self.symbols))
            if self._non_canonical(pc):
                break  # no instruction was ever there: nothing of this frame is real, so no caller
            regs = caller
        return out

    # ------------------------------------------------------------------- cfi

    def _by_cfi(
        self, regs: Regs, instruction: int, read: Reader, callee_params: int
    ) -> tuple[Regs, int] | None:
        arch = self.arch
        assert arch is not None
        syms, base = self._syms(instruction)
        if syms is None or arch.sp not in regs:
            return None
        rva = instruction - base
        if self.md.arch == "x86":
            rec = syms.win_at(rva)
            if rec is not None:
                caller = self._by_win(regs, rec, read, callee_params)
                return (caller, rec.params) if caller is not None else None
        rules = syms.cfi_at(rva)
        if rules is None:
            return None
        caller = self._apply_cfi(regs, rules, read) if ".cfa" in rules else None
        return (caller, 0) if caller is not None else None

    def _name(self, name: str) -> str:
        assert self.arch is not None
        bare = name.lstrip("$")
        return self.arch.aliases.get(bare, bare)

    def _apply_cfi(self, regs: Regs, rules: dict[str, str], read: Reader) -> Regs | None:
        arch = self.arch
        assert arch is not None
        env: dict[str, int] = {}
        for name, value in regs.items():
            env[name] = env["$" + name] = value
        for theirs, ours in arch.aliases.items():
            if ours in regs:
                env[theirs] = env["$" + theirs] = regs[ours]
        try:
            (cfa,) = evaluate(rules[".cfa"].split(), env, read, self.mask)[-1:]
            env[".cfa"] = cfa
            caller = {r: regs[r] for r in arch.callee_saved if r in regs}
            for name, expr in rules.items():
                if name in (".cfa", ".ra"):
                    continue
                with contextlib.suppress(PostfixError, ValueError):
                    (caller[self._name(name)],) = evaluate(expr.split(), env, read, self.mask)[-1:]
            if ".ra" in rules:
                (ra,) = evaluate(rules[".ra"].split(), env, read, self.mask)[-1:]
            elif "lr" in caller or "lr" in regs:  # ARM: the return address stays in the link register
                ra = caller.get("lr", regs.get("lr", 0))
            else:
                return None
        except (PostfixError, ValueError):
            return None
        caller[arch.pc] = ra
        caller[arch.sp] = cfa
        return caller

    def _by_win(self, regs: Regs, rec: WinRecord, read: Reader, callee_params: int) -> Regs | None:
        """x86 frame data: Breakpad's program-string evaluation (StackwalkerX86's rules)."""
        env: dict[str, int] = {}
        for r in ("ebp", "esp", "ebx", "esi", "edi"):
            if r in regs:
                env["$" + r] = regs[r]
        env[".cbCalleeParams"] = callee_params
        env[".cbSavedRegs"] = rec.saved_regs
        env[".cbLocals"] = rec.locals
        env[".cbParams"] = rec.params
        if rec.program:
            program = rec.program
        elif rec.allocates_base_pointer:
            program = (
                "$eip .raSearchStart ^ = $esp .raSearchStart 4 + = "
                "$ebp $esp .cbCalleeParams - .cbSavedRegs - 8 - ^ ="
            )
        else:
            program = "$eip .raSearchStart ^ = $esp .raSearchStart 4 + ="
        search = regs["esp"] + callee_params + rec.locals + rec.saved_regs
        if "@" in program and "ebp" in regs:
            search = regs["ebp"] + 4
        env[".raSearchStart"] = env[".raSearch"] = search & self.mask
        assigned: set[str] = set()
        try:
            evaluate(program.split(), env, read, self.mask, assigned)
        except PostfixError:
            return None
        if not {"$eip", "$esp"} <= assigned:  # a program must give at least these two
            return None
        # callee-saved registers the program does not restore keep their values (env starts with them)
        return {r: env["$" + r] for r in ("eip", "esp", "ebp", "ebx", "esi", "edi") if "$" + r in env}

    # --------------------------------------------------------- frame pointer

    def _by_frame_pointer(self, regs: Regs, read: Reader, how: str) -> Regs | None:
        arch = self.arch
        assert arch is not None
        if (self.windows and self.md.arch == "x86_64") or arch.fp not in regs:
            return None
        fp, word = regs[arch.fp], arch.word
        if fp >= self.mask - 2 * word:
            return None
        saved_fp, ret = read(fp), read(fp + word)
        if saved_fp is None or ret is None:
            return None
        caller_sp = fp + 2 * word
        if self.md.arch == "aarch64" and how == "context" and "lr" in regs:
            # the frame's own return address is still in the link register; the record holds the caller's
            return {"pc": regs["lr"], "lr": ret, "fp": saved_fp, "sp": caller_sp}
        if self.md.arch != "x86":
            if caller_sp <= fp or saved_fp < caller_sp or read(saved_fp) is None:
                return None
            if self._non_canonical(ret) or read(caller_sp) is None:
                return None
        caller = {arch.pc: ret, arch.sp: caller_sp, arch.fp: saved_fp}
        if self.md.arch == "aarch64":
            caller["lr"] = ret
        return caller

    def _non_canonical(self, addr: int) -> bool:
        return self.md.arch == "x86_64" and 0x7FFFFFFFFFFF < addr < 0xFFFF800000000000

    # ------------------------------------------------------------------ scan

    def _code(self, addr: int) -> bool:
        """Whether ``addr`` could be a return address: the call before it (``addr - 1``) lies in a
        module, in a function where the module has symbols. A module's base address is no return
        address (its first byte is a header, and no call precedes it)."""
        if addr == 0 or self._non_canonical(addr):
            return False
        module = self.md.module_at(addr - 1)
        if module is None:
            return False
        syms = symbol_file(self.symbols, module)
        return syms is None or syms.has_code_at(addr - 1 - module.base)

    def _by_scan(self, regs: Regs, read: Reader, how: str) -> Regs | None:
        arch = self.arch
        assert arch is not None
        if arch.sp not in regs:
            return None
        sp, word = regs[arch.sp], arch.word
        trusted = how == "context" or (how == "cfi" and self.md.arch != "x86")
        for i in range(SCAN_WORDS * 4 if trusted else SCAN_WORDS):
            at = sp + i * word
            candidate = read(at)
            if candidate is None:
                return None
            if not self._code(candidate):
                continue
            caller = {arch.pc: candidate, arch.sp: at + word}
            if i > 0:
                saved = read(at - word)
                last_fp = regs.get(arch.fp)
                # x86_64 (as minidump-stackwalk's amd64 walker): the saved frame pointer below the
                # return address is taken only where the callee's frame pointer points at it
                pushed = self.md.arch != "x86_64" or last_fp == at - word
                if (
                    pushed
                    and saved is not None
                    and saved > at
                    and saved - (at - word) <= 128 * 1024
                    and read(saved) is not None
                ):
                    caller[arch.fp] = saved
                elif last_fp is not None and last_fp >= at + word and read(last_fp) is not None:
                    caller[arch.fp] = last_fp
            return caller
        return None
