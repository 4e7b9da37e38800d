/* The C half of examples/c_dependency.rs: a C library as a Rust program's
 * dependency might be, calling malloc, free, calloc, realloc,
 * posix_memalign and malloc_usable_size, plus strata's own functions
 * (strata.h). Built by tests/c_override.rs into libstrata_cdep.a. */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"

/* count blocks of size bytes each, filled with their index; the array
 * holding them comes from calloc. */
void **cdep_alloc(size_t count, size_t size) {
  void **v = calloc(count, sizeof(void *));
  if (v == NULL)
    return NULL;
  for (size_t i = 0; i < count; i++) {
    v[i] = malloc(size);
    if (v[i] == NULL)
      return NULL;
    memset(v[i], (int)(i & 0xff), size);
  }
  return v;
}

/* Checks and frees what cdep_alloc made; returns the blocks found intact. */
size_t cdep_free(void **v, size_t count, size_t size) {
  size_t intact = 0;
  for (size_t i = 0; i < count; i++) {
    unsigned char *b = v[i];
    intact += b[0] == (i & 0xff) && b[size - 1] == (i & 0xff);
    free(v[i]);
  }
  free(v);
  return intact;
}

/* malloc_usable_size of a fresh block of n bytes. */
size_t cdep_usable_size(size_t n) {
  void *p = malloc(n);
  size_t u = malloc_usable_size(p);
  free(p);
  return u;
}

/* realloc and posix_memalign work and keep contents and alignment. */
int cdep_realloc_and_align(void) {
  char *p = malloc(100);
  if (p == NULL)
    return 0;
  memset(p, 7, 100);
  p = realloc(p, 1 << 20);
  int ok = p != NULL && p[0] == 7 && p[99] == 7;
  free(p);
  void *a = NULL;
  ok = ok && posix_memalign(&a, 4096, 5000) == 0 && ((uintptr_t)a & 4095) == 0;
  free(a);
  return ok;
}

/* strata_set_option from C: the Rust side reads the setting back. */
int cdep_set_decay_ms(const char *value) { return strata_set_option("decay_ms", value); }
