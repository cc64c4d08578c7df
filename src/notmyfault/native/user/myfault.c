/*
 * myfault: the native module that commits notmyfault's faults.
 *
 * This plays the part of Sysinternals' myfault.sys: every fault is committed
 * here, by its own exported, never-inlined function named myfault_<fault>, so
 * that a core dump blames "myfault" and names the fault.  The functions are
 * reached through one dispatcher, myfault_do_bug(), which stays on the stack
 * below the fault, so even a fault that destroys its own frame (stack-trash)
 * leaves a return address into this module for a stack scan to find.
 *
 * Build flags (see setup.py): -O1 with frame pointers, unwind tables, debug
 * info, no sibling-call optimisation, no stack protector and no
 * _FORTIFY_SOURCE, so that every distribution's compiler defaults give the
 * same fault and the same frames.
 *
 * Every fault function has the signature  void myfault_X(long arg).
 * Architecture-specific instructions sit behind #if blocks for x86_64, i386
 * and aarch64.
 */
#include "myfault.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* The faults below are bugs on purpose; the compiler's warnings about them
 * (infinite recursion, use after free) are expected and silenced here only.
 * Older compilers do not know these warnings, hence the unknown-option guards. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#pragma clang diagnostic ignored "-Winfinite-recursion"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Winfinite-recursion"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

/* The wild value written over a return address by stack-trash: canonical,
 * in user space on every 48-bit address layout, and far from anything the
 * kernel or the loader places, so it is never mapped. */
#define MYFAULT_WILD_PC ((uintptr_t)0x414141414141ULL)

/* Largest stack the stack-overflow fault will grow into (bytes).  The main
 * thread's stack grows up to RLIMIT_STACK; when that is unlimited the stack
 * would eat memory until the system runs short, so it is capped here. */
#define MYFAULT_STACK_CAP (8UL * 1024 * 1024)

static void myfault_note(const char *what, const void *addr)
{
    /* One line on stderr before the fault, so a person (and the watching
     * parent) knows the address the fault is about to touch. */
    fprintf(stderr, "myfault: %s %p\n", what, addr);
    fflush(stderr);
}

/* 1 high-irql: block every signal, then read a page that was just unmapped.
 * The user-mode picture of touching pageable memory at raised IRQL: the
 * process cannot be interrupted, and the memory is not there.  A fault that
 * hits a blocked SIGSEGV is still delivered (the kernel unblocks it and uses
 * the default action), so the process dies with SIGSEGV / SEGV_MAPERR. */
MYFAULT_API void myfault_high_irql(long arg)
{
    (void)arg;
    sigset_t all;
    long page = sysconf(_SC_PAGESIZE);
    volatile unsigned int *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if ((void *)p == MAP_FAILED)
        abort();
    p[2] = 0x4c65616bU; /* "Leak", little-endian */
    munmap((void *)p, (size_t)page);
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    myfault_note("reading unmapped", (const void *)&p[2]);
    unsigned int v = p[2];
    __asm__ volatile("" : : "r"(v));
}

/* 2 buffer-overflow: write past the end of a heap block, over the size field
 * of the chunk that follows it, then free the block.  glibc's free() checks
 * the next chunk's size and aborts with "free(): invalid next size".  The
 * block is too big for the tcache and too small for mmap, so the check runs
 * whatever the heap held before. */
MYFAULT_API void myfault_buffer_overflow(long arg)
{
    (void)arg;
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    unsigned char *volatile block = malloc(2000);
    if (block == NULL)
        abort();
    size_t usable = malloc_usable_size(block);
    myfault_note("overflowing heap block", block);
    memset(block, 'A', usable + sizeof(size_t));
    free(block);
}

/* 3 code-overwrite: write into this module's own machine code, which is
 * mapped read-only and executable: SIGSEGV / SEGV_ACCERR. */
MYFAULT_API void myfault_code_overwrite(long arg)
{
    (void)arg;
    volatile unsigned char *code = (volatile unsigned char *)(uintptr_t)&myfault_code_overwrite;
    myfault_note("writing code at", (const void *)code);
    *code = 0xcc;
}

/* 4 stack-trash: overwrite the saved frame pointer and the return address in
 * this function's frame record, then return.  The frame record layout is the
 * same on x86_64 ([fp] = saved fp, [fp+8] = return address) and aarch64
 * ([x29] = saved x29, [x29+8] = saved x30).  The return jumps to a wild,
 * unmapped address: SIGSEGV with the program counter outside any mapping. */
MYFAULT_API void myfault_stack_trash(long arg)
{
    (void)arg;
    void *volatile *frame = (void *volatile *)__builtin_frame_address(0);
    myfault_note("trashing return address at", (const void *)&frame[1]);
    frame[0] = (void *)MYFAULT_WILD_PC;
    frame[1] = (void *)MYFAULT_WILD_PC;
}

/* 5 null-deref: write through a NULL pointer (volatile, so the compiler
 * cannot turn it into a trap instruction): SIGSEGV at address 0. */
MYFAULT_API void myfault_null_deref(long arg)
{
    volatile int *volatile target = NULL;
    myfault_note("writing through", (const void *)target);
    *target = (int)arg;
}

