/*
 * myfault.h: what the parts of the native module myfault share.
 *
 * myfault.c       crashes, the dispatcher, and the Python module table
 * myfault_pool.c  leaked "pool" blocks: paged, nonpaged, System V shm and msg
 * myfault_hang.c  hangs: deadlock, spin, unkillable, and the watchdog
 */
#ifndef MYFAULT_H
#define MYFAULT_H

#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <stdint.h>

#define MYFAULT_API __attribute__((noinline, noclone, used, visibility("default")))

/* The pool header: the first 32 bytes of every leaked block (docs/pool-header.md).
 * Blocks are page-aligned, so an analyzer finds headers by looking at the start
 * of every page of a dump for the magic. */
#define MYFAULT_POOL_MAGIC "MYFAULT1" /* 8 bytes, no terminating NUL in the header */
#define MYFAULT_POOL_PAGED 1
#define MYFAULT_POOL_NONPAGED 2
#define MYFAULT_POOL_KERNEL 3
#define MYFAULT_POOL_SHARED 4 /* paged, in a persistent System V shm segment */

struct myfault_pool_header {
    char magic[8];    /* "MYFAULT1" */
    char tag[4];      /* the pool tag, e.g. "Leak" */
    uint32_t pool;    /* MYFAULT_POOL_* */
    uint64_t size;    /* bytes in the block, header included */
    uint32_t seq;     /* 0-based number of the block in its leak */
    uint32_t pid;     /* process that leaked it */
};

_Static_assert(sizeof(struct myfault_pool_header) == 32, "the pool header is 32 bytes");

/* The default tag lives here, in myfault's own read-only data, as "Leak" did in
 * myfault.sys: a search of the module for the tag finds its owner. */
extern const char myfault_default_tag[4];

PyObject *myfault_py_leak_block(PyObject *self, PyObject *args);
PyObject *myfault_py_free_block(PyObject *self, PyObject *args);
PyObject *myfault_py_shm_block(PyObject *self, PyObject *args);
PyObject *myfault_py_msg_queue(PyObject *self, PyObject *args);
PyObject *myfault_py_msg_block(PyObject *self, PyObject *args);
PyObject *myfault_py_ipc_header(PyObject *self, PyObject *args);
PyObject *myfault_py_ipc_remove(PyObject *self, PyObject *args);
PyObject *myfault_py_hang(PyObject *self, PyObject *args);
PyObject *myfault_py_start_watchdog(PyObject *self, PyObject *args);

#endif
