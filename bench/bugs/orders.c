/* orders.c: a small order book with sixteen bugs, one per first argument (see BUGS in
   bench/bucket_matrix.py). The second argument, 0 or 1, changes the data, and with it the faulting
   address or the failed check's message, never the bug. The functions are ordinary C: the compiler
   inlines, clones and tail-calls them as it likes at each optimisation level. */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item { long id; long qty; long price; };

volatile long sink;
static long input;
volatile long divisor;            /* set by a configuration nobody loaded */
char *volatile held, *volatile next_held;
char *volatile default_label = "read-only label";

struct item *volatile table[8]; /* filled by nobody: every lookup misses */

struct item *lookup(long id) { return table[id & 7]; }

void store(long *slot, long value) { *slot = value; }
void restock(long *slot) { store(slot, 10); sink++; }
void refund(long *slot) { store(slot, -1); sink++; }

void apply_delta(struct item *x, long d) {
    assert(d < 1000);
    x->qty += d;
}

static void *tally_worker(void *arg) {
    struct item *x = arg;
    sink += x->price;
    return NULL;
}

static int by_price(const void *a, const void *b) {
    const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
    return (x->price > y->price) - (x->price < y->price);
}

static void sort_orders(struct item **list, size_t n) { qsort(list, n, sizeof *list, by_price); }

static void on_signal(int sig) {
    struct item *x = lookup(sig + input);
    x->qty = 0;
}

size_t count_chars(const char *text) { return strlen(text); }

long descend(long depth) {
    volatile char frame[512];
    frame[depth % 512] = (char)depth;
    return descend(depth + 1) + frame[(depth + 7) % 512];
}

long ratio(long total, long count) { return total / count; }

void validate(struct item *x) {
    if (x->qty < 0) {
        fprintf(stderr, "negative quantity %ld\n", x->qty);
        abort();
    }
}

void release(char *block) { free(block); }

void unreachable_state(long state) {
    if (state < 100) __builtin_trap();
    sink = state;
}

void label_write(char *label) { label[input] = '!'; }

typedef void (*handler_t)(long);
handler_t volatile handlers[4]; /* installed by plugins: none are */

void dispatch(long op) { handlers[op & 3](op); }

void poke(uintptr_t address) { *(volatile long *)address = 1; }

void fill_name(char *name, size_t n) { memset(name, 'A' + (int)input, n); }

void drop_pair(char *a, char *b) {
    free(b);
    free(a);
}

static void flush_log(void) {
    struct item *x = lookup(input);
    sink = x->id;
}

int main(int argc, char **argv) {
    const char *bug = argc > 1 ? argv[1] : "";
    input = argc > 2 ? atol(argv[2]) : 0;
    if (!strcmp(bug, "store-restock")) restock((long *)(input * 64));
    else if (!strcmp(bug, "store-refund")) refund((long *)(input * 64));
    else if (!strcmp(bug, "apply-null")) apply_delta(lookup(input), 5);
    else if (!strcmp(bug, "apply-limit")) {
        struct item it = {1, 1, 1};
        apply_delta(&it, 5000 + input);
    } else if (!strcmp(bug, "thread")) {
        pthread_t t;
        pthread_create(&t, NULL, tally_worker, lookup(input));
        pthread_join(t, NULL);
    } else if (!strcmp(bug, "qsort")) {
        struct item a = {1, 1, 5}, b = {2, 1, 3};
        struct item *list[4] = {&a, &b, &a, &b};
        list[2 + input] = lookup(input);
        sort_orders(list, 4);
    } else if (!strcmp(bug, "signal")) {
        signal(SIGUSR1, on_signal);
        raise(SIGUSR1);
    } else if (!strcmp(bug, "strlen")) sink = (long)count_chars(getenv(input ? "NO_SUCH_VAR_1" : "NO_SUCH_VAR_0"));
    else if (!strcmp(bug, "recursion")) sink = descend(input);
    else if (!strcmp(bug, "divide")) sink = ratio(100 + input, divisor);
    else if (!strcmp(bug, "abort")) {
        struct item it = {1, -1 - input, 1};
        validate(&it);
    } else if (!strcmp(bug, "double-free")) {
        held = malloc(32 + input * 16);
        release(held);
        release(held);
    } else if (!strcmp(bug, "trap")) unreachable_state(input);
    else if (!strcmp(bug, "rodata")) label_write(default_label);
    else if (!strcmp(bug, "call-null")) dispatch(input + 1);
    else if (!strcmp(bug, "wild")) poke(0xdead0000u + (uintptr_t)input * 4096);
    else if (!strcmp(bug, "heap-overflow")) {
        held = malloc(24);
        next_held = malloc(24);
        fill_name(held, 40);
        drop_pair(held, next_held);
    } else if (!strcmp(bug, "atexit")) {
        atexit(flush_log);
        exit(0);
    } else return 2;
    return 0;
}
