/* The C ABI of libstrata_malloc.so, checked from C under LD_PRELOAD.
 *
 *   cc -std=gnu11 -O1 -fno-builtin -pthread abi_test.c -o abi_test -ldl
 *   LD_PRELOAD=target/debug/libstrata_malloc.so ./abi_test        # all checks
 *   STRATA_SHOW_STATS=1 LD_PRELOAD=... ./abi_test stats           # stats at exit
 *   ./abi_test resolve                      # only: is malloc strata's?
 *   LD_PRELOAD=... ./abi_test fork_quiet    # only: fork from a thread that
 *                                           # never allocated
 *
 * Prints "ALL OK" and exits 0 when every check passes; otherwise prints each
 * failed check to stderr and exits 1. -fno-builtin keeps the compiler from
 * folding malloc/free pairs away. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* 1 under strata's checked build (c_abi.rs passes it), which answers
 * malloc_usable_size with the size asked for and holds freed blocks in
 * quarantine (docs/safety.md). */
#ifndef STRATA_CHECKED
#define STRATA_CHECKED 0
#endif

static int checks, failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    __atomic_fetch_add(&checks, 1, __ATOMIC_RELAXED);                          \
    if (!(cond)) {                                                             \
      __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);                      \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
    }                                                                          \
  } while (0)

/* Sizes the compiler cannot see through (no -Walloc-size-larger-than). */
static volatile size_t HUGE_ = (size_t)PTRDIFF_MAX + 1;
static volatile size_t MAXDIFF = PTRDIFF_MAX;
static volatile size_t TOO_BIG = (size_t)1 << 62; /* valid, but never fits */
static volatile size_t SMAX = SIZE_MAX;

/* Functions glibc 2.36's headers do not declare: found with dlsym. */
typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
typedef void (*cfree_fn)(void *);
typedef void *(*memalign_fn)(size_t, size_t);

static const char *EXPORTS[] = {
    "malloc",        "free",          "calloc",         "realloc",
    "reallocarray",  "posix_memalign", "aligned_alloc", "memalign",
    "valloc",        "pvalloc",       "malloc_usable_size", "free_sized",
    "free_aligned_sized", "malloc_trim", "cfree",        "__libc_memalign",
    "__libc_malloc", "__libc_calloc", "__libc_realloc", "__libc_free",
    "__libc_valloc", "__libc_pvalloc",
    "malloc_stats",  "mallinfo",      "mallinfo2",      "malloc_info",
    "strata_stats_json", "strata_release_free_memory", "strata_populate",
    "strata_set_option", "strata_get_option",
};

/* Hides a pointer's identity from the compiler, so that it does not warn
 * about using a block after a realloc that (by design) failed. */
static void *launder(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* Fills the whole usable size and checks it reads back. */
static void fill_usable(void *p, unsigned char byte) {
  size_t n = malloc_usable_size(p);
  if (n == 0) return; /* the checked build's answer for a block of 0 */
  memset(p, byte, n);
  unsigned char *b = p;
  CHECK(b[0] == byte && b[n / 2] == byte && b[n - 1] == byte);
}

static void *lookup(const char *name) {
  void *f = dlsym(RTLD_DEFAULT, name);
  Dl_info info;
  CHECK(f != NULL);
  CHECK(f != NULL && dladdr(f, &info) != 0 && info.dli_fname != NULL &&
        strstr(info.dli_fname, "libstrata_malloc.so") != NULL);
  if (f == NULL || dladdr(f, &info) == 0 || info.dli_fname == NULL ||
      strstr(info.dli_fname, "libstrata_malloc.so") == NULL)
    fprintf(stderr, "  %s does not resolve to libstrata_malloc.so\n", name);
  return f;
}

static void test_resolution(void) {
  for (size_t i = 0; i < sizeof EXPORTS / sizeof *EXPORTS; i++) lookup(EXPORTS[i]);
  void *p = malloc(24);
#if STRATA_CHECKED
  CHECK(malloc_usable_size(p) == 24); /* the checked build: the size asked for */
#else
  CHECK(malloc_usable_size(p) == 32); /* a strata size class; glibc says 24 */
#endif
  free(p);
}

static void test_malloc(void) {
  void *a = malloc(0), *b = malloc(0);
  CHECK(a != NULL && b != NULL && a != b);
  free(a);
  free(b);
  free(NULL);
  enum { N = 2100 };
  static unsigned char *blocks[N];
  for (size_t n = 0; n < N; n++) {
    blocks[n] = malloc(n);
    CHECK(blocks[n] != NULL);
    CHECK(aligned(blocks[n], n > 8 ? 16 : 8));
    CHECK(malloc_usable_size(blocks[n]) >= n);
    memset(blocks[n], (int)(n & 0xff), malloc_usable_size(blocks[n]));
  }
  for (size_t n = 1; n < N; n++) { /* no block overlaps another */
    size_t u = malloc_usable_size(blocks[n]);
    CHECK(blocks[n][0] == (n & 0xff) && blocks[n][u - 1] == (n & 0xff));
  }
  for (size_t n = 0; n < N; n++) free(blocks[n]);
  size_t big[] = {4096, 8192, 65536, 262144, 262145, 1 << 20, (8 << 20) + 3};
  for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
    void *p = malloc(big[i]);
    CHECK(p != NULL && aligned(p, 16) && malloc_usable_size(p) >= big[i]);
    fill_usable(p, 0x5a);
    free(p);
  }
  CHECK(malloc_usable_size(NULL) == 0);
}

