/* 4000 live objects of 8..408 B, replaced 2 million times.
 * Built with -DSTOP_AT_END, it stops itself (SIGSTOP) after its last free,
 * through raw system calls (x86-64), so that a parent can read its exact
 * resident size from /proc/PID/smaps_rollup (benches/real/memory.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef STOP_AT_END
static long sys2(long nr, long a, long b) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}
#endif
int main(void) {
    enum { N = 4000 };
    static void *v[N];
    unsigned long x = 12345;
    for (int r = 0; r < 2000000; r++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int i = x % N; free(v[i]); size_t s = 8 + (x >> 24) % 401; v[i] = malloc(s); memset(v[i], 1, s);
    }
    for (int i = 0; i < N; i++) free(v[i]);
#ifdef STOP_AT_END
    sys2(62 /* kill */, sys2(39 /* getpid */, 0, 0), 19 /* SIGSTOP */);
#endif
    return 0;
}
