/* malloc_thread [THREADS [STEPS]]: after glibc's bench-malloc-thread. Each
 * thread keeps its own working set of 1024 blocks and replaces a random one
 * at every step with a block of a random size, 8 B to 32 KiB, small sizes
 * the most common (as many sizes per power of two). The threads share
 * nothing but the allocator. */
#include "bench.h"

enum { SLOTS = 1024, SIZES = 4096 };
static long steps;
static size_t *sizes;

static size_t draw_size(rng_t *r) { return rng_log(r, 8, 32768); }

static void *work(void *arg) {
    rng_t r = rng_new(11 + (uint64_t)(long)arg);
    void *slot[SLOTS] = { 0 };
    size_t size[SLOTS];
    for (long i = 0; i < steps; i++) {
        uint64_t x = rng_next(&r);
        replace(slot, size, (x >> 16) & (SLOTS - 1), sizes[(x >> 32) & (SIZES - 1)]);
    }
    free_all(slot, size, SLOTS);
    return 0;
}

int main(int argc, char **argv) {
    int threads = (int)arg(argc, argv, 1, 4);
    steps = arg(argc, argv, 2, 2000000);
    sizes = table_of(SIZES, 13, draw_size);
    on_threads(threads, work);
    free(sizes);
    return 0;
}
