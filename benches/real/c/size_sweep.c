/* size_sweep N: the main job's row 2 as a C program. N times: free the
 * block of 64 allocations ago and allocate one of a size drawn
 * log-uniform in 8 B..1 MiB (a table of 4,096 draws), writing its first
 * byte. Time it with perf stat or /usr/bin/time under LD_PRELOAD; count
 * instructions with callgrind at two lengths. */
#include "bench.h"

static size_t sweep_size(rng_t *r) { return rng_log(r, 8, (size_t)1 << 20); }

int main(int argc, char **argv) {
    long n = arg(argc, argv, 1, 1000000);
    size_t *sizes = table_of(4096, 2, sweep_size);
    void *ring[64] = { 0 };
    for (long i = 0; i < n; i++) {
        int k = (int)(i & 63);
        free(ring[k]);
        char *p = malloc(sizes[i & 4095]);
        if (!p) return 1;
        p[0] = 1;
        ring[k] = p;
    }
    for (int k = 0; k < 64; k++) free(ring[k]);
    free(sizes);
    return 0;
}