static void test_errors(void) {
  size_t bad[] = {HUGE_, SMAX, MAXDIFF, TOO_BIG};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    errno = 0;
    CHECK(malloc(bad[i]) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(1, bad[i]) == NULL && errno == ENOMEM);
  }
  errno = 0;
  CHECK(calloc(SMAX / 2 + 1, 2) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(calloc(TOO_BIG, 4) == NULL && errno == ENOMEM);
}

static void test_calloc(void) {
  size_t sizes[] = {1, 24, 100, 1000, 5000, 100000, 300000, 3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    for (int round = 0; round < 2; round++) {
      unsigned char *d = malloc(n); /* dirty a block, then free it */
      memset(d, 0xab, n);
      free(d);
      unsigned char *z = round ? calloc(n, 1) : calloc(1, n);
      CHECK(z != NULL && aligned(z, n > 8 ? 16 : 8));
      size_t nonzero = 0;
      for (size_t j = 0; j < n; j++) nonzero += z[j] != 0;
      CHECK(nonzero == 0);
      free(z);
    }
  }
  void *a = calloc(0, 0), *b = calloc(0, 5);
  CHECK(a != NULL && b != NULL && a != b);
  free(a);
  free(b);
}

static void fill_pattern(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + 3);
}
static int has_pattern(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i * 7 + 3)) return 0;
  return 1;
}

static void test_realloc(void) {
  unsigned char *p = realloc(NULL, 10);
  CHECK(p != NULL);
  fill_pattern(p, 10);
  size_t steps[] = {100, 1000, 10000, 300000, 3 << 20, 5 << 20, 1000, 20, 8, 300};
  size_t have = 10;
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    unsigned char *q = realloc(p, steps[i]);
    CHECK(q != NULL && aligned(q, steps[i] > 8 ? 16 : 8));
    CHECK(malloc_usable_size(q) >= steps[i]);
    size_t keep = have < steps[i] ? have : steps[i];
    CHECK(has_pattern(q, keep));
    fill_pattern(q, steps[i]);
    have = steps[i];
    p = q;
  }
  /* realloc(p, 0) frees p and returns NULL (glibc); the block is reused. */
  errno = 0;
  CHECK(realloc(p, 0) == NULL && errno == 0);
  void *r0 = realloc(NULL, 0);
  CHECK(r0 != NULL);
  free(r0);
  void *x = malloc(40);
  CHECK(realloc(x, 0) == NULL);
  void *y = malloc(40);
  /* The freed block is the next one handed out (the checked build's
   * quarantine holds it back instead). */
  CHECK(STRATA_CHECKED || y == x);
  free(y);
  /* A failed realloc leaves the block intact and valid. */
  size_t olds[] = {100, 1 << 20};
  size_t bad[] = {HUGE_, SMAX, MAXDIFF, TOO_BIG};
  for (size_t i = 0; i < 2; i++) {
    unsigned char *o = malloc(olds[i]);
    fill_pattern(o, olds[i]);
    for (size_t j = 0; j < sizeof bad / sizeof *bad; j++) {
      errno = 0;
      CHECK(realloc(launder(o), bad[j]) == NULL && errno == ENOMEM);
      CHECK(has_pattern(o, olds[i]) && malloc_usable_size(o) >= olds[i]);
    }
    free(o);
  }
}

