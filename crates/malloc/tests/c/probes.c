/* Bad uses of the heap, one per run: `probes NAME` does the one named and,
 * if nothing stopped it, prints "probe NAME completed" and exits 0.
 * `probes list` prints the names. Run under LD_PRELOAD to see what an
 * allocator catches (crates/malloc/tests/probes.sh prints the table of
 * docs/safety.md; crates/malloc/tests/probes.rs asserts strata's verdicts).
 *
 *   cc -O1 -fno-builtin probes.c -o probes
 *
 * Every pointer goes through launder() so the compiler cannot see (and warn
 * about, or drop) what is done with it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *launder(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

static void touch(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static char static_block[64] __attribute__((aligned(16)));

static void double_free_immediate(void) {
  char *p = malloc(32);
  free(p);
  free(launder(p));
}

static void double_free_interleaved(void) {
  char *p = malloc(32), *q = malloc(32);
  free(p);
  free(q);
  free(launder(p));
}

static void double_free_4k(void) {
  char *p = malloc(4096);
  free(p);
  free(launder(p));
}

/* The freed block waits while blocks of other sizes come and go. */
static void double_free_after_other_sizes(void) {
  char *p = malloc(32);
  free(p);
  static const size_t sizes[] = {16, 64, 100, 500, 3000, 20000};
  void *kept[6];
  for (int i = 0; i < 6; i++) kept[i] = launder(malloc(sizes[i]));
  free(launder(p));
  for (int i = 0; i < 6; i++) free(kept[i]);
}

static void double_free_large(void) {
  char *p = malloc(1 << 20);
  free(p);
  free(launder(p));
}

static void free_stack(void) {
  char local[64];
  touch(local);
  free(launder(local));
}

static void free_static(void) { free(launder(static_block)); }

static void free_interior(void) {
  char *p = malloc(64);
  free(launder(p + 16));
}

/* In strata a 40-byte request is served from the 48-byte class (the
 * checked build adds 8 bytes to the request, and has that class too),
 * whose spans are one 8 KiB page of 170 objects and 32 bytes left over:
 * 8160 bytes into the page is a multiple of 48 past the last object. For
 * other allocators it is some address inside the heap. */
static void free_past_last_object(void) {
  char *p = malloc(40);
  uintptr_t page = (uintptr_t)p & ~(uintptr_t)8191;
  free(launder((void *)(page + 8160)));
}

static void overflow_1(void) {
  char *p = malloc(24);
  ((char *)launder(p))[24] = 0; /* a string's terminator, one too far */
  free(p);
}

static void overflow_32(void) {
  char *p = malloc(24);
  memset(launder(p + 24), 'x', 32);
  free(p);
}

static void overrun_1m_large(void) {
  char *p = malloc(1 << 20);
  memset(launder(p), 'x', 2 << 20);
  free(p);
}

/* Writes a freed block, then the program goes on allocating and freeing
 * blocks of its size. */
static void uaf_write_then_malloc(void) {
  char *p = malloc(32);
  free(p);
  memset(launder(p), 'A', 32);
  static void *more[1000];
  for (int i = 0; i < 1000; i++) more[i] = launder(malloc(32));
  for (int i = 0; i < 1000; i++) free(more[i]);
}

static void zero_size_write(void) {
  char *p = malloc(0);
  ((char *)launder(p))[0] = 'x';
  free(p);
}

static void zero_size_double_free(void) {
  char *p = malloc(0);
  free(p);
  free(launder(p));
}

static void realloc_freed(void) {
  char *p = malloc(32);
  free(p);
  char *q = realloc(launder(p), 64);
  touch(q);
}

static const struct {
  const char *name;
  void (*run)(void);
} probes[] = {
    {"double_free_immediate", double_free_immediate},
    {"double_free_interleaved", double_free_interleaved},
    {"double_free_4k", double_free_4k},
    {"double_free_after_other_sizes", double_free_after_other_sizes},
    {"double_free_large", double_free_large},
    {"free_stack", free_stack},
    {"free_static", free_static},
    {"free_interior", free_interior},
    {"free_past_last_object", free_past_last_object},
    {"overflow_1", overflow_1},
    {"overflow_32", overflow_32},
    {"overrun_1m_large", overrun_1m_large},
    {"uaf_write_then_malloc", uaf_write_then_malloc},
    {"zero_size_write", zero_size_write},
    {"zero_size_double_free", zero_size_double_free},
    {"realloc_freed", realloc_freed},
};

int main(int argc, char **argv) {
  size_t n = sizeof probes / sizeof probes[0];
  if (argc != 2) {
    fprintf(stderr, "usage: %s NAME | list\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "list") == 0) {
    for (size_t i = 0; i < n; i++) printf("%s\n", probes[i].name);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (strcmp(argv[1], probes[i].name) == 0) {
      probes[i].run();
      printf("probe %s completed\n", probes[i].name);
      return 0;
    }
  }
  fprintf(stderr, "no probe %s\n", argv[1]);
  return 2;
}
