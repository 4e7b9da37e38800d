/* buffers [THREADS [N [SIZES]]]: threads replacing large buffers. Each
 * thread N times allocates a buffer of one of SIZES sizes (1 to 5: 512,
 * 300, 768, 1024 and 400 KiB, in turn), writes its first and last byte,
 * and frees the buffer of four replacements ago; the threads run at once.
 * Blocks past the size classes come from the page heap, so this is the
 * page heap under threads (the main job's row 2 and size_sweep.c mix
 * them with small blocks). */
#include "bench.h"

static long n;
static int sizes;
static const size_t size[] = { 512 << 10, 300 << 10, 768 << 10, 1 << 20, 400 << 10 };

static void *replace_buffers(void *arg) {
    long t = (long)arg;
    char *ring[4] = { 0 };
    for (long i = 0; i < n; i++) {
        size_t s = size[(i + t) % sizes];
        char *p = malloc(s);
        if (!p) { fprintf(stderr, "malloc(%zu) failed\n", s); exit(1); }
        p[0] = 1;
        p[s - 1] = 1;
        free(ring[i & 3]);
        ring[i & 3] = p;
    }
    for (int k = 0; k < 4; k++) free(ring[k]);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg(argc, argv, 1, 2);
    n = arg(argc, argv, 2, 1000000);
    sizes = (int)arg(argc, argv, 3, 1);
    if (sizes < 1 || sizes > 5) { fprintf(stderr, "SIZES is 1 to 5\n"); return 2; }
    on_threads(threads, replace_buffers);
    return 0;
}
