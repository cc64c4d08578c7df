/*
 * notmyfault.native.scan: the pointer scan of a conservative collector, at memory speed.
 *
 * unwind/pycore.py keeps, of a large core, the segments that the interpreter's state can reach:
 * every pointer-aligned word of a reachable segment is tested against the granules of the
 * segments not yet reached. Done word by word in Python, that test was most of the time
 * `analyze` spent on a 2 GB core; here it is one pass over the bytes.
 *
 * This module is no fault: it is not myfault, and nothing in it is ever blamed by a dump.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An open-addressed table of 32-bit keys; slot value 0 is free, so a key k is stored as k + 1
 * in 64 bits (a key of 0xffffffff stays distinct from a free slot). */
typedef struct {
    uint64_t *slots;
    uint8_t *hit;
    size_t mask;
} table_t;

static size_t hash32(uint32_t k)
{
    return (size_t)(((uint64_t)k * 0x9E3779B97F4A7C15ull) >> 32);
}

static int table_init(table_t *t, const uint32_t *keys, size_t n)
{
    size_t size = 16;
    while (size < 2 * n + 1)
        size <<= 1;
    t->slots = calloc(size, sizeof *t->slots);
    t->hit = calloc(size, 1);
    t->mask = size - 1;
    if (!t->slots || !t->hit)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t at = hash32(keys[i]) & t->mask;
        while (t->slots[at] && t->slots[at] != (uint64_t)keys[i] + 1)
            at = (at + 1) & t->mask;
        t->slots[at] = (uint64_t)keys[i] + 1;
    }
    return 0;
}

static void table_free(table_t *t)
{
    free(t->slots);
    free(t->hit);
}

PyDoc_STRVAR(granules_doc,
"granules(fd, ranges, shift, keys) -> list[int]\n\n"
"The distinct keys of ``keys`` (a buffer of native 32-bit unsigned ints) that some 8-byte word of\n"
"the file ``fd`` holds in its bytes ``shift`` to ``shift + 3`` (little-endian: the word shifted\n"
"right by 8 * shift bits, then its low 32 bits), in ascending order. Only the words of ``ranges``,\n"
"a sequence of (offset, size) pairs, are read, each as words from its offset; a range the file\n"
"ends in is read to the file's end.");

#define SCAN_BUFFER (8u << 20)

/* Scan ``size`` bytes of ``fd`` at ``offset``; 0, or -1 with errno set. */
static int scan_range(int fd, long long offset, long long size, unsigned bits, table_t *t,
                      unsigned char *buf, size_t *found, size_t nkeys)
{
    while (size > 0 && *found < nkeys) {
        size_t want = size < (long long)SCAN_BUFFER ? (size_t)size : SCAN_BUFFER;
        ssize_t got = pread(fd, buf, want, (off_t)offset);
        if (got < 0)
            return -1;
        size_t words = (size_t)got / 8;
        if (!words)
            return 0; /* the file ends here */
        for (size_t i = 0; i < words; i++) {
            uint64_t w;
            memcpy(&w, buf + 8 * i, 8);
            uint64_t k = (uint64_t)(uint32_t)(w >> bits) + 1;
            size_t at = hash32((uint32_t)(k - 1)) & t->mask;
            while (t->slots[at]) {
                if (t->slots[at] == k) {
                    if (!t->hit[at]) {
                        t->hit[at] = 1;
                        ++*found;
                    }
                    break;
                }
                at = (at + 1) & t->mask;
            }
        }
        offset += (long long)(8 * words);
        size -= (long long)(8 * words);
    }
    return 0;
}

static PyObject *granules(PyObject *self, PyObject *args)
{
    (void)self;
    int fd, shift;
    PyObject *ranges_arg;
    Py_buffer keys;
    if (!PyArg_ParseTuple(args, "iOiy*", &fd, &ranges_arg, &shift, &keys))
        return NULL;
    PyObject *out = NULL, *ranges = NULL;
    long long *spans = NULL;
    unsigned char *buf = NULL;
    uint32_t *hits = NULL;
    table_t t = {0};
    if (shift < 0 || shift > 4) {
        PyErr_SetString(PyExc_ValueError, "shift must be 0 to 4");
        goto done;
    }
    if (keys.len % sizeof(uint32_t)) {
        PyErr_SetString(PyExc_ValueError, "keys must be 32-bit unsigned ints");
        goto done;
    }
    ranges = PySequence_Fast(ranges_arg, "ranges must be a sequence of (offset, size)");
    if (!ranges)
        goto done;
    Py_ssize_t nranges = PySequence_Fast_GET_SIZE(ranges);
    spans = malloc(((size_t)nranges + 1) * 2 * sizeof *spans);
    if (!spans) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nranges; i++) {
        long long offset, size;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(ranges, i), "LL", &offset, &size))
            goto done;
        if (offset < 0) {
            PyErr_SetString(PyExc_ValueError, "a range's offset must not be negative");
            goto done;
        }
        spans[2 * i] = offset;
        spans[2 * i + 1] = size;
    }
    size_t nkeys = (size_t)keys.len / sizeof(uint32_t), found = 0;
    buf = malloc(SCAN_BUFFER);
    if (!buf || table_init(&t, (const uint32_t *)keys.buf, nkeys) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    int failed = 0, err = 0;
    unsigned bits = 8u * (unsigned)shift;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nranges && !failed; i++)
        if (scan_range(fd, spans[2 * i], spans[2 * i + 1], bits, &t, buf, &found, nkeys) < 0) {
            failed = 1;
            err = errno;
        }
    Py_END_ALLOW_THREADS
    if (failed) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    hits = malloc((found ? found : 1) * sizeof *hits);
    if (!hits) {
        PyErr_NoMemory();
        goto done;
    }
    size_t n = 0;
    for (size_t at = 0; at <= t.mask; at++)
        if (t.hit[at])
            hits[n++] = (uint32_t)(t.slots[at] - 1);
    out = PyList_New((Py_ssize_t)n);
    if (out) {
        for (size_t i = 0; i < n; i++) {
            PyObject *v = PyLong_FromUnsignedLong(hits[i]);
            if (!v) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, v);
        }
        if (out && PyList_Sort(out) < 0)
            Py_CLEAR(out);
    }
done:
    free(hits);
    free(buf);
    free(spans);
    Py_XDECREF(ranges);
    table_free(&t);
    PyBuffer_Release(&keys);
    return out;
}

static PyMethodDef methods[] = {
    {"granules", granules, METH_VARARGS, granules_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "scan", "The pointer scan of unwind.pycore, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_scan(void)
{
    return PyModule_Create(&module);
}
