/* glibc's introspection functions and strata's own (strata.h), checked from
 * C against each other. Run under LD_PRELOAD by tests/introspect.rs, and
 * linked with libstrata_malloc.a as well (the same checks, then "static").
 *
 *   cc -std=gnu11 -O1 -fno-builtin -Iinclude introspect.c -o introspect
 *   LD_PRELOAD=target/debug/libstrata_malloc.so ./introspect         # all checks
 *   LD_PRELOAD=... ./introspect malloc_stats                         # mallinfo2 on
 *       stdout, then malloc_stats() on stderr, from the same moment
 *
 * Prints "ALL OK" and exits 0 when every check passes; otherwise prints each
 * failed check to stderr and exits 1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"

static int checks, failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    checks++;                                                                  \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
    }                                                                          \
  } while (0)

#define TEN_MB ((size_t)10 << 20)

/* The number after "key": in a JSON text, or -1. */
static long long json_number(const char *json, const char *key) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *at = strstr(json, pat);
  return at ? strtoll(at + strlen(pat), NULL, 10) : -1;
}

static void mallinfo_agrees(void) {
  char *big = malloc(TEN_MB);
  memset(big, 1, TEN_MB);
  struct mallinfo2 m = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
  CHECK(m.uordblks >= TEN_MB);
  CHECK(m.arena == m.uordblks + m.fordblks);
  CHECK(m.fordblks >= m.fsmblks);
  CHECK(m.usmblks >= m.uordblks);
  /* Nothing allocated between the two calls: the int view is the same
   * snapshot, saturated. */
  CHECK((size_t)mi.uordblks == (m.uordblks > INT32_MAX ? INT32_MAX : m.uordblks));
  CHECK((size_t)mi.arena == (m.arena > INT32_MAX ? INT32_MAX : m.arena));
  /* A huge block (a mapping of its own) is glibc's hblkhd, not uordblks. */
  size_t huge = (size_t)64 << 20;
  char *h = malloc(huge);
  struct mallinfo2 mh = mallinfo2();
  CHECK(mh.hblks == m.hblks + 1);
  CHECK(mh.hblkhd >= m.hblkhd + huge);
  CHECK(mh.uordblks < m.uordblks + huge);
  free(h);
  CHECK(mallinfo2().hblks == m.hblks);
  free(big);
  CHECK(mallinfo2().uordblks < m.uordblks);
}

/* Small blocks freed on another thread, which then waits: they leave
 * uordblks at once, though every free went only into that thread's cache. */
static size_t before_small;
static pthread_barrier_t freed, read_done;

static void *free_small_then_wait(void *arg) {
  (void)arg;
  enum { N = 1000, SIZE = 10000 };
  static char *blocks[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(SIZE);
    memset(blocks[i], i, SIZE);
  }
  CHECK(mallinfo2().uordblks >= before_small + (size_t)N * SIZE);
  for (int i = 0; i < N; i++)
    free(blocks[i]);
  pthread_barrier_wait(&freed);
  pthread_barrier_wait(&read_done);
  return NULL;
}

static void freed_small_blocks_leave_uordblks(void) {
  pthread_t t;
  before_small = mallinfo2().uordblks;
  pthread_barrier_init(&freed, NULL, 2);
  pthread_barrier_init(&read_done, NULL, 2);
  CHECK(pthread_create(&t, NULL, free_small_then_wait, NULL) == 0);
  pthread_barrier_wait(&freed);
  struct mallinfo2 m = mallinfo2();
  pthread_barrier_wait(&read_done);
  pthread_join(t, NULL);
  /* What the thread's refills carved and did not hand out is the slack. */
  CHECK(m.uordblks < before_small + ((size_t)512 << 10));
  CHECK(m.arena == m.uordblks + m.fordblks);
}

