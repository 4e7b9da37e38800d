/* 4000 live objects of 8..408 B, replaced 2 million times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    enum { N = 4000 };
    static void *v[N];
    unsigned long x = 12345;
    for (int r = 0; r < 2000000; r++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int i = x % N; free(v[i]); size_t s = 8 + (x >> 24) % 401; v[i] = malloc(s); memset(v[i], 1, s);
    }
    for (int i = 0; i < N; i++) free(v[i]);
    return 0;
}
