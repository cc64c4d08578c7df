/* The peer for bench/leak_rate.py: a plain C loop that maps blocks, writes a
 * word on every page (paged) or locks them (nonpaged), as fast as it can.
 * usage: plain_leak paged|nonpaged TOTAL_MIB BLOCK_KIB; prints bytes/second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int locked = strcmp(argv[1], "nonpaged") == 0;
    size_t total = strtoull(argv[2], NULL, 10) << 20, block = strtoull(argv[3], NULL, 10) << 10;
    long page = sysconf(_SC_PAGESIZE);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t done = 0; done < total; done += block) {
        unsigned char *p = mmap(NULL, block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (locked ? 0 : MAP_POPULATE), -1, 0);
        if (p == MAP_FAILED || (locked && mlock(p, block) != 0)) {
            perror("plain_leak");
            return 1;
        }
        for (size_t off = 0; off < block; off += (size_t)page)
            p[off] = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%.0f\n", (double)total / s);
    return 0;
}
