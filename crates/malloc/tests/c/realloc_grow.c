/* Peak RSS of a buffer grown by realloc, the measurement behind
 * docs/memory.md "Large blocks that grow": `rounds` times, grow one block
 * from 4 KiB to at least `max_mib` MiB by a factor `f` (writing every new
 * byte, with a few small allocations in between as a program would make),
 * then free it. Prints the process's peak RSS.
 *
 *   cc -O2 -fno-builtin crates/malloc/tests/c/realloc_grow.c -o /tmp/realloc_grow
 *   /tmp/realloc_grow 30 1.25 3
 *   LD_PRELOAD=$PWD/target/release/libstrata_malloc.so /tmp/realloc_grow 30 1.25 3
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv) {
  size_t max = (size_t)(argc > 1 ? atol(argv[1]) : 200) << 20;
  double f = argc > 2 ? atof(argv[2]) : 1.25;
  int rounds = argc > 3 ? atoi(argv[3]) : 3;
  if (f <= 1.0) {
    fprintf(stderr, "the growth factor must be above 1\n");
    return 2;
  }
  for (int r = 0; r < rounds; r++) {
    size_t n = 4096;
    char *p = malloc(n);
    if (!p) return 1;
    memset(p, 1, n);
    void *keep[64];
    int k = 0;
    while (n < max) {
      size_t m = (size_t)(n * f);
      char *q = realloc(p, m);
      if (!q) return 1;
      p = q;
      memset(p + n, 2, m - n);
      n = m;
      if (k < 64) {
        keep[k] = malloc(100 + (size_t)k * 50);
        k++;
      }
    }
    free(p);
    for (int i = 0; i < k; i++) free(keep[i]);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("peak RSS %ld MiB (grown to %zu MiB by %.2fx, %d rounds)\n", ru.ru_maxrss >> 10,
         max >> 20, f, rounds);
  return 0;
}
