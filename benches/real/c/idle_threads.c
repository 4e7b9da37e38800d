/* 256 threads each churn ~2 MB of small objects, free all, wait; RSS while
 * they idle (1 s later) and after they exit (1 s later). */
#include <pthread.h>
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
enum { T = 256 };
static pthread_barrier_t churned, go;
static void *work(void *arg) {
    unsigned long x = (unsigned long)arg * 2654435761UL + 1;
    enum { N = 8000 };
    void **v = calloc(N, sizeof *v);
    for (int r = 0; r < 40000; r++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int i = x % N; free(v[i]); size_t s = 8 + (x >> 20) % 505; v[i] = malloc(s); memset(v[i], 1, s);
    }
    for (int i = 0; i < N; i++) free(v[i]);
    free(v);
    pthread_barrier_wait(&churned);
    pthread_barrier_wait(&go);
    return 0;
}
int main(void) {
    long start = rss_mib();
    pthread_t t[T];
    pthread_barrier_init(&churned, 0, T + 1); pthread_barrier_init(&go, 0, T + 1);
    for (long i = 0; i < T; i++) pthread_create(&t[i], 0, work, (void *)i);
    pthread_barrier_wait(&churned);
    sleep(1);
    long idle = rss_mib();
    pthread_barrier_wait(&go);
    for (int i = 0; i < T; i++) pthread_join(t[i], 0);
    sleep(1);
    printf("start %ld idle %ld exited %ld\n", start, idle, rss_mib());
    return 0;
}
