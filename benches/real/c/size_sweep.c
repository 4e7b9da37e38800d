/* size_sweep [N [RING [THREADS]]]: the main job's row 2 as a C program.
 * N times: free the block of RING allocations ago (64 by default, as in
 * row 2) and allocate one of a size drawn log-uniform in 8 B..1 MiB (a
 * table of 4,096 draws), writing its first byte. With THREADS (1 by
 * default), each of that many threads runs its own ring for N / THREADS
 * replacements, all drawing from the same table at different offsets.
 * Time it with perf stat or /usr/bin/time under LD_PRELOAD; count
 * instructions with callgrind at two lengths. */
#include "bench.h"

static long per_thread, ring_len;
static size_t *sizes;

static size_t sweep_size(rng_t *r) { return rng_log(r, 8, (size_t)1 << 20); }

static void *sweep(void *arg) {
    long t = (long)arg;
    void **ring = calloc((size_t)ring_len, sizeof *ring);
    if (!ring) abort();
    for (long i = 0, k = 0; i < per_thread; i++, k = k + 1 == ring_len ? 0 : k + 1) {
        free(ring[k]);
        char *p = malloc(sizes[(i + t * 977) & 4095]);
        if (!p) abort();
        p[0] = 1;
        ring[k] = p;
    }
    for (long j = 0; j < ring_len; j++) free(ring[j]);
    free(ring);
    return 0;
}

int main(int argc, char **argv) {
    long n = arg(argc, argv, 1, 1000000);
    ring_len = arg(argc, argv, 2, 64);
    long threads = arg(argc, argv, 3, 1);
    if (ring_len < 1 || threads < 1 || threads > 256) return 2;
    per_thread = n / threads;
    sizes = table_of(4096, 2, sweep_size);
    if (threads == 1)
        sweep(0);
    else
        on_threads((int)threads, sweep);
    free(sizes);
    return 0;
}
