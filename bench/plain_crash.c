/* The peer for bench/crash_latency.py: a plain C program that touches N MiB of
 * anonymous memory, says so on stderr, and dies by a NULL write, so the kernel
 * writes a core of about the same size as notmyfault's child would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    unsigned char *ballast = mib ? malloc(mib << 20) : NULL;
    unsigned long sum = 0;
    if (ballast) {
        memset(ballast, 0xa5, mib << 20);
        /* Read every page back: without a use of the bytes, the compiler drops
         * the memset and the core holds no pages (seen: 0 bytes allocated). */
        for (size_t i = 0; i < (mib << 20); i += 4096)
            sum += ballast[i];
    }
    fprintf(stderr, "myfault: plain crash (%lu)\n", sum);
    fflush(stderr);
    *(volatile int *)(void *volatile)NULL = 1;
    return (int)sum;
}
