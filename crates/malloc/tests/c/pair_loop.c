/* malloc/free pairs in a loop: the program behind the README's
 * instructions-per-pair figure.
 *
 *   cc -O2 -fno-builtin pair_loop.c -o pair_loop
 *   LD_PRELOAD=.../libstrata_malloc.so valgrind --tool=callgrind ./pair_loop 1000000 32
 *   LD_PRELOAD=.../libstrata_malloc.so valgrind --tool=callgrind ./pair_loop 2000000 32
 *
 * The difference of the two totals, divided by 1000000, is the cost of one
 * malloc(32) + free pair plus 9 instructions of loop. */
#include <stdlib.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
  for (long i = 0; i < n; i++) {
    void *p = malloc(size);
    if (p == NULL) return 1;
    __asm__ volatile("" : : "r"(p) : "memory"); /* keep the pair */
    free(p);
  }
  return 0;
}