static void test_reallocarray(void) {
  unsigned char *p = reallocarray(NULL, 3, 8);
  CHECK(p != NULL);
  fill_pattern(p, 24);
  errno = 0;
  CHECK(reallocarray(launder(p), SMAX / 2 + 1, 2) == NULL && errno == ENOMEM);
  CHECK(has_pattern(p, 24));
  p = reallocarray(p, 100, 10);
  CHECK(p != NULL && has_pattern(p, 24) && malloc_usable_size(p) >= 1000);
  CHECK(reallocarray(p, 0, 5) == NULL); /* realloc(p, 0): freed */
}

static void test_posix_memalign(void) {
  void *sentinel = (void *)0x1234, *m;
  size_t bad_align[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, SMAX};
  for (size_t i = 0; i < sizeof bad_align / sizeof *bad_align; i++) {
    m = sentinel;
    CHECK(posix_memalign(&m, bad_align[i], 16) == EINVAL && m == sentinel);
  }
  size_t sizes[] = {0, 1, 100, 5000, 300000};
  for (size_t a = sizeof(void *); a <= ((size_t)64 << 20); a *= 2) {
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      m = sentinel;
      CHECK(posix_memalign(&m, a, sizes[i]) == 0 && m != sentinel && aligned(m, a));
      CHECK(malloc_usable_size(m) >= sizes[i]);
      if (sizes[i] > 0) fill_usable(m, 0x11);
      free(m);
    }
  }
  m = sentinel;
  errno = 0;
  CHECK(posix_memalign(&m, 16, MAXDIFF) == ENOMEM && m == sentinel && errno == ENOMEM);
  m = sentinel;
  CHECK(posix_memalign(&m, TOO_BIG, 16) == ENOMEM && m == sentinel);
  m = sentinel;
  CHECK(posix_memalign(&m, 64, TOO_BIG) == ENOMEM && m == sentinel);
}

static void test_aligned_alloc_memalign(void) {
  size_t bad[] = {0, 3, 24, 48, 100, SMAX};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    errno = 0;
    CHECK(aligned_alloc(bad[i], 64) == NULL && errno == EINVAL);
  }
  size_t sizes[] = {1, 64, 4096, 100000};
  for (size_t a = 1; a <= ((size_t)64 << 20); a *= 2) {
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      void *p = aligned_alloc(a, sizes[i]);
      CHECK(p != NULL && aligned(p, a) && malloc_usable_size(p) >= sizes[i]);
      fill_usable(p, 0x22);
      free(p);
      p = memalign(a, sizes[i]);
      CHECK(p != NULL && aligned(p, a) && malloc_usable_size(p) >= sizes[i]);
      fill_usable(p, 0x33);
      free(p);
    }
  }
  errno = 0;
  CHECK(aligned_alloc(64, MAXDIFF) == NULL && errno == ENOMEM);
  /* memalign keeps glibc's leniency: non-powers of two round up. */
  void *p = memalign(24, 100);
  CHECK(p != NULL && aligned(p, 32));
  free(p);
  p = memalign(0, 16);
  CHECK(p != NULL && aligned(p, 16));
  free(p);
  errno = 0;
  CHECK(memalign(SMAX / 2 + 2, 16) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(memalign(64, HUGE_) == NULL && errno == ENOMEM);
  memalign_fn libc_memalign = (memalign_fn)lookup("__libc_memalign");
  if (libc_memalign) {
    p = libc_memalign(4096, 10);
    CHECK(p != NULL && aligned(p, 4096));
    free(p);
  }
}

