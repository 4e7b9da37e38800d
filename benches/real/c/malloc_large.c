/* 20 buffers of 5..25 MiB replaced one at a time, each written whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 500;
    int touch = argc > 2 ? atoi(argv[2]) : 1;
    enum { N = 20 };
    char *b[N] = {0};
    unsigned long x = 88172645463325252UL, sum = 0;
    for (int i = 0; i < iters; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t size = (5UL << 20) + x % (20UL << 20);
        int k = i % N;
        free(b[k]);
        b[k] = malloc(size);
        if (touch) memset(b[k], i, size); else b[k][0] = i;
        sum += (unsigned char)b[k][size / 2];
    }
    for (int k = 0; k < N; k++) free(b[k]);
    printf("%lu\n", sum);
    return 0;
}
