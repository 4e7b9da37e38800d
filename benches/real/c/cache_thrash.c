/* cache_thrash [THREADS [OBJECTS [WRITES]]]: after Hoard's cache-thrash,
 * the active false sharing test. Each thread OBJECTS times allocates an
 * 8-byte object, writes it WRITES times and frees it. An allocator that
 * hands two threads objects on one cache line makes every write move the
 * line between their cores. */
#include "bench.h"

static long objects, writes;

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < objects; i++) {
        volatile unsigned char *o = malloc(8);
        if (!o) { fprintf(stderr, "malloc(8) failed\n"); exit(1); }
        for (long j = 0; j < writes; j++) o[j & 7] = (unsigned char)(o[(j + 1) & 7] + 1);
        free((void *)o);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg(argc, argv, 1, 2);
    objects = arg(argc, argv, 2, 2000);
    writes = arg(argc, argv, 3, 100000);
    on_threads(threads, worker);
    return 0;
}
