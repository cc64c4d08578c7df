/*
 * myfault_pool.c: leaked "pool" blocks, each starting with a pool header.
 *
 * paged     anonymous private memory, every page written (committed, swappable)
 * nonpaged  the same, locked with mlock (Mlocked / Unevictable; never swapped)
 * shared    a System V shared memory segment (Shmem): a paged leak that outlives
 *           the process, the way a driver's pool leak outlives NotMyfault.exe
 * kernel    messages on System V message queues: the kernel copies each message
 *           into memory it allocates with kmalloc (unreclaimable slab, SUnreclaim),
 *           which is not part of the process's pages, cannot be swapped, and
 *           outlives the process until the queue is removed
 */
#include "myfault.h"

#include <errno.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <unistd.h>

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

const char myfault_default_tag[4] = {'L', 'e', 'a', 'k'};

static void myfault_write_header(unsigned char *block, uint32_t pool, uint64_t size, const char *tag,
                                 uint32_t seq)
{
    struct myfault_pool_header h;
    memcpy(h.magic, MYFAULT_POOL_MAGIC, sizeof h.magic);
    memcpy(h.tag, tag ? tag : myfault_default_tag, sizeof h.tag);
    h.pool = pool;
    h.size = size;
    h.seq = seq;
    h.pid = (uint32_t)getpid();
    memcpy(block, &h, sizeof h);
}

/* Write one word at the start of every page after the first, so each page is
 * really allocated (and not one shared zero page) and no two pages are alike. */
static void myfault_commit_pages(unsigned char *block, uint64_t size, uint32_t seq)
{
    long page = sysconf(_SC_PAGESIZE);
    for (uint64_t off = (uint64_t)page; off < size; off += (uint64_t)page) {
        uint64_t word = ((uint64_t)seq << 32) | (off / (uint64_t)page);
        memcpy(block + off, &word, sizeof word);
    }
}

/* Leak one block of `size` bytes (a multiple of the page size) from the paged
 * or nonpaged pool.  Returns its address, or NULL with errno set. */
MYFAULT_API void *myfault_leak_block(int pool, uint64_t size, const char *tag, uint32_t seq)
{
    /* MAP_POPULATE faults every page in with one call (as mlock does for the
     * nonpaged pool) instead of one fault per page: about twice as fast. */
    unsigned char *block =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (block == MAP_FAILED)
        return NULL;
    if (pool == MYFAULT_POOL_NONPAGED && mlock(block, size) != 0) {
        int saved = errno;
        munmap(block, size);
        errno = saved;
        return NULL;
    }
    myfault_write_header(block, (uint32_t)pool, size, tag, seq);
    myfault_commit_pages(block, size, seq);
    return block;
}

/* Leak one block into a new System V shared memory segment with `key`.
 * Returns the segment id, or -1 with errno set. */
MYFAULT_API int myfault_leak_shm(key_t key, uint64_t size, const char *tag, uint32_t seq)
{
    int id = shmget(key, size, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0)
        return -1;
    unsigned char *block = shmat(id, NULL, 0);
    if (block == (void *)-1) {
        int saved = errno;
        shmctl(id, IPC_RMID, NULL);
        errno = saved;
        return -1;
    }
    myfault_write_header(block, MYFAULT_POOL_SHARED, size, tag, seq);
    myfault_commit_pages(block, size, seq);
    shmdt(block);
    return id;
}

/* Leak one message of `size` bytes (header included) onto queue `msqid`.
 * The message type is 1.  Returns 0, or -1 with errno set. */
MYFAULT_API int myfault_leak_msg(int msqid, uint64_t size, const char *tag, uint32_t seq)
{
    struct {
        long mtype;
        unsigned char text[8192];
    } msg;
    if (size < sizeof(struct myfault_pool_header) || size > sizeof msg.text) {
        errno = EINVAL;
        return -1;
    }
    msg.mtype = 1;
    memset(msg.text, 0, size);
    myfault_write_header(msg.text, MYFAULT_POOL_KERNEL, size, tag, seq);
    return msgsnd(msqid, &msg, size, IPC_NOWAIT);
}

static int myfault_tag_arg(PyObject *obj, const char **tag)
{
    if (obj == Py_None) {
        *tag = NULL;
        return 0;
    }
    if (!PyBytes_Check(obj) || PyBytes_GET_SIZE(obj) != 4) {
        PyErr_SetString(PyExc_ValueError, "a pool tag is exactly 4 bytes");
        return -1;
    }
    *tag = PyBytes_AS_STRING(obj);
    return 0;
}

