/* Many threads alive at once, each of which has used malloc: starts `n`
 * threads (default 600) with the default thread attributes; each one
 * mallocs and frees some small objects, keeps a few, and waits until all
 * the threads that could be started are alive at the same time. A failed
 * pthread_create is counted, not fatal. Prints
 *
 *   many_threads: started S of N threads ...
 *
 * with the first pthread_create error and the kernel's commit figures
 * (Committed_AS, CommitLimit from /proc/meminfo) while all are alive:
 * under strict overcommit (vm.overcommit_memory=2) each thread's stack and
 * whatever the allocator maps per thread count against CommitLimit, so the
 * count shows how much an allocator adds per thread. Exits 0 only if all N
 * threads started and every malloc succeeded.
 *
 *   cc -O1 -pthread -fno-builtin crates/malloc/tests/c/many_threads.c -o many_threads
 *   LD_PRELOAD=$PWD/target/debug/libstrata_malloc.so ./many_threads [n]
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int arrived;       /* threads that did their mallocs and wait */
static int released;      /* set by main once all started threads arrived */
static int malloc_failed; /* mallocs that returned NULL, all threads */

static void *worker(void *arg) {
  unsigned seed = (unsigned)(size_t)arg;
  void *keep[KEEP] = {0};
  int failed = 0;
  for (int i = 0; i < 64; i++) {
    size_t size = 16 + (seed * 7919u + (unsigned)i * 104729u) % 2048;
    char *p = malloc(size);
    if (!p) {
      failed++;
      continue;
    }
    memset(p, i, size);
    if (i % 8 == 0) {
      free(keep[i / 8]);
      keep[i / 8] = p;
    } else {
      free(p);
    }
  }
  pthread_mutex_lock(&lock);
  arrived++;
  malloc_failed += failed;
  pthread_cond_broadcast(&changed);
  while (!released) pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < KEEP; i++) free(keep[i]);
  return NULL;
}

/* The value in KiB of a /proc/meminfo line, or -1. */
static long meminfo_kib(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t k = strlen(key);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, k) == 0 && line[k] == ':') {
      v = atol(line + k + 1);
      break;
    }
  fclose(f);
  return v;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 600;
  if (n <= 0) {
    fprintf(stderr, "usage: many_threads [n > 0]\n");
    return 2;
  }
  pthread_t *tids = calloc((size_t)n, sizeof *tids);
  if (!tids) {
    fprintf(stderr, "many_threads: calloc failed\n");
    return 1;
  }
  int started = 0, first_err = 0;
  for (int i = 0; i < n; i++) {
    int err = pthread_create(&tids[started], NULL, worker, (void *)(size_t)i);
    if (err) {
      if (!first_err) first_err = err;
      continue;
    }
    started++;
  }

  pthread_mutex_lock(&lock);
  while (arrived < started) pthread_cond_wait(&changed, &lock);
  long committed = meminfo_kib("Committed_AS"), limit = meminfo_kib("CommitLimit");
  released = 1;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
  free(tids);

  printf("many_threads: started %d of %d threads (first pthread_create error: %s); "
         "%d failed mallocs; with all alive: Committed_AS %ld MiB, CommitLimit %ld MiB\n",
         started, n, first_err ? strerror(first_err) : "none", malloc_failed,
         committed < 0 ? -1 : committed >> 10, limit < 0 ? -1 : limit >> 10);
  return started == n && malloc_failed == 0 ? 0 : 1;
}
