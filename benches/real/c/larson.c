/* larson [THREADS [STEPS [GENERATIONS]]]: after Larson and Krishnan's
 * server simulation. Each thread owns 1000 slots of blocks of 16..1000 B
 * and replaces a random slot's block STEPS times, then exits; a new thread
 * takes over its slots and frees the blocks it inherited as it replaces
 * them, so blocks allocated by one thread are freed by another. The first
 * generation's blocks come from the main thread. */
#include "bench.h"

enum { SLOTS = 1000 };
static long steps, generation;

typedef struct {
    void *slot[SLOTS];
    size_t size[SLOTS];
} slots;

static slots *owned;

static void *work(void *arg) {
    long id = (long)arg;
    slots *w = &owned[id];
    rng_t r = rng_new(17 + (uint64_t)id * 1000 + (uint64_t)generation);
    for (long i = 0; i < steps; i++) {
        uint64_t x = rng_next(&r);
        replace(w->slot, w->size, (x >> 16) % SLOTS, 16 + (x >> 40) % 985);
    }
    return 0;
}

int main(int argc, char **argv) {
    int threads = (int)arg(argc, argv, 1, 2);
    steps = arg(argc, argv, 2, 2000000);
    long generations = arg(argc, argv, 3, 5);
    owned = calloc(threads, sizeof *owned);
    rng_t r = rng_new(19);
    for (int t = 0; t < threads; t++)
        for (size_t k = 0; k < SLOTS; k++) replace(owned[t].slot, owned[t].size, k, 16 + rng_below(&r, 985));
    for (generation = 0; generation < generations; generation++) on_threads(threads, work);
    for (int t = 0; t < threads; t++) free_all(owned[t].slot, owned[t].size, SLOTS);
    free(owned);
    return 0;
}
