/*
 * myfault_hang.c: hangs, each in its own myfault_* function so a dump of the
 * hung process shows where every thread hangs, and the watchdog that crashes
 * the process after a while (the picture of the keyboard-initiated crash).
 *
 * deadlock    two threads take two mutexes in opposite order (state S, futex wait)
 * spin        N threads loop without end (state R), optionally SCHED_FIFO
 * unkillable  the calling thread vforks a child that never execs or exits, so it
 *             waits in the kernel for the child (state D, wchan kernel_clone /
 *             wait_for_vfork_done).  The wait is killable: SIGKILL, and any
 *             signal whose default action ends the process (SIGTERM, SIGINT ...),
 *             end it; SIGSTOP, handled signals and core-dumping signals aimed at
 *             this thread do not wake it.  Killing the vfork child releases it.
 */
#include "myfault.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t myfault_lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t myfault_lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t myfault_both_hold;

static long myfault_tid(void)
{
    return (long)syscall(SYS_gettid);
}

MYFAULT_API void *myfault_deadlock_a(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&myfault_lock_a);
    fprintf(stderr, "myfault: deadlock thread %ld holds lock A, takes lock B\n", myfault_tid());
    pthread_barrier_wait(&myfault_both_hold);
    pthread_mutex_lock(&myfault_lock_b); /* held by thread B, which waits for A: forever */
    pthread_mutex_unlock(&myfault_lock_b);
    pthread_mutex_unlock(&myfault_lock_a);
    return NULL;
}

MYFAULT_API void *myfault_deadlock_b(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&myfault_lock_b);
    fprintf(stderr, "myfault: deadlock thread %ld holds lock B, takes lock A\n", myfault_tid());
    pthread_barrier_wait(&myfault_both_hold);
    pthread_mutex_lock(&myfault_lock_a);
    pthread_mutex_unlock(&myfault_lock_a);
    pthread_mutex_unlock(&myfault_lock_b);
    return NULL;
}

MYFAULT_API void *myfault_spin(void *arg)
{
    (void)arg;
    volatile unsigned long turns = 0;
    fprintf(stderr, "myfault: spin thread %ld spinning\n", myfault_tid());
    for (;;)
        turns++;
    return NULL;
}

MYFAULT_API void *myfault_watchdog(void *arg)
{
    double seconds = *(double *)arg;
    free(arg);
    if (seconds <= 0) {
        for (;;)
            pause();
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    fprintf(stderr, "myfault: watchdog thread %ld aborts the process after %.3g s\n", myfault_tid(), seconds);
    fflush(stderr);
    abort();
    return NULL;
}

/* Start the watchdog thread: it aborts the process after `seconds` (> 0), or
 * only waits (<= 0), which leaves a thread that can take signals while the
 * others are stuck.  Returns 0 or an errno value. */
MYFAULT_API int myfault_start_watchdog(double seconds)
{
    pthread_t t;
    double *arg = malloc(sizeof *arg);
    if (arg == NULL)
        return ENOMEM;
    *arg = seconds;
    int rc = pthread_create(&t, NULL, myfault_watchdog, arg);
    if (rc != 0)
        free(arg);
    else
        pthread_detach(t);
    return rc;
}

MYFAULT_API int myfault_hang_deadlock(void)
{
    pthread_t a, b;
    int rc;
    pthread_barrier_init(&myfault_both_hold, NULL, 2);
    if ((rc = pthread_create(&a, NULL, myfault_deadlock_a, NULL)) != 0)
        return rc;
    if ((rc = pthread_create(&b, NULL, myfault_deadlock_b, NULL)) != 0)
        return rc;
    pthread_join(a, NULL); /* never returns */
    pthread_join(b, NULL);
    return 0;
}

MYFAULT_API int myfault_hang_spin(int threads, int realtime)
{
    pthread_attr_t attr;
    pthread_t first = 0;
    int rc = 0;
    pthread_attr_init(&attr);
    if (realtime) {
        struct sched_param prio = {.sched_priority = 1};
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
        pthread_attr_setschedparam(&attr, &prio);
    }
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if ((rc = pthread_create(&t, &attr, myfault_spin, NULL)) != 0)
            break;
        if (i == 0)
            first = t;
    }
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return rc;
    pthread_join(first, NULL); /* never returns */
    return 0;
}

/* Returns the pid of the vfork child once it is gone (someone killed it). */
MYFAULT_API long myfault_hang_unkillable(void)
{
    sigset_t all;
    /* Block every signal on this thread, so that signals sent to the process
     * go to a thread that can act on them (the watchdog): a core-dumping
     * signal then dumps the process, which kills this thread too. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    fprintf(stderr, "myfault: thread %ld vforks a child that never execs: it now waits in D state\n",
            myfault_tid());
    fflush(stderr);
    pid_t parent = getpid();
    pid_t child = vfork();
    if (child == 0) {
        /* The vfork child shares our memory and stack: it must not return. It dies with the thread
         * that vforked it (a SIGKILL of the process ends that thread's killable wait), and it
         * closes its copies of stdin, stdout and stderr: left behind with PPid 1, it held the
         * output open and a reader of it waited for ever. */
        char line[96];
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(1);
        int n = snprintf(line, sizeof line, "myfault: vfork child %ld holds its parent; kill it to release\n",
                         (long)getpid());
        if (write(2, line, (size_t)n) < 0)
            _exit(1);
        close(0);
        close(1);
        close(2);
        for (;;)
            pause();
    }
    return (long)child;
}

PyObject *myfault_py_start_watchdog(PyObject *self, PyObject *args)
{
    (void)self;
    double seconds;
    if (!PyArg_ParseTuple(args, "d", &seconds))
        return NULL;
    int rc = myfault_start_watchdog(seconds);
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

PyObject *myfault_py_hang(PyObject *self, PyObject *args)
{
    (void)self;
    const char *name;
    int threads = 1, realtime = 0;
    long result = 0;
    int rc = 0;
    if (!PyArg_ParseTuple(args, "s|ip", &name, &threads, &realtime))
        return NULL;
    if (strcmp(name, "deadlock") == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = myfault_hang_deadlock();
        Py_END_ALLOW_THREADS
    } else if (strcmp(name, "spin") == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = myfault_hang_spin(threads, realtime);
        Py_END_ALLOW_THREADS
    } else if (strcmp(name, "unkillable") == 0) {
        Py_BEGIN_ALLOW_THREADS
        result = myfault_hang_unkillable();
        Py_END_ALLOW_THREADS
        if (result < 0)
            return PyErr_SetFromErrno(PyExc_OSError);
    } else {
        PyErr_Format(PyExc_ValueError, "myfault has no hang named %s", name);
        return NULL;
    }
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(result);
}
