/* alloc-test [THREADS [STEPS]]: after ITHare's alloc-test. Each thread
 * keeps a working set of 16384 slots; a step picks a slot, low slots far
 * more often than high ones (so low slots hold short-lived blocks and high
 * slots long-lived ones), frees its block and mostly puts a new one there,
 * of 8 B to ~1 KiB with small sizes the most common. */
#include "bench.h"

enum { SLOTS = 16384, SIZES = 4096 };
static long steps;
static size_t *sizes;

/* Sizes with a heavy head: half under ~40 B, a long tail to 1 KiB. */
static size_t draw_size(rng_t *r) {
    double u = rng_unit(r);
    return 8 + (size_t)(1016.0 * u * u * u * u);
}

static void *work(void *arg) {
    rng_t r = rng_new(1 + (uint64_t)(long)arg);
    void **slot = calloc(SLOTS, sizeof *slot);
    size_t *size = calloc(SLOTS, sizeof *size);
    for (long i = 0; i < steps; i++) {
        uint64_t x = rng_next(&r);
        /* The slot: uniform below a uniform bound, so slot k is chosen with
         * a probability falling like log(SLOTS / k). */
        size_t k = (size_t)((x >> 40) % ((x & (SLOTS - 1)) + 1));
        /* One step in 16 leaves the slot empty. */
        replace(slot, size, k, (x >> 20 & 15) ? sizes[(x >> 24) & (SIZES - 1)] : 0);
    }
    free_all(slot, size, SLOTS);
    free(slot);
    free(size);
    return 0;
}

int main(int argc, char **argv) {
    int threads = (int)arg(argc, argv, 1, 1);
    steps = arg(argc, argv, 2, 10000000);
    sizes = table_of(SIZES, 7, draw_size);
    on_threads(threads, work);
    free(sizes);
    return 0;
}
