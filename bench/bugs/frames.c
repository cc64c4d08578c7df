/* frames.c: crashes shaped for stack walkers (bench/frame_matrix.py), one per first argument.
   Each puts a different thing between the fault and main: deep or runaway recursion, alloca and
   variable-length arrays, a longjmp, a signal handler on the thread's stack or on a sigaltstack,
   a call through NULL or to an unmapped address, a callback from libc, blocked threads. The
   second argument, a number, changes the depth or the data. */
#define _GNU_SOURCE
#include <alloca.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile long sink;
long *volatile nowhere;
static long input;
static jmp_buf restart;

__attribute__((noinline)) void write_null(long v) { *nowhere = v; }

__attribute__((noinline)) long nest(long depth) {
    if (depth <= 0) {
        write_null(depth);
        return 0;
    }
    return nest(depth - 1) + 1; /* not a tail call: the frames stay */
}

__attribute__((noinline)) long runaway(long depth) {
    volatile char pad[64];
    pad[depth & 63] = (char)depth;
    return runaway(depth + 1) + pad[0];
}

__attribute__((noinline)) void fill_alloca(long n) {
    char *buf = alloca((size_t)n * 16 + 8);
    memset(buf, 1, (size_t)n * 16 + 8);
    sink = buf[n];
    write_null(n);
}

__attribute__((noinline)) void fill_vla(long n) {
    char buf[n * 24 + 8];
    memset(buf, 2, sizeof buf);
    sink = buf[n];
    write_null(n);
}

__attribute__((noinline)) void jump_back(void) { longjmp(restart, 1); }

__attribute__((noinline)) void after_jump(void) {
    if (setjmp(restart) == 0) {
        jump_back();
        return;
    }
    write_null(2);
}

static void on_segv(int sig) {
    (void)sig;
    sink = 7;
    write_null(3); /* a second fault inside the handler: the default action now */
}

__attribute__((noinline)) void fault_handled(int alternate) {
    static char altstack[1 << 16];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_NODEFER | SA_RESETHAND;
    if (alternate) {
        stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
        sigaltstack(&ss, NULL);
        sa.sa_flags |= SA_ONSTACK;
    }
    sigaction(SIGSEGV, &sa, NULL);
    write_null(4);
}

typedef void (*handler_fn)(long);
handler_fn volatile handlers[4];

__attribute__((noinline)) void call_null(long n) { handlers[n & 3](n); sink++; }

__attribute__((noinline)) void call_wild(long n) {
    handler_fn f = (handler_fn)(uintptr_t)(0x4000000000ul + 4 + (uintptr_t)n * 0x1000);
    f(n);
    sink++;
}

static int by_value(const void *a, const void *b) {
    if (*(const long *)a == 3) write_null(5);
    return (int)(*(const long *)a - *(const long *)b);
}

__attribute__((noinline)) void sort_values(void) {
    long v[6] = {5, 4, 3, 2, 1, 0};
    qsort(v, 6, sizeof v[0], by_value);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static volatile int started;

static void *waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    __sync_fetch_and_add(&started, 1);
    pthread_cond_wait(&never, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *napper(void *arg) {
    (void)arg;
    __sync_fetch_and_add(&started, 1);
    for (;;) pause();
    return NULL;
}

__attribute__((noinline)) void with_threads(long n) {
    pthread_t t[3];
    pthread_create(&t[0], NULL, waiter, NULL);
    pthread_create(&t[1], NULL, napper, NULL);
    pthread_create(&t[2], NULL, napper, (void *)n);
    while (started < 3) usleep(1000);
    usleep(20000); /* let them reach their waits */
    nest(n);
}

int main(int argc, char **argv) {
    const char *bug = argc > 1 ? argv[1] : "";
    input = argc > 2 ? atol(argv[2]) : 0;
    if (!strcmp(bug, "nest")) sink = nest(input);
    else if (!strcmp(bug, "runaway")) sink = runaway(input);
    else if (!strcmp(bug, "alloca")) fill_alloca(input + 3);
    else if (!strcmp(bug, "vla")) fill_vla(input + 3);
    else if (!strcmp(bug, "longjmp")) after_jump();
    else if (!strcmp(bug, "handler")) fault_handled(0);
    else if (!strcmp(bug, "altstack")) fault_handled(1);
    else if (!strcmp(bug, "call-null")) call_null(input);
    else if (!strcmp(bug, "call-wild")) call_wild(input);
    else if (!strcmp(bug, "qsort")) sort_values();
    else if (!strcmp(bug, "threads")) with_threads(input);
    else if (!strcmp(bug, "abort")) abort();
    else return 2;
    return 0;
}
