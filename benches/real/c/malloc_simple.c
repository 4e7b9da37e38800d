/* malloc_simple [ROUNDS]: after glibc's bench-malloc-simple. Tight loops of
 * one fixed size at a time: for each of 16, 64, 256, 1024 and 4096 bytes and
 * each of 25, 100, 400 and 1600 blocks, allocate that many blocks, write
 * each, and free them in the order they came. */
#include "bench.h"

int main(int argc, char **argv) {
    static const size_t sizes[] = { 16, 64, 256, 1024, 4096 };
    static const size_t counts[] = { 25, 100, 400, 1600 };
    static void *block[1600];
    long rounds = arg(argc, argv, 1, 500);
    for (long k = 0; k < rounds; k++) {
        for (size_t s = 0; s < 5; s++) {
            for (size_t c = 0; c < 4; c++) {
                for (size_t i = 0; i < counts[c]; i++) block[i] = xmalloc(sizes[s]);
                for (size_t i = 0; i < counts[c]; i++) xfree(block[i], sizes[s]);
            }
        }
    }
    return 0;
}
