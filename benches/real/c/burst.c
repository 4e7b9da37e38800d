/* burst SIZE: 1 GiB in blocks of SIZE, written, freed; then one small
 * malloc/free a millisecond for 5 s. Prints RSS (MiB) before, at the peak,
 * and 5 s after the free. */
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    size_t size = strtoul(argv[1], 0, 0), n = (1UL << 30) / size;
    int calls = argc > 2 ? atoi(argv[2]) : 1;
    long start = rss_mib();
    char **v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) { v[i] = malloc(size); memset(v[i], 1, size); }
    long peak = rss_mib();
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
    for (int ms = 0; ms < 5000; ms++) {
        if (calls) { void *p = malloc(48); *(volatile char *)p = 1; free(p); }
        struct timespec t = {0, 1000000}; nanosleep(&t, 0);
    }
    printf("start %ld peak %ld after5s %ld\n", start, peak, rss_mib());
    return 0;
}