/* 6 stack-overflow: recurse without end, each frame holding a small buffer,
 * until the stack runs into its guard: SIGSEGV / SEGV_MAPERR just below the
 * stack.  The recursion is the function calling itself, so the recursing
 * function is this one. */
MYFAULT_API void myfault_stack_overflow(long depth)
{
    volatile char pad[192];
    if (depth == 0) {
        struct rlimit lim;
        if (getrlimit(RLIMIT_STACK, &lim) == 0 &&
            (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur > MYFAULT_STACK_CAP)) {
            lim.rlim_cur = MYFAULT_STACK_CAP;
            setrlimit(RLIMIT_STACK, &lim);
        }
        myfault_note("recursing from", (const void *)pad);
    }
    pad[0] = (char)depth;
    myfault_stack_overflow(depth + 1);
    pad[1] = pad[0]; /* work after the call: no tail call */
}

/* 7 breakpoint: execute a hard-coded breakpoint instruction: SIGTRAP. */
MYFAULT_API void myfault_breakpoint(long arg)
{
    (void)arg;
    myfault_note("breakpoint in", (const void *)(uintptr_t)&myfault_breakpoint);
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("int3");
#elif defined(__aarch64__)
    __asm__ volatile("brk #0xf000");
#else
    raise(SIGTRAP);
#endif
}

/* 8 double-free: free the same heap block twice.  glibc detects it ("free():
 * double free detected in tcache 2") and aborts. */
MYFAULT_API void myfault_double_free(long arg)
{
    (void)arg;
    void *volatile block = malloc(64);
    myfault_note("freeing twice", block);
    free(block);
    free(block);
}

/* use-after-free: read a field of a block after freeing it.  The block is
 * large enough that glibc serves it with mmap and returns it to the kernel on
 * free, so the read always faults: SIGSEGV / SEGV_MAPERR inside the freed
 * block. */
MYFAULT_API void myfault_use_after_free(long arg)
{
    (void)arg;
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    volatile long *block = malloc(1024 * 1024);
    if (block == NULL)
        abort();
    block[64] = 0x4c65616b;
    free((void *)block);
    myfault_note("reading freed block", (const void *)&block[64]);
    long v = block[64];
    __asm__ volatile("" : : "r"(v));
}

/* abort: call abort(): SIGABRT raised by the C library (SI_TKILL). */
MYFAULT_API void myfault_abort(long arg)
{
    (void)arg;
    myfault_note("abort from", (const void *)(uintptr_t)&myfault_abort);
    abort();
}

/* divide-by-zero: integer division by zero.  x86 traps (SIGFPE /
 * FPE_INTDIV).  AArch64 has no trapping integer division (the result is 0),
 * so there myfault raises SIGFPE itself, which the dump shows as SI_TKILL. */
MYFAULT_API void myfault_divide_by_zero(long arg)
{
    volatile long numerator = 1 + arg;
    volatile long zero = 0;
    myfault_note("dividing by zero at", (const void *)(uintptr_t)&myfault_divide_by_zero);
#if defined(__x86_64__) || defined(__i386__)
    volatile long q = numerator / zero;
    (void)q;
#else
    (void)numerator;
    (void)zero;
    raise(SIGFPE);
#endif
}

/* illegal-instruction: execute an instruction that is defined to be
 * undefined (ud2 / udf): SIGILL. */
MYFAULT_API void myfault_illegal_instruction(long arg)
{
    (void)arg;
    myfault_note("illegal instruction in", (const void *)(uintptr_t)&myfault_illegal_instruction);
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("ud2");
#elif defined(__aarch64__)
    __asm__ volatile("udf #0");
#else
    __builtin_trap();
#endif
}

/* bus-error: map a page of an empty memory file and read it.  The page lies
 * beyond the end of the file: SIGBUS / BUS_ADRERR. */
