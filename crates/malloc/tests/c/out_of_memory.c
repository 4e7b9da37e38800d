/* Running out of memory through the C ABI, under an address-space limit
 * set before the program starts (`ulimit -v`, or RLIMIT_AS from the test):
 * every allocation function returns NULL with errno ENOMEM (posix_memalign
 * returns ENOMEM), nothing aborts, a failed realloc leaves its block whole,
 * and what was freed can be allocated again. Exits 0 when all of it holds;
 * prints one line per pattern.
 *
 *   cc -O2 crates/malloc/tests/c/out_of_memory.c -o /tmp/out_of_memory
 *   (ulimit -v 786432; LD_PRELOAD=$PWD/target/release/libstrata_malloc.so /tmp/out_of_memory)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                      \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                    \
      fprintf(stderr, __VA_ARGS__);                                           \
      fputc('\n', stderr);                                                    \
      failures++;                                                             \
    }                                                                         \
  } while (0)

/* Blocks are chained through their first word, their size in the second. */
struct block {
  struct block *next;
  size_t size;
};

/* Allocates blocks of size(i) with `how` until it fails; returns the chain
 * and the bytes it got. */
static struct block *exhaust(size_t (*size)(size_t), int how, size_t *bytes) {
  struct block *head = NULL;
  size_t n = 0;
  *bytes = 0;
  for (;;) {
    size_t sz = size(n);
    void *p = NULL;
    errno = 0;
    switch (how) {
    case 0:
      p = malloc(sz);
      break;
    case 1:
      p = calloc(1, sz);
      break;
    case 2: {
      int rc = posix_memalign(&p, 4096, sz);
      CHECK(rc == 0 || (rc == ENOMEM && p == NULL), "posix_memalign returned %d", rc);
      if (rc != 0) {
        errno = rc;
        p = NULL;
      }
      break;
    }
    }
    if (p == NULL) {
      CHECK(errno == ENOMEM, "allocation %zu of %zu bytes: NULL with errno %d, not ENOMEM", n,
            sz, errno);
      return head;
    }
    if (how == 1) {
      CHECK(((unsigned char *)p)[sz - 1] == 0, "calloc'd block not zero");
    }
    struct block *b = p;
    b->next = head;
    b->size = sz;
    ((unsigned char *)p)[sz - 1] = (unsigned char)sz;
    head = b;
    *bytes += sz;
    n++;
  }
}

static void release(struct block *b) {
  while (b) {
    struct block *next = b->next;
    CHECK(((unsigned char *)b)[b->size - 1] == (unsigned char)b->size, "block %p corrupted",
          (void *)b);
    free(b);
    b = next;
  }
}

static size_t small(size_t i) { return 32 + (i % 11) * 24; }
static size_t medium(size_t i) { return 20000 + (i % 5) * 30000; }
static size_t large(size_t i) { return (1u << 20) + (i % 7) * 300000; }
static size_t huge(size_t i) { return (48u << 20) + (i % 3) * (8u << 20); }

static void pattern(const char *name, size_t (*size)(size_t), int how) {
  size_t first, again;
  release(exhaust(size, how, &first));
  release(exhaust(size, how, &again));
  CHECK(first >= (64u << 20), "%s: only %zu MiB before NULL", name, first >> 20);
  CHECK(again >= first / 10 * 9, "%s: %zu MiB, then %zu MiB after freeing", name, first >> 20,
        again >> 20);
  printf("%s: %zu MiB, then %zu MiB\n", name, first >> 20, again >> 20);
}

static void grow(void) {
  size_t n = 4096;
  unsigned char *p = malloc(n);
  CHECK(p != NULL, "first block");
  if (!p) return;
  memset(p, 7, n);
  for (;;) {
    size_t m = n + n / 2;
    errno = 0;
    unsigned char *q = realloc(p, m);
    if (q == NULL) {
      CHECK(errno == ENOMEM, "realloc to %zu: errno %d", m, errno);
      break;
    }
    CHECK(q[0] == 7 && q[n - 1] == 7, "realloc to %zu lost the contents", m);
    memset(q + n, 7, m - n);
    p = q;
    n = m;
  }
  CHECK(p[0] == 7 && p[n - 1] == 7, "a failed realloc changed the block");
  printf("realloc: grew to %zu MiB\n", n >> 20);
  free(p);
}

int main(void) {
  /* Impossible sizes first: NULL and ENOMEM, whatever the limit. */
  errno = 0;
  CHECK(malloc(SIZE_MAX - 4096) == NULL && errno == ENOMEM, "malloc(SIZE_MAX)");
  errno = 0;
  CHECK(calloc(SIZE_MAX / 2, 4) == NULL && errno == ENOMEM, "calloc overflow");
  pattern("small malloc", small, 0);
  pattern("medium calloc", medium, 1);
  pattern("large malloc", large, 0);
  pattern("large posix_memalign", large, 2);
  pattern("huge malloc", huge, 0);
  grow();
  pattern("large malloc after realloc", large, 0);
  if (failures) {
    printf("%d failed\n", failures);
    return 1;
  }
  printf("ALL OK\n");
  return 0;
}
