/* What the C workloads of benches/real share: a fast generator and the
 * size distributions drawn from it, stamped blocks (written where a program
 * would write them, and checked when freed, so that an allocator handing
 * out overlapping memory stops the run instead of being timed), arguments,
 * threads, and the process's resident set. Header-only: each program is one
 * file plus this. */
#ifndef STRATA_REAL_BENCH_H
#define STRATA_REAL_BENCH_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* xorshift64*: one multiply a draw; never seeded with zero. */
typedef struct { uint64_t s; } rng_t;

static inline rng_t rng_new(uint64_t seed) {
    rng_t r = { seed * 0x9E3779B97F4A7C15ULL | 1 };
    return r;
}

static inline uint64_t rng_next(rng_t *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n). */
static inline size_t rng_below(rng_t *r, size_t n) {
    return (size_t)((rng_next(r) >> 11) % n);
}

/* Uniform in [0, 1). */
static inline double rng_unit(rng_t *r) {
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Log-uniform in [lo, hi]: as many draws per power of two. */
static inline size_t rng_log(rng_t *r, size_t lo, size_t hi) {
    double v = (double)lo * exp2(rng_unit(r) * log2((double)hi / (double)lo));
    size_t n = (size_t)v;
    return n < lo ? lo : n > hi ? hi : n;
}

/* A table of `n` (a power of two) draws of `draw`, so that the timed loops
 * pay one load per size whatever the distribution. */
static inline size_t *table_of(size_t n, uint64_t seed, size_t (*draw)(rng_t *)) {
    size_t *t = malloc(n * sizeof *t);
    rng_t r = rng_new(seed);
    if (!t) { perror("malloc"); exit(1); }
    for (size_t i = 0; i < n; i++) t[i] = draw(&r);
    return t;
}

/* Stamps: the first word holds the block's size mixed with its address, the
 * last word (blocks of 16 bytes and more) a check of both. */
static inline uint64_t stamp_of(const void *p, size_t size) {
    return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL) ^ size;
}

/* malloc(size), stamped; stops the program on NULL. size >= 8. */
static inline void *xmalloc(size_t size) {
    char *p = malloc(size);
    if (!p) { fprintf(stderr, "malloc(%zu) failed\n", size); exit(1); }
    uint64_t s = stamp_of(p, size);
    memcpy(p, &s, 8);
    if (size >= 16) memcpy(p + size - 8, &s, 8);
    return p;
}

/* Checks the stamps of a block of `size` from xmalloc; aborts naming it. */
static inline void check(const void *p, size_t size) {
    uint64_t a, b, s = stamp_of(p, size);
    memcpy(&a, p, 8);
    if (size >= 16) memcpy(&b, (const char *)p + size - 8, 8); else b = s;
    if (a != s || b != s) {
        fprintf(stderr, "block %p of %zu bytes was overwritten while live\n", p, size);
        abort();
    }
}

/* Checks and frees a block of `size` from xmalloc. */
static inline void xfree(void *p, size_t size) {
    check(p, size);
    free(p);
}

/* A working set: slot k holds a block of size[k] bytes from xmalloc, or
 * nothing. Frees the block in slot k and puts a new one of `bytes` there
 * (none when `bytes` is 0). */
static inline void replace(void **slot, size_t *size, size_t k, size_t bytes) {
    if (slot[k]) xfree(slot[k], size[k]);
    slot[k] = bytes ? xmalloc(bytes) : 0;
    size[k] = bytes;
}

/* Frees every block of a working set of n slots. */
static inline void free_all(void **slot, size_t *size, size_t n) {
    for (size_t k = 0; k < n; k++) replace(slot, size, k, 0);
}

/* Argument i as a number, or `def` when absent. */
static inline long arg(int argc, char **argv, int i, long def) {
    return argc > i ? strtol(argv[i], 0, 0) : def;
}

/* Runs `body(i)` on `n` threads at once (i = 0..n-1) and joins them. */
static inline void on_threads(int n, void *(*body)(void *)) {
    pthread_t t[256];
    if (n > 256) n = 256;
    for (long i = 0; i < n; i++)
        if (pthread_create(&t[i], 0, body, (void *)i)) { perror("pthread_create"); exit(1); }
    for (int i = 0; i < n; i++) pthread_join(t[i], 0);
}

/* The process's resident set now, MiB. */
static inline long rss_mib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE) >> 20;
}

#endif
