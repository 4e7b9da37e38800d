/* sh_bench [THREADS [ROUNDS [CROSS]]]: after MicroQuill's SmartHeap
 * benchmarks, sh6bench (CROSS 0, the default) and sh8bench (CROSS 1).
 * Each thread, every round, walks the sizes from 1 to 1000 bytes in
 * random steps of 1 to 16; at each size it allocates a run of 100 to 999
 * blocks and fills them, frees every other one from the front, grows
 * every eighth of the rest with realloc to twice the size and a little
 * more, and frees the rest from the back. With CROSS, a quarter of each
 * run is freed by the next thread instead: it goes into that thread's
 * box, which the owner empties at each size (a box never holds more than
 * PENDING blocks: past that, the blocks are freed where they are). So
 * every size class is busy for a moment and then left alone until the
 * next round, the pattern where memory a class no longer uses serves the
 * next one. Every block is checked when it is freed: a block that another
 * overwrote stops the run. */
#include "bench.h"

enum { RUN = 1000, PENDING = 8192 };
static int threads, cross;
static long rounds;

typedef struct {
    pthread_mutex_t lock;
    void **v;
    size_t n;
} box;
static box *boxes;

/* Fills a block of `size` bytes with `tag`; checks that it still holds it. */
static void fill(void *p, size_t size, unsigned char tag) { memset(p, tag, size); }

static void verify(const void *p, size_t size, unsigned char tag) {
    const unsigned char *b = p;
    if (b[0] != tag || b[size - 1] != tag) {
        fprintf(stderr, "block %p of %zu bytes was overwritten while live\n", p, size);
        abort();
    }
}

/* A block handed to another thread: its size in the first word, its tag
 * in every other byte. */
static void give(box *b, void **p, size_t n) {
    pthread_mutex_lock(&b->lock);
    size_t room = PENDING - b->n;
    size_t k = n < room ? n : room;
    memcpy(b->v + b->n, p, k * sizeof *p);
    b->n += k;
    pthread_mutex_unlock(&b->lock);
    for (size_t i = k; i < n; i++) free(p[i]);
}

static void drain(box *b, void **scratch) {
    pthread_mutex_lock(&b->lock);
    size_t n = b->n;
    memcpy(scratch, b->v, n * sizeof *scratch);
    b->n = 0;
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < n; i++) free(scratch[i]);
}

static void *worker(void *arg) {
    long id = (long)arg;
    void **p = malloc(RUN * sizeof *p), **out = malloc(RUN * sizeof *out);
    void **scratch = malloc(PENDING * sizeof *scratch);
    if (!p || !out || !scratch) abort();
    rng_t r = rng_new((uint64_t)id + 1);
    for (long round = 0; round < rounds; round++) {
        for (size_t size = 1; size <= 1000; size += 1 + rng_below(&r, 16)) {
            size_t n = 100 + rng_below(&r, RUN - 100), m = 0, grown = size * 2 + 8;
            for (size_t i = 0; i < n; i++) {
                if (!(p[i] = malloc(size))) { fprintf(stderr, "malloc(%zu) failed\n", size); exit(1); }
                fill(p[i], size, (unsigned char)i);
            }
            for (size_t i = 0; i < n; i += 2) {
                verify(p[i], size, (unsigned char)i);
                if (cross && (i & 2)) out[m++] = p[i]; else free(p[i]);
                p[i] = NULL;
            }
            for (size_t i = 1; i < n; i += 2) {
                if (i % 8 != 1) continue;
                verify(p[i], size, (unsigned char)i);
                void *q = realloc(p[i], grown);
                if (!q) { fprintf(stderr, "realloc(%zu) failed\n", grown); exit(1); }
                verify(q, size, (unsigned char)i);
                fill(q, grown, (unsigned char)i);
                p[i] = q;
            }
            for (size_t i = n; i-- > 0;) {
                if (!p[i]) continue;
                verify(p[i], i % 8 == 1 ? grown : size, (unsigned char)i);
                free(p[i]);
            }
            if (cross) {
                give(&boxes[(id + 1) % threads], out, m);
                drain(&boxes[id], scratch);
            }
        }
    }
    if (cross) drain(&boxes[id], scratch);
    free(p); free(out); free(scratch);
    return NULL;
}

int main(int argc, char **argv) {
    threads = (int)arg(argc, argv, 1, 2);
    rounds = arg(argc, argv, 2, 40);
    cross = (int)arg(argc, argv, 3, 0);
    if (threads < 1) threads = 1;
    boxes = calloc((size_t)threads, sizeof *boxes);
    if (!boxes) abort();
    for (int i = 0; i < threads; i++) {
        pthread_mutex_init(&boxes[i].lock, NULL);
        if (!(boxes[i].v = malloc(PENDING * sizeof(void *)))) abort();
    }
    on_threads(threads, worker);
    void **scratch = malloc(PENDING * sizeof *scratch);
    for (int i = 0; i < threads; i++) { drain(&boxes[i], scratch); free(boxes[i].v); }
    free(scratch);
    free(boxes);
    return 0;
}
