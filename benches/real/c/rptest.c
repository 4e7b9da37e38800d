/* rptest [THREADS [STEPS]]: after rpmalloc's benchmark. Each thread
 * allocates a block every step, 16 B to 16000 B (as many sizes per power of
 * two), and keeps it for 1 to 4095 steps (log-uniform too, so most lives
 * are short and some long): a time wheel frees what is due. One block in 8
 * is freed by another thread instead: it goes into that thread's inbox,
 * which the owner empties every 64 steps (up to 1024 blocks wait there). Peak RSS against the live bytes
 * is the other half of the result. */
#include "bench.h"

enum { WHEEL = 4096, TABLE = 4096 };
static long steps;
static int threads;
static size_t *sizes, *lives;

/* From 24 B: a block starts with its links (two words) and ends with its
 * stamp. */
static size_t draw_size(rng_t *r) { return rng_log(r, 24, 16000); }
static size_t draw_life(rng_t *r) { return rng_log(r, 1, WHEEL - 1); }

/* A live block: its first word links it into a wheel slot or an inbox, its
 * second holds its size; its last word keeps the stamp xmalloc wrote, and
 * is checked when the block is freed. */
typedef struct node { struct node *next; size_t size; } node;

/* Blocks other threads handed to this one, to free. At most PENDING wait
 * (so that a thread the scheduler keeps off the CPU does not make the
 * others' blocks pile up), and none once it has ended: such blocks are
 * freed where they fall due. */
enum { PENDING = 1024 };
typedef struct {
    pthread_mutex_t lock;
    node *head;
    size_t n;
    int closed;
} inbox;

static inbox *boxes;

static void release(node *b) {
    uint64_t s = stamp_of(b, b->size), last;
    memcpy(&last, (char *)b + b->size - 8, 8);
    if (last != s) {
        fprintf(stderr, "block %p of %zu bytes was overwritten while live\n", (void *)b, b->size);
        abort();
    }
    free(b);
}

static void empty_inbox(inbox *in, int close) {
    pthread_mutex_lock(&in->lock);
    node *b = in->head;
    in->head = 0;
    in->n = 0;
    in->closed |= close;
    pthread_mutex_unlock(&in->lock);
    for (node *next; b; b = next) { next = b->next; release(b); }
}

static void *work(void *arg) {
    long id = (long)arg;
    rng_t r = rng_new(23 + (uint64_t)id);
    node **wheel = calloc(WHEEL, sizeof *wheel);
    inbox *to = &boxes[(id + 1) % threads];
    for (long t = 0; t < steps; t++) {
        uint64_t x = rng_next(&r);
        node *due = wheel[t & (WHEEL - 1)];
        wheel[t & (WHEEL - 1)] = 0;
        for (node *next; due; due = next) {
            next = due->next;
            if (threads > 1 && (x & 7) == 0) {
                pthread_mutex_lock(&to->lock);
                if (!to->closed && to->n < PENDING) {
                    due->next = to->head;
                    to->head = due;
                    to->n++;
                    due = 0;
                }
                pthread_mutex_unlock(&to->lock);
            }
            if (due) release(due);
            x = x >> 3 | x << 61;
        }
        size_t size = sizes[(x >> 20) & (TABLE - 1)];
        node *b = xmalloc(size);
        b->size = size;
        size_t at = (t + lives[(x >> 40) & (TABLE - 1)]) & (WHEEL - 1);
        b->next = wheel[at];
        wheel[at] = b;
        if ((t & 63) == 0) empty_inbox(&boxes[id], 0);
    }
    for (size_t s = 0; s < WHEEL; s++)
        for (node *b = wheel[s], *next; b; b = next) { next = b->next; release(b); }
    empty_inbox(&boxes[id], 1);
    free(wheel);
    return 0;
}

int main(int argc, char **argv) {
    threads = (int)arg(argc, argv, 1, 2);
    steps = arg(argc, argv, 2, 3000000);
    sizes = table_of(TABLE, 29, draw_size);
    lives = table_of(TABLE, 31, draw_life);
    boxes = calloc(threads, sizeof *boxes);
    for (int i = 0; i < threads; i++) pthread_mutex_init(&boxes[i].lock, 0);
    on_threads(threads, work);
    free(boxes);
    free(sizes);
    free(lives);
    return 0;
}