PyObject *myfault_py_leak_block(PyObject *self, PyObject *args)
{
    (void)self;
    int pool;
    unsigned long long size;
    unsigned int seq;
    PyObject *tag_obj;
    const char *tag;
    void *block;
    if (!PyArg_ParseTuple(args, "iKOI", &pool, &size, &tag_obj, &seq) || myfault_tag_arg(tag_obj, &tag) < 0)
        return NULL;
    if (pool != MYFAULT_POOL_PAGED && pool != MYFAULT_POOL_NONPAGED) {
        PyErr_SetString(PyExc_ValueError, "leak_block takes the paged or the nonpaged pool");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    block = myfault_leak_block(pool, size, tag, seq);
    Py_END_ALLOW_THREADS
    if (block == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromVoidPtr(block);
}

PyObject *myfault_py_free_block(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned long long addr, size;
    if (!PyArg_ParseTuple(args, "KK", &addr, &size))
        return NULL;
    if (munmap((void *)(uintptr_t)addr, size) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

PyObject *myfault_py_shm_block(PyObject *self, PyObject *args)
{
    (void)self;
    int key;
    unsigned long long size;
    unsigned int seq;
    PyObject *tag_obj;
    const char *tag;
    int id;
    if (!PyArg_ParseTuple(args, "iKOI", &key, &size, &tag_obj, &seq) || myfault_tag_arg(tag_obj, &tag) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    id = myfault_leak_shm((key_t)key, size, tag, seq);
    Py_END_ALLOW_THREADS
    if (id < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(id);
}

PyObject *myfault_py_msg_queue(PyObject *self, PyObject *args)
{
    (void)self;
    int key;
    if (!PyArg_ParseTuple(args, "i", &key))
        return NULL;
    int id = msgget((key_t)key, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(id);
}

PyObject *myfault_py_msg_block(PyObject *self, PyObject *args)
{
    (void)self;
    int msqid;
    unsigned long long size;
    unsigned int seq;
    PyObject *tag_obj;
    const char *tag;
    if (!PyArg_ParseTuple(args, "iKOI", &msqid, &size, &tag_obj, &seq) || myfault_tag_arg(tag_obj, &tag) < 0)
        return NULL;
    if (myfault_leak_msg(msqid, size, tag, seq) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* The pool header of a System V object: kind "shm" (attach read-only) or
 * "msg" (copy the first message without removing it, MSG_COPY). */
PyObject *myfault_py_ipc_header(PyObject *self, PyObject *args)
{
    (void)self;
    const char *kind;
    int id;
    struct {
        long mtype;
        unsigned char text[65536];
    } *msg;
    if (!PyArg_ParseTuple(args, "si", &kind, &id))
        return NULL;
    if (strcmp(kind, "shm") == 0) {
        unsigned char *p = shmat(id, NULL, SHM_RDONLY);
        if (p == (void *)-1)
            return PyErr_SetFromErrno(PyExc_OSError);
        PyObject *out = PyBytes_FromStringAndSize((const char *)p, sizeof(struct myfault_pool_header));
        shmdt(p);
        return out;
    }
    if (strcmp(kind, "msg") == 0) {
        msg = PyMem_Malloc(sizeof *msg);
        if (msg == NULL)
            return PyErr_NoMemory();
        ssize_t n = msgrcv(id, msg, sizeof msg->text, 0, MSG_COPY | IPC_NOWAIT);
        if (n < 0) {
            PyMem_Free(msg);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        PyObject *out = PyBytes_FromStringAndSize((const char *)msg->text,
                                                  n < (ssize_t)sizeof(struct myfault_pool_header)
                                                      ? n
                                                      : (ssize_t)sizeof(struct myfault_pool_header));
        PyMem_Free(msg);
        return out;
    }
    PyErr_SetString(PyExc_ValueError, "kind is 'shm' or 'msg'");
    return NULL;
}

PyObject *myfault_py_ipc_remove(PyObject *self, PyObject *args)
{
    (void)self;
    const char *kind;
    int id, rc;
    if (!PyArg_ParseTuple(args, "si", &kind, &id))
        return NULL;
    if (strcmp(kind, "shm") == 0)
        rc = shmctl(id, IPC_RMID, NULL);
    else if (strcmp(kind, "msg") == 0)
        rc = msgctl(id, IPC_RMID, NULL);
    else {
        PyErr_SetString(PyExc_ValueError, "kind is 'shm' or 'msg'");
        return NULL;
    }
    if (rc != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}
