/* xmalloc_test [PRODUCERS [CONSUMERS [BLOCKS]]]: after Lever and Boreham's
 * xmalloc-test. Producer threads only allocate (BLOCKS each, 16..1024 B,
 * most of them 128 B or less) and hand them on in batches of 64 through one
 * shared bounded queue; consumer threads only free, whichever producer's
 * blocks they get. */
#include "bench.h"

enum { BATCH = 64, QUEUE = 64 };

typedef struct {
    void *block[BATCH];
    size_t size[BATCH];
} batch;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    batch *slot[QUEUE];
    size_t head, n;
    int producing;
} q = { .lock = PTHREAD_MUTEX_INITIALIZER, .not_full = PTHREAD_COND_INITIALIZER,
        .not_empty = PTHREAD_COND_INITIALIZER, .producing = 1 };

static long blocks;
static int producers;

static void put(batch *b) {
    pthread_mutex_lock(&q.lock);
    while (q.n == QUEUE) pthread_cond_wait(&q.not_full, &q.lock);
    q.slot[(q.head + q.n++) % QUEUE] = b;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* The next batch, or NULL once the producers are done and the queue is
 * empty. */
static batch *take(void) {
    pthread_mutex_lock(&q.lock);
    while (q.n == 0 && q.producing) pthread_cond_wait(&q.not_empty, &q.lock);
    batch *b = 0;
    if (q.n) {
        b = q.slot[q.head];
        q.head = (q.head + 1) % QUEUE;
        q.n--;
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.lock);
    return b;
}

static void *produce(void *arg) {
    rng_t r = rng_new(37 + (uint64_t)(long)arg);
    for (long done = 0; done < blocks; done += BATCH) {
        batch *b = malloc(sizeof *b);
        if (!b) { perror("malloc"); exit(1); }
        for (int i = 0; i < BATCH; i++) {
            uint64_t x = rng_next(&r);
            /* Seven in eight up to 128 B, the rest up to 1 KiB. */
            b->size[i] = (x & 7) ? 16 + (x >> 8) % 113 : 16 + (x >> 8) % 1009;
            b->block[i] = xmalloc(b->size[i]);
        }
        put(b);
    }
    return 0;
}

static void *consume(void *arg) {
    (void)arg;
    for (batch *b; (b = take());) {
        for (int i = 0; i < BATCH; i++) xfree(b->block[i], b->size[i]);
        free(b);
    }
    return 0;
}

static pthread_mutex_t left_lock = PTHREAD_MUTEX_INITIALIZER;
static int left;

/* A producer, then: the last one to finish wakes every consumer, so that
 * they drain the queue and stop. */
static void *producer(void *arg) {
    produce(arg);
    pthread_mutex_lock(&left_lock);
    int last = --left == 0;
    pthread_mutex_unlock(&left_lock);
    if (last) {
        pthread_mutex_lock(&q.lock);
        q.producing = 0;
        pthread_cond_broadcast(&q.not_empty);
        pthread_mutex_unlock(&q.lock);
    }
    return 0;
}

static void *run(void *arg) {
    long i = (long)arg;
    return i < producers ? producer(arg) : consume(arg);
}

int main(int argc, char **argv) {
    producers = (int)arg(argc, argv, 1, 2);
    int consumers = (int)arg(argc, argv, 2, 2);
    blocks = arg(argc, argv, 3, 4000000);
    left = producers;
    on_threads(producers + consumers, run);
    return 0;
}