MYFAULT_API void myfault_bus_error(long arg)
{
    (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    int fd = memfd_create("myfault-bus", 0);
    if (fd < 0)
        abort();
    volatile unsigned char *p = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    if ((void *)p == MAP_FAILED)
        abort();
    myfault_note("reading past end of file at", (const void *)p);
    unsigned char v = p[0];
    __asm__ volatile("" : : "r"(v));
}

/* jump-to-null: call through a NULL function pointer: SIGSEGV with the
 * program counter and the fault address at 0. */
MYFAULT_API void myfault_jump_to_null(long arg)
{
    void (*volatile target)(long) = NULL;
    myfault_note("calling", (const void *)(uintptr_t)target);
    target(arg);
}

/* signal: die by the signal numbered arg, the analog of NotMyfault's
 * /bugcheck CODE.  The signal is unblocked and set to its default action
 * first, so it takes effect whatever the interpreter did with it. */
MYFAULT_API void myfault_signal(long signo)
{
    sigset_t one;
    fprintf(stderr, "myfault: raising signal %ld\n", signo);
    fflush(stderr);
    signal((int)signo, SIG_DFL);
    sigemptyset(&one);
    sigaddset(&one, (int)signo);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise((int)signo);
}

typedef void (*myfault_fn)(long);

struct myfault_entry {
    const char *name;
    myfault_fn fn;
};

/* Kept in step with notmyfault.faults.catalog (a test checks it). */
static const struct myfault_entry myfault_table[] = {
    {"high-irql", myfault_high_irql},
    {"buffer-overflow", myfault_buffer_overflow},
    {"code-overwrite", myfault_code_overwrite},
    {"stack-trash", myfault_stack_trash},
    {"null-deref", myfault_null_deref},
    {"stack-overflow", myfault_stack_overflow},
    {"breakpoint", myfault_breakpoint},
    {"double-free", myfault_double_free},
    {"use-after-free", myfault_use_after_free},
    {"abort", myfault_abort},
    {"divide-by-zero", myfault_divide_by_zero},
    {"illegal-instruction", myfault_illegal_instruction},
    {"bus-error", myfault_bus_error},
    {"jump-to-null", myfault_jump_to_null},
    {"signal", myfault_signal},
};

#define MYFAULT_COUNT (sizeof(myfault_table) / sizeof(myfault_table[0]))

/* The dispatcher: "Do Bug".  Returns only if the fault did not kill the
 * process (for instance a signal whose default action is to ignore it).  The
 * volatile result keeps the call from becoming a tail call, so this frame
 * stays on the stack below every fault. */
MYFAULT_API int myfault_do_bug(const struct myfault_entry *entry, long arg)
{
    volatile int survived = 0;
    entry->fn(arg);
    survived = 1;
    return survived;
}

MYFAULT_API PyObject *myfault_py_do_bug(PyObject *self, PyObject *args)
{
    (void)self;
    const char *name;
    long arg = 0;
    if (!PyArg_ParseTuple(args, "s|l", &name, &arg))
        return NULL;
    for (size_t i = 0; i < MYFAULT_COUNT; i++) {
        if (strcmp(myfault_table[i].name, name) == 0) {
            int survived;
            fflush(stdout);
            fflush(stderr);
            survived = myfault_do_bug(&myfault_table[i], arg);
            return PyBool_FromLong(survived);
        }
    }
    PyErr_Format(PyExc_ValueError, "myfault has no fault named %R", args);
    return NULL;
}

static PyObject *myfault_py_faults(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *names = PyTuple_New((Py_ssize_t)MYFAULT_COUNT);
    if (names == NULL)
        return NULL;
    for (size_t i = 0; i < MYFAULT_COUNT; i++) {
        PyObject *s = PyUnicode_FromString(myfault_table[i].name);
        if (s == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, s);
    }
    return names;
}

static PyObject *myfault_py_wild_pc(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromUnsignedLongLong((unsigned long long)MYFAULT_WILD_PC);
}

static PyMethodDef myfault_methods[] = {
    {"do_bug", myfault_py_do_bug, METH_VARARGS,
     "do_bug(name, arg=0) -> bool\n\nCommit the fault called name. Returns only if the process "
     "survived it (True)."},
    {"faults", myfault_py_faults, METH_NOARGS,
     "faults() -> tuple[str, ...]\n\nThe names of the faults this module can commit."},
    {"wild_pc", myfault_py_wild_pc, METH_NOARGS,
     "wild_pc() -> int\n\nThe address stack-trash writes over its return address."},
    {"leak_block", myfault_py_leak_block, METH_VARARGS,
     "leak_block(pool, size, tag, seq) -> int\n\nLeak a paged (1) or nonpaged (2) block; its address."},
    {"free_block", myfault_py_free_block, METH_VARARGS, "free_block(address, size)\n\nFree a leaked block."},
    {"shm_block", myfault_py_shm_block, METH_VARARGS,
     "shm_block(key, size, tag, seq) -> int\n\nLeak a block in a new System V shm segment; its id."},
    {"msg_queue", myfault_py_msg_queue, METH_VARARGS, "msg_queue(key) -> int\n\nCreate a System V message queue."},
    {"msg_block", myfault_py_msg_block, METH_VARARGS,
     "msg_block(msqid, size, tag, seq)\n\nLeak one message of size bytes onto a queue."},
    {"ipc_header", myfault_py_ipc_header, METH_VARARGS,
     "ipc_header(kind, id) -> bytes\n\nThe pool header of a shm segment or of a queue's first message."},
    {"ipc_remove", myfault_py_ipc_remove, METH_VARARGS, "ipc_remove(kind, id)\n\nRemove a System V object."},
    {"hang", myfault_py_hang, METH_VARARGS,
     "hang(name, threads=1, realtime=False) -> int\n\nHang this thread (deadlock, spin, unkillable)."},
    {"start_watchdog", myfault_py_start_watchdog, METH_VARARGS,
     "start_watchdog(seconds)\n\nStart a thread that aborts the process after seconds (> 0), or just waits."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef myfault_module = {
    PyModuleDef_HEAD_INIT,
    "myfault",
    "The native module that commits notmyfault's faults (the analog of myfault.sys).",
    -1,
    myfault_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit_myfault(void)
{
    return PyModule_Create(&myfault_module);
}