static void test_valloc(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t sizes[] = {0, 1, 4097, 100000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    void *v = valloc(n);
    CHECK(v != NULL && aligned(v, page) && malloc_usable_size(v) >= n);
    fill_usable(v, 0x44);
    free(v);
    void *pv = pvalloc(n);
    size_t rounded = n == 0 ? page : (n + page - 1) / page * page;
    CHECK(pv != NULL && aligned(pv, page) && malloc_usable_size(pv) >= rounded);
    fill_usable(pv, 0x55);
    free(pv);
  }
  errno = 0;
  CHECK(pvalloc(SMAX - 10) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(valloc(SMAX) == NULL && errno == ENOMEM);
}

/* glibc's own names: the same heap as malloc/free, in every combination. */
typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);

static void test_libc_names(void) {
  malloc_fn lmalloc = (malloc_fn)lookup("__libc_malloc");
  calloc_fn lcalloc = (calloc_fn)lookup("__libc_calloc");
  realloc_fn lrealloc = (realloc_fn)lookup("__libc_realloc");
  free_fn lfree = (free_fn)lookup("__libc_free");
  malloc_fn lvalloc = (malloc_fn)lookup("__libc_valloc");
  malloc_fn lpvalloc = (malloc_fn)lookup("__libc_pvalloc");
  if (!lmalloc || !lcalloc || !lrealloc || !lfree || !lvalloc || !lpvalloc) return;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t sizes[] = {1, 40, 3000, 200000, 5 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    /* __libc_malloc's block, grown by realloc, freed by __libc_free. */
    unsigned char *p = lmalloc(n);
    CHECK(p != NULL && malloc_usable_size(p) >= n);
    fill_pattern(p, n);
    p = realloc(p, 2 * n);
    CHECK(p != NULL && has_pattern(p, n));
    lfree(p);
    /* malloc's block, grown by __libc_realloc, freed by free. */
    p = malloc(n);
    fill_pattern(p, n);
    p = lrealloc(p, n + 100);
    CHECK(p != NULL && has_pattern(p, n));
    free(p);
    /* __libc_calloc zeroes, even over a block just freed dirty. */
    p = lmalloc(n);
    memset(p, 0xAB, n);
    free(p);
    p = lcalloc(1, n);
    CHECK(p != NULL && p[0] == 0 && p[n / 2] == 0 && p[n - 1] == 0);
    lfree(p);
    void *v = lvalloc(n);
    CHECK(v != NULL && aligned(v, page));
    lfree(v);
    v = lpvalloc(n);
    CHECK(v != NULL && aligned(v, page) && malloc_usable_size(v) >= (n + page - 1) / page * page);
    free(v);
  }
  lfree(NULL);
  errno = 0;
  CHECK(lmalloc(SMAX) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(lcalloc(SMAX / 2, 3) == NULL && errno == ENOMEM);
  void *q = lmalloc(64);
  errno = 0;
  CHECK(lrealloc(q, SMAX) == NULL && errno == ENOMEM);
  CHECK(lrealloc(launder(q), 0) == NULL); /* frees, as realloc(p, 0) does */
}

static void test_sized_frees_and_trim(void) {
  free_sized_fn fs = (free_sized_fn)lookup("free_sized");
  free_aligned_sized_fn fas = (free_aligned_sized_fn)lookup("free_aligned_sized");
  cfree_fn cf = (cfree_fn)lookup("cfree");
  if (fs) {
    void *p = malloc(48);
    fs(p, 48);
    void *q = malloc(48);
    CHECK(STRATA_CHECKED || q == p); /* freed: handed out again */
    fs(q, 48);
    fs(NULL, 0);
    p = malloc(1 << 20);
    fs(p, 1 << 20);
  }
  if (fas) {
    void *p = aligned_alloc(64, 128);
    fas(p, 64, 128);
    void *q = aligned_alloc(64, 128);
    CHECK(STRATA_CHECKED || q == p);
    fas(q, 64, 128);
    p = aligned_alloc(1 << 16, 1 << 20);
    fas(p, 1 << 16, 1 << 20);
  }
  if (cf) cf(malloc(10));
  void *big = malloc(32 << 20);
  memset(big, 1, 32 << 20);
  free(big);
  /* With STRATA_DECAY_MS=0 the block may be released as soon as it is
   * freed, leaving the trim nothing to do. */
  const char *decay = getenv("STRATA_DECAY_MS");
  int trimmed = malloc_trim(0);
  CHECK(trimmed == 1 || (decay && strcmp(decay, "0") == 0 && trimmed == 0));
  CHECK(malloc_trim(0) == 0); /* nothing left to release */
}

/* ---- threads ------------------------------------------------------------ */

enum { SLOTS = 4096, WORKERS = 4 };
static void *slots[SLOTS];
static int rounds = 25000; /* per swapper thread; fork children use fewer */

static size_t size_for(uint64_t r) {
  switch (r % 16) {
  case 0: return 100000 + r % 300000; /* sometimes large */
  case 1: case 2: return 1000 + r % 8000;
  default: return 1 + r % 500;
  }
}

/* A block records its size in its first word and a byte pattern after. */
static void *make_block(size_t n) {
  n = n < sizeof(size_t) + 1 ? sizeof(size_t) + 1 : n;
  unsigned char *p = malloc(n);
  if (!p) return NULL;
  memcpy(p, &n, sizeof n);
  memset(p + sizeof n, (int)(n & 0xff), n - sizeof n);
  return p;
}
static void check_and_free(void *blk) {
  unsigned char *p = blk;
  size_t n;
  memcpy(&n, p, sizeof n);
  CHECK(n > sizeof n && malloc_usable_size(p) >= n);
  CHECK(p[sizeof n] == (n & 0xff) && p[n - 1] == (n & 0xff));
  free(p);
}

static void *swapper(void *arg) {
  uint64_t r = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  for (int i = 0; i < rounds; i++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    void *mine = make_block(size_for(r >> 20));
    CHECK(mine != NULL);
    void *old = __atomic_exchange_n(&slots[r % SLOTS], mine, __ATOMIC_ACQ_REL);
    if (old) check_and_free(old); /* usually another thread's block */
  }
  return NULL;
}

static pthread_key_t late_key;
static void late_destructor(void *v) {
  /* Runs at thread exit, possibly after strata's cache is gone. */
  void *p = malloc(77);
  CHECK(p != NULL);
  free(p);
  free(v);
}

static void *short_lived(void *arg) {
  void **out = arg;
  for (int i = 0; i < 64; i++) out[i] = make_block(16 + (size_t)i * 24);
  void *mine[64];
  for (int i = 0; i < 64; i++) mine[i] = make_block(8 + (size_t)i);
  for (int i = 0; i < 64; i++) check_and_free(mine[i]);
  pthread_setspecific(late_key, malloc(1000));
  return NULL; /* out[] is freed by the main thread after we exit */
}

static void test_threads(void) {
  pthread_t t[WORKERS];
  for (uintptr_t i = 0; i < WORKERS; i++) CHECK(pthread_create(&t[i], NULL, swapper, (void *)(i + 1)) == 0);
  for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < SLOTS; i++)
    if (slots[i]) check_and_free(slots[i]), slots[i] = NULL;
  CHECK(pthread_key_create(&late_key, late_destructor) == 0);
  static void *left[8][64];
  for (int round = 0; round < 8; round++) {
    pthread_t s[8];
    for (int i = 0; i < 8; i++) CHECK(pthread_create(&s[i], NULL, short_lived, left[i]) == 0);
    for (int i = 0; i < 8; i++) pthread_join(s[i], NULL);
    for (int i = 0; i < 8; i++)
      for (int j = 0; j < 64; j++) check_and_free(left[i][j]);
  }
}

