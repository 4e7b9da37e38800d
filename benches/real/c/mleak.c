/* mleak [THREADS [ROUNDS]]: threads that come and go, each leaving a little
 * behind. Every round starts THREADS short-lived threads; each churns
 * blocks of 16..512 B (about 64 KiB of them live at once), frees them, and
 * leaves one small long-lived object in a ring of 1024 (freeing the one it
 * replaces, left by a thread long gone) before it exits. What is live stays
 * flat, so peak RSS shows whatever the allocator keeps per exited thread. */
#include "bench.h"

enum { RING = 1024, LIVE = 256, CHURN = 4000 };
static long round_no;
static void *ring[RING];
static size_t ring_size[RING];
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;

static void *work(void *arg) {
    long id = (long)arg;
    rng_t r = rng_new(43 + (uint64_t)round_no * 131 + (uint64_t)id);
    void *live[LIVE] = { 0 };
    size_t size[LIVE];
    for (int i = 0; i < CHURN; i++) {
        uint64_t x = rng_next(&r);
        replace(live, size, (x >> 8) % LIVE, 16 + (x >> 24) % 497);
    }
    free_all(live, size, LIVE);
    size_t keep = 16 + rng_below(&r, 113);
    void *p = xmalloc(keep);
    pthread_mutex_lock(&ring_lock);
    size_t at = (size_t)(round_no * 7 + id) % RING;
    void *old = ring[at];
    size_t old_size = ring_size[at];
    ring[at] = p;
    ring_size[at] = keep;
    pthread_mutex_unlock(&ring_lock);
    if (old) xfree(old, old_size);
    return 0;
}

int main(int argc, char **argv) {
    int threads = (int)arg(argc, argv, 1, 8);
    long rounds = arg(argc, argv, 2, 500);
    for (round_no = 0; round_no < rounds; round_no++) on_threads(threads, work);
    free_all(ring, ring_size, RING);
    printf("%ld threads, RSS at the end %ld MiB\n", threads * rounds, rss_mib());
    return 0;
}
