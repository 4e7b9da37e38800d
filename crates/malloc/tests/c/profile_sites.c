/* Two allocation sites with known bytes, for the heap profiler's test
 * (tests/profile.rs): site_a allocates 600 MiB and keeps 300, site_b
 * allocates 400 and keeps 100, in mixed sizes (the composition and why:
 * crates/strata/tests/profile.rs). Run under LD_PRELOAD with
 * STRATA_PROFILE set; writes the profile through strata_profile_dump
 * (found with dlsym, so the program also runs without strata) to argv[1],
 * then exits with the kept blocks live, so the profile written at exit
 * shows them too. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)

static uint64_t rng = 0x123456789abcdef1ull;

static size_t between(size_t lo, size_t hi) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return lo + (size_t)(rng % (hi - lo + 1));
}

struct blocks {
  void **p;
  size_t n;
};

static void push(struct blocks *b, void *p) { b->p[b->n++] = p; }

static void free_all(struct blocks *b) {
  for (size_t i = 0; i < b->n; i++) free(b->p[i]);
  b->n = 0;
}

/* Allocates blocks of lo..hi bytes until `total` bytes, keeping them. */
static inline __attribute__((always_inline)) void fill(size_t total, size_t lo, size_t hi,
                                                       struct blocks *keep) {
  size_t done = 0;
  while (done < total) {
    size_t n = between(lo, hi);
    if (n > total - done) n = total - done;
    char *p = malloc(n);
    if (p == NULL) abort();
    p[0] = 1;
    push(keep, p);
    done += n;
  }
}

__attribute__((noinline)) void site_a(size_t total, size_t lo, size_t hi, struct blocks *keep) {
  fill(total, lo, hi, keep);
}

__attribute__((noinline)) void site_b(size_t total, size_t lo, size_t hi, struct blocks *keep) {
  fill(total, lo, hi, keep);
}

int main(int argc, char **argv) {
  static void *pa[1 << 20], *pb[1 << 20], *pg[1 << 20];
  struct blocks a = {pa, 0}, b = {pb, 0}, gone = {pg, 0};
  for (int i = 0; i < 3; i++) {
    site_a(60 * MIB, 16, 4096, &gone);
    site_a(40 * MIB, 8 << 10, 1 << 20, &gone);
    free_all(&gone);
    site_b(60 * MIB, 16, 4096, &gone);
    site_b(40 * MIB, 8 << 10, 1 << 20, &gone);
    free_all(&gone);
  }
  site_a(40 * MIB, 16, 4096, &a);
  site_a(20 * MIB, 8 << 10, 256 << 10, &a);
  site_a(240 * MIB, 2 * MIB, 8 * MIB, &a);
  site_b(MIB, 16, 4096, &b);
  site_b(MIB, 8 << 10, 256 << 10, &b);
  site_b(98 * MIB, 4 * MIB, 8 * MIB, &b);
  if (argc > 1) {
    int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "strata_profile_dump");
    if (dump == NULL) {
      fprintf(stderr, "no strata_profile_dump: not running under strata\n");
      return 2;
    }
    if (dump(argv[1]) != 0) {
      perror("strata_profile_dump");
      return 1;
    }
  }
  return 0; /* the kept blocks stay live for the dump at exit */
}