/* ---- fork from a multi-threaded parent ---------------------------------- */

static volatile int stop_churn;
static void *churn(void *arg) {
  (void)arg;
  uint64_t r = (uintptr_t)&r;
  while (!__atomic_load_n(&stop_churn, __ATOMIC_RELAXED)) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    void *p = make_block(size_for(r));
    void *q = calloc(1, 1 + r % 3000);
    check_and_free(p);
    free(q);
  }
  return NULL;
}

static int child_work(void) {
  alarm(30); /* a deadlocked child dies of SIGALRM, which the parent sees */
  int before = failures;
  void *blocks[500];
  for (int i = 0; i < 500; i++) blocks[i] = make_block(size_for((uint64_t)i * 7919));
  for (int i = 0; i < 500; i++) check_and_free(blocks[i]);
  void *p = realloc(malloc(10), 1 << 20);
  CHECK(p != NULL);
  free(p);
  pthread_t t;
  rounds = 2000;
  CHECK(pthread_create(&t, NULL, swapper, (void *)99) == 0);
  pthread_join(t, NULL);
  return failures == before ? 0 : 1;
}

static void test_fork(void) {
  enum { CHURNERS = 2, FORKS = 16 };
  pthread_t t[CHURNERS];
  for (int i = 0; i < CHURNERS; i++) CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0);
  fflush(stdout);
  fflush(stderr);
  for (int i = 0; i < FORKS; i++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) exit(child_work());
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fprintf(stderr, "  fork child %d: status %#x\n", i, status);
  }
  __atomic_store_n(&stop_churn, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < CHURNERS; i++) pthread_join(t[i], NULL);
}

