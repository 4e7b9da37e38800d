/* pairs_in_turn N: N x (malloc 16, 32 and 64 B in turn, each with its
 * first byte written and freed at once), the C counterpart of the main
 * job's row 1. Prints the wall-clock ns of one pair, so interleaved runs
 * under LD_PRELOAD compare allocators (the figure is only as steady as the
 * machine; callgrind on pair_loop.c counts instructions exactly).
 *
 *   cc -O2 -fno-builtin pairs_in_turn.c -o pairs_in_turn
 *   LD_PRELOAD=.../libstrata_malloc.so ./pairs_in_turn 10000000 */
#include "bench.h"
#include <time.h>

int main(int argc, char **argv) {
    long n = arg(argc, argv, 1, 10000000);
    static const size_t sizes[3] = { 16, 32, 64 };
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++) {
            unsigned char *p = malloc(sizes[k]);
            if (!p) return 1;
            p[0] = (unsigned char)i;
            __asm__ volatile("" : : "r"(p) : "memory"); /* keep the pair */
            free(p);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    printf("%.2f ns per pair\n", ns / (3.0 * (double)n));
    return 0;
}
