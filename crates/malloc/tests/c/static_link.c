/* A C program linked with libstrata_malloc.a (no LD_PRELOAD): its malloc,
 * and the malloc libc's own functions call, must be strata's.
 *
 *   cc -Iinclude static_link.c target/debug/libstrata_malloc.a \
 *      -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o static_link
 *
 * Prints "ALL OK" and exits 0 when every check passes. Built with
 * -DWITHOUT_STRATA and without the library, the same checks must fail
 * (tests/introspect.rs runs both). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
    }                                                                          \
  } while (0)

int main(void) {
  /* strata's size classes: 24 bytes come from the 32-byte class (glibc's
   * chunk gives 24). */
  void *p = malloc(24);
  size_t u = malloc_usable_size(p);
  CHECK(u == 32, "malloc_usable_size(malloc(24)) = %zu", u);
  free(p);
  /* libc's own allocations go to the program's malloc too: strdup of 7
   * bytes gets strata's 8-byte class. */
  char *s = strdup("strata");
  u = malloc_usable_size(s);
  CHECK(u == 8, "malloc_usable_size(strdup(\"strata\")) = %zu", u);
  free(s);
  /* The dynamic linker finds malloc in the program, not in libc. */
  Dl_info info;
  void *f = dlsym(RTLD_DEFAULT, "malloc");
  CHECK(f != NULL && dladdr(f, &info) != 0 && info.dli_fname != NULL &&
            strstr(info.dli_fname, "libc.so") == NULL,
        "malloc resolves to %s", f && dladdr(f, &info) ? info.dli_fname : "nothing");
  size_t len = (size_t)8 << 20;
  char *big = malloc(len);
  memset(big, 1, len);
#ifndef WITHOUT_STRATA
  static char json[1 << 16];
  strata_stats_json(json, sizeof json);
  const char *at = strstr(json, "\"allocated_bytes\":");
  long long allocated = at ? strtoll(at + 18, NULL, 10) : -1;
  CHECK(allocated >= (long long)len, "strata's allocated_bytes = %lld", allocated);
#endif
  free(big);
  if (failures == 0)
    printf("ALL OK\n");
  return failures != 0;
}