/* ---- fork from a thread that never allocated ------------------------------
 * Only the main thread allocates; a second thread that never calls the
 * allocator forks while it churns, and each child allocates. strata
 * registers its fork handlers when the process gets its second thread (in
 * the calloc that pthread_create makes for it), not at the first
 * allocation: without them, a child would inherit a lock the main thread
 * held and hang. Run alone (`abi_test fork_quiet`), in a fresh process. */

enum { QUIET_FORKS = 100 };
static int quiet_status[QUIET_FORKS];
static volatile int quiet_done;

static void *quiet_forker(void *arg) {
  (void)arg;
  for (int i = 0; i < QUIET_FORKS; i++) {
    for (volatile int spin = 0; spin < 20000; spin++) {
    }
    pid_t pid = fork();
    if (pid == 0) exit(child_work());
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) status = -1;
    quiet_status[i] = status;
  }
  __atomic_store_n(&quiet_done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void test_fork_from_a_quiet_thread(void) {
  uint64_t r = (uintptr_t)&r;
  void *ring[64] = {0};
  unsigned n = 0;
  /* Allocated before the thread exists, as a single-threaded program. */
  for (int i = 0; i < 64; i++) ring[i] = malloc(8 + i * 16);
  fflush(stdout);
  fflush(stderr);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, quiet_forker, NULL) == 0);
  while (!__atomic_load_n(&quiet_done, __ATOMIC_ACQUIRE)) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    /* Small blocks through the central lists and large ones through the
     * page heap: the main thread is often in a lock. */
    size_t size = n % 2 ? (size_t)(256 << 10) + r % (512 << 10) : 8 + r % 2048;
    free(ring[n % 64]);
    ring[n % 64] = n % 5 == 0 ? calloc(1, size) : malloc(size);
    n++;
  }
  for (int i = 0; i < 64; i++) free(ring[i]);
  pthread_join(t, NULL);
  for (int i = 0; i < QUIET_FORKS; i++) {
    CHECK(WIFEXITED(quiet_status[i]) && WEXITSTATUS(quiet_status[i]) == 0);
    if (!WIFEXITED(quiet_status[i]) || WEXITSTATUS(quiet_status[i]) != 0)
      fprintf(stderr, "  fork child %d of the quiet thread: status %#x\n", i, quiet_status[i]);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "stats") == 0) {
    free(malloc(100));
    puts("stats mode");
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "malloc_stats") == 0) {
    free(malloc(100));
    malloc_stats();
    return 0;
  }
  alarm(300); /* never hang the test suite */
  if (argc > 1 && strcmp(argv[1], "fork_quiet") == 0) {
    test_fork_from_a_quiet_thread();
    printf("abi_test fork_quiet: %d checks, %d failed\n", checks, failures);
    if (failures == 0) puts("ALL OK");
    return failures != 0;
  }
  test_resolution();
  if (argc > 1 && strcmp(argv[1], "resolve") == 0) return failures != 0;
  test_malloc();
  test_errors();
  test_calloc();
  test_realloc();
  test_reallocarray();
  test_posix_memalign();
  test_aligned_alloc_memalign();
  test_valloc();
  test_libc_names();
  test_sized_frees_and_trim();
  test_threads();
  test_fork();
  printf("abi_test: %d checks, %d failed\n", checks, failures);
  if (failures == 0) puts("ALL OK");
  return failures != 0;
}