static void malloc_info_agrees(void) {
  char *big = malloc(TEN_MB);
  memset(big, 2, TEN_MB);
  /* A stream with a buffer of its own, so that writing allocates nothing
   * between mallinfo2 and malloc_info. */
  static char streambuf[1 << 16];
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (f == NULL)
    return;
  setvbuf(f, streambuf, _IOFBF, sizeof streambuf);
  struct mallinfo2 m = mallinfo2();
  CHECK(malloc_info(0, f) == 0);
  errno = 0;
  CHECK(malloc_info(1, f) == -1 && errno == EINVAL);
  long n = ftell(f);
  rewind(f);
  char *xml = calloc(1, (size_t)n + 1);
  CHECK(fread(xml, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  CHECK(strncmp(xml, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", 41) == 0);
  CHECK(n > 10 && strcmp(xml + n - 10, "</malloc>\n") == 0);
  char want[256];
  snprintf(want, sizeof want, "<system type=\"current\" size=\"%zu\"/>", m.arena);
  CHECK(strstr(xml, want) != NULL);
  snprintf(want, sizeof want, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>", m.hblks,
           m.hblkhd);
  CHECK(strstr(xml, want) != NULL);
  snprintf(want, sizeof want, "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>",
           m.smblks, m.fsmblks);
  CHECK(strstr(xml, want) != NULL);
  snprintf(want, sizeof want, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>",
           m.ordblks, m.fordblks - m.fsmblks);
  CHECK(strstr(xml, want) != NULL);
  /* The whole XML goes to stdout too, for the caller to parse. */
  printf("XML-BEGIN\n%sXML-END\n", xml);
  free(xml);
  free(big);
}

static void stats_json_agrees(void) {
  char *big = malloc(TEN_MB);
  memset(big, 3, TEN_MB);
  size_t need = strata_stats_json(NULL, 0);
  CHECK(need > 100);
  size_t len = need + 4096;
  char *json = malloc(len);
  size_t got = strata_stats_json(json, len);
  CHECK(got < len && strlen(json) == got);
  CHECK(strncmp(json, "{\"version\":1,\"stats\":{", 22) == 0);
  CHECK(json_number(json, "allocated_bytes") >= (long long)TEN_MB);
  CHECK(json_number(json, "resident_bytes") >= (long long)TEN_MB);
  CHECK(json_number(json, "peak_resident_bytes") >= json_number(json, "resident_bytes"));
  CHECK(strstr(json, "\"size_classes\":[{\"class\":") != NULL);
  CHECK(strstr(json, "\"thread_caches\":{\"live\":") != NULL);
  /* Cut short: NUL-terminated, and the length of the whole is returned. */
  char small[16];
  memset(small, 'x', sizeof small);
  CHECK(strata_stats_json(small, sizeof small) > sizeof small);
  CHECK(small[15] == 0 && strncmp(small, "{\"version\":1,\"s", 15) == 0);
  free(json);
  free(big);
}

static void settings_by_name(void) {
  char buf[64];
  CHECK(strata_set_option("decay_ms", "250") == 0);
  CHECK(strata_get_option("STRATA_DECAY_MS", buf, sizeof buf) == 3 && strcmp(buf, "250") == 0);
  CHECK(strata_set_option("STRATA_DIRTY_MAX", "8m") == 0);
  CHECK(strata_get_option("dirty_max", buf, sizeof buf) == 7 && strcmp(buf, "8388608") == 0);
  CHECK(strata_set_option("huge_pages_after", "never") == 0);
  CHECK(strata_get_option("huge_pages_after", buf, sizeof buf) == 5 &&
        strcmp(buf, "never") == 0);
  /* Cut short: the length of the whole value. */
  CHECK(strata_get_option("dirty_max", buf, 4) == 7 && strcmp(buf, "838") == 0);
  CHECK(strata_get_option("dirty_max", NULL, 0) == 7);
  errno = 0;
  CHECK(strata_set_option("no_such_setting", "1") == -1 && errno == EINVAL);
  errno = 0;
  CHECK(strata_set_option("decay_ms", "soon") == -1 && errno == EINVAL);
  errno = 0;
  CHECK(strata_set_option("thread_cache_bytes", "12x") == -1 && errno == EINVAL);
  errno = 0;
  CHECK(strata_set_option("decay_ms", NULL) == -1 && errno == EINVAL);
  errno = 0;
  CHECK(strata_set_option("verbose", "1") == -1 && errno == EPERM);
  errno = 0;
  CHECK(strata_get_option("no_such_setting", buf, sizeof buf) == -1 && errno == EINVAL);
  /* A refused value leaves the setting alone. */
  CHECK(strata_get_option("decay_ms", buf, sizeof buf) == 3 && strcmp(buf, "250") == 0);
  /* The JSON report shows settings as they read back. */
  char json[1 << 16];
  strata_stats_json(json, sizeof json);
  CHECK(strstr(json, "\"decay_ms\":\"250\"") != NULL);
  CHECK(json_number(json, "decay_ms") == 250);
  CHECK(strata_set_option("decay_ms", "1000") == 0);
  /* The heap profiler's settings are rows too; its prefix reads back as text
     (and, in the JSON report, as a JSON string). */
  CHECK(strata_set_option("profile_interval", "2m") == 0);
  CHECK(strata_get_option("STRATA_PROFILE_INTERVAL", buf, sizeof buf) == 7 &&
        strcmp(buf, "2097152") == 0);
  CHECK(strata_get_option("profile_signal", buf, sizeof buf) == 3 && strcmp(buf, "off") == 0);
  errno = 0;
  CHECK(strata_set_option("profile_signal", "HUP") == -1 && errno == EINVAL);
  CHECK(strata_set_option("STRATA_STACK_WALKER", "system") == 0);
  CHECK(strata_get_option("stack_walker", buf, sizeof buf) == 6 && strcmp(buf, "system") == 0);
  CHECK(strata_set_option("stack_walker", "strata") == 0);
  CHECK(strata_set_option("STRATA_PROFILE", "/nonexistent/\"p\"") == 0);
  CHECK(strata_get_option("profile", buf, sizeof buf) == 16 &&
        strcmp(buf, "/nonexistent/\"p\"") == 0);
  strata_stats_json(json, sizeof json);
  CHECK(strstr(json, "\"profile\":\"/nonexistent/\\\"p\\\"\"") != NULL);
  CHECK(strata_set_option("profile", "off") == 0);
  CHECK(strata_get_option("profile", buf, sizeof buf) == 3 && strcmp(buf, "off") == 0);
}

static void memory_functions(void) {
  size_t len = (size_t)4 << 20;
  char *p = malloc(len);
  CHECK(strata_populate(p, len) == 0);
  CHECK(strata_populate(p, 0) == 0);
  errno = 0;
  CHECK(strata_populate(NULL, 1) == -1 && errno == EINVAL);
  p[len - 1] = 1;
  free(p);
  CHECK(strata_set_option("decay_ms", "never") == 0);
  p = malloc(len);
  memset(p, 4, len);
  free(p);
  CHECK(mallinfo2().keepcost >= len);
  CHECK(strata_release_free_memory() >= len);
  CHECK(mallinfo2().keepcost == 0);
  CHECK(strata_set_option("decay_ms", "1000") == 0);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "malloc_stats") == 0) {
    char *big = malloc(TEN_MB);
    memset(big, 5, TEN_MB);
    struct mallinfo2 m = mallinfo2();
    malloc_stats();
    printf("arena=%zu uordblks=%zu hblkhd=%zu\n", m.arena, m.uordblks, m.hblkhd);
    free(big);
    return 0;
  }
  mallinfo_agrees();
  freed_small_blocks_leave_uordblks();
  malloc_info_agrees();
  stats_json_agrees();
  settings_by_name();
  memory_functions();
  printf("%d checks, %d failed\n", checks, failures);
  if (failures == 0)
    printf("ALL OK\n");
  return failures != 0;
}
