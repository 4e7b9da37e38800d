/* pair_lag N SIZE: N x (malloc(SIZE), then free the block of eight
 * iterations earlier). Beside crates/malloc/tests/c/pair_loop.c, which
 * frees each block at once (so the next malloc pops the block just freed
 * and waits for that free), it shows how much of a malloc/free pair's time
 * is that wait rather than work. */
#include "bench.h"

int main(int argc, char **argv) {
    long n = arg(argc, argv, 1, 1000000);
    size_t size = (size_t)arg(argc, argv, 2, 32);
    void *ring[8] = { 0 };
    for (long i = 0; i < n; i++) {
        void *p = malloc(size);
        if (!p) return 1;
        __asm__ volatile("" : : "r"(p) : "memory"); /* keep the pair */
        free(ring[i & 7]);
        ring[i & 7] = p;
    }
    for (int k = 0; k < 8; k++) free(ring[k]);
    return 0;
}
