/* mstress [THREADS [PHASES [STEPS]]]: after mimalloc's stress test. Each
 * phase starts THREADS new threads doing unequal work (2/3, 1 and 4/3 of
 * STEPS). A step allocates a power-of-two block (16 B..1 KiB; one in 64 up
 * to 64 KiB), frees one of the thread's blocks, or swaps a block with one of
 * 4096 slots shared by all threads (freeing what it takes out, whoever
 * allocated it). Threads lean to allocating in the first half of their life
 * and to freeing in the second; at the end a quarter of their blocks go to
 * the shared slots and outlive them into the next phase. */
#include "bench.h"

enum { SHARED = 4096 };
static long steps, phase;
/* Blocks any thread may take; swapped with one atomic exchange. */
static void *shared[SHARED];

/* A block carries its size in its first word (over xmalloc's first stamp),
 * so that whoever takes it from a shared slot can check and free it; its
 * last word keeps the stamp. */
typedef struct { size_t size; } head;

static void *new_block(rng_t *r) {
    uint64_t x = rng_next(r);
    unsigned shift = 4 + (unsigned)(x % 7);           /* 16 B .. 1 KiB */
    if ((x >> 8 & 63) == 0) shift = 10 + (unsigned)(x >> 16) % 7; /* .. 64 KiB */
    size_t size = (size_t)1 << shift;
    char *p = xmalloc(size);
    ((head *)p)->size = size;
    return p;
}

static void drop(void *p) {
    size_t size = ((head *)p)->size;
    uint64_t last, s = stamp_of(p, size);
    memcpy(&last, (char *)p + size - 8, 8);
    if (last != s) { fprintf(stderr, "block %p overwritten while live\n", p); abort(); }
    free(p);
}

static void *work(void *arg) {
    long id = (long)arg;
    rng_t r = rng_new(41 + (uint64_t)id * 7919 + (uint64_t)phase * 104729);
    long mine = steps * (2 + id % 3) / 3;
    size_t cap = 1024, n = 0;
    void **own = malloc(cap * sizeof *own);
    for (long i = 0; i < mine; i++) {
        uint64_t x = rng_next(&r);
        int growing = i < mine / 2;
        unsigned pick = (unsigned)(x % 100);
        if (pick < 10) {
            /* Swap with a shared slot. */
            void *give = n ? own[--n] : new_block(&r);
            void *got = __atomic_exchange_n(&shared[(x >> 8) % SHARED], give, __ATOMIC_ACQ_REL);
            if (got) drop(got);
        } else if (n && pick < (growing ? 40u : 70u)) {
            size_t k = (x >> 8) % n;
            drop(own[k]);
            own[k] = own[--n];
        } else {
            if (n == cap) {
                cap *= 2;
                void **grown = realloc(own, cap * sizeof *own);
                if (!grown) { perror("realloc"); exit(1); }
                own = grown;
            }
            own[n++] = new_block(&r);
        }
    }
    /* A quarter outlives the thread in the shared slots. */
    for (size_t k = 0; k < n; k++) {
        if (k % 4 == 0) {
            void *got = __atomic_exchange_n(&shared[(k * 7 + (size_t)id) % SHARED], own[k],
                                            __ATOMIC_ACQ_REL);
            if (got) drop(got);
        } else {
            drop(own[k]);
        }
    }
    free(own);
    return 0;
}

int main(int argc, char **argv) {
    int threads = (int)arg(argc, argv, 1, 4);
    long phases = arg(argc, argv, 2, 10);
    steps = arg(argc, argv, 3, 200000);
    for (phase = 0; phase < phases; phase++) on_threads(threads, work);
    for (size_t k = 0; k < SHARED; k++)
        if (shared[k]) drop(shared[k]);
    return 0;
}
