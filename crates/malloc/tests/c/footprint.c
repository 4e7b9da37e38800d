/* A small program's footprint: 4,000 live objects of 8..408 B replaced
 * ROUNDS times (benches/real/c/small_footprint.c), reporting
 *   libm <0|1>        whether libm.so is mapped (this program does not use it)
 *   libgcc_s <0|1>    whether libgcc_s.so is mapped (nor this one)
 *   start <KiB>       anonymous resident after the first allocation
 *   end <KiB>         anonymous resident after the churn, objects still live
 *   live <KiB>        the bytes the live objects asked for
 *   hwm <KiB>         the process's peak resident (VmHWM: the kernel's
 *                     counters, which lag by up to a batch of pages a CPU)
 *   rss <KiB>         resident after the churn, counted exactly
 *                     (smaps_rollup's Rss: a walk of the page tables)
 *   thp <KiB>         anonymous memory backed by transparent huge pages
 *                     after the churn (AnonHugePages; -1 if unknown)
 *   data <KiB>        resident pages of libstrata's writable file-backed
 *                     mapping (its .data; 0 without the library)
 *   text <KiB>        resident pages of libstrata's text (0 without it)
 *   textsize <KiB>    the size of that mapping
 * Reads /proc with read(2) into static buffers: no stdio before the end. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[1 << 19];

static long slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    long len = 0, k;
    while (len < (long)sizeof buf - 1 && (k = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += k;
    close(fd);
    buf[len] = 0;
    return len;
}

/* Anonymous resident memory (RssAnon): the heap and the allocator's own
 * data, without the file pages of text that the kernel maps in lazily as
 * code first runs (their count depends on the file system and its
 * read-ahead, not on the allocator). */
static long anon_kib(void) {
    if (slurp("/proc/self/status") < 0) return -1;
    char *h = strstr(buf, "RssAnon:");
    return h ? atol(h + 8) : -1;
}

/* Resident KiB of libstrata's file-backed mappings with permissions
 * `perms` (" rw-p ": its .data; " r-xp ": its text), and their size in
 * `*size_kib` if not null. */
static long strata_kib(const char *perms, long *size_kib) {
    if (slurp("/proc/self/smaps") < 0) return -1;
    long kib = 0, size = 0;
    int in = 0;
    for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : 0) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        /* A mapping's header line starts "start-end perms ...". */
        char *dash = strchr(line, '-');
        int header = dash && dash != line && strchr(line, ' ') > dash;
        if (header)
            in = strstr(line, perms) && strstr(line, "libstrata");
        else if (in && !strncmp(line, "Rss:", 4))
            kib += atol(line + 4);
        else if (in && !strncmp(line, "Size:", 5))
            size += atol(line + 5);
        if (eol) *eol = '\n';
    }
    if (size_kib) *size_kib = size;
    return kib;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    enum { N = 4000 };
    static void *v[N];
    static size_t sz[N];
    free(malloc(16));
    long start = anon_kib();
    unsigned long x = 12345;
    for (long r = 0; r < rounds; r++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int i = x % N;
        free(v[i]);
        size_t s = 8 + (x >> 24) % 401;
        v[i] = malloc(s);
        if (!v[i]) return 2;
        memset(v[i], 1, s);
        sz[i] = s;
    }
    long end = anon_kib();
    size_t live = 0;
    for (int i = 0; i < N; i++) live += sz[i];
    slurp("/proc/self/maps");
    int libm = strstr(buf, "/libm.so") != NULL;
    int libgcc_s = strstr(buf, "/libgcc_s.so") != NULL;
    slurp("/proc/self/status");
    char *h = strstr(buf, "VmHWM:");
    long hwm = h ? atol(h + 6) : -1;
    long thp = -1, rss = -1;
    if (slurp("/proc/self/smaps_rollup") >= 0) {
        if ((h = strstr(buf, "AnonHugePages:"))) thp = atol(h + 14);
        if ((h = strstr(buf, "\nRss:"))) rss = atol(h + 5);
    }
    long data = strata_kib(" rw-p ", 0), text_size = 0;
    long text = strata_kib(" r-xp ", &text_size);
    for (int i = 0; i < N; i++) free(v[i]);
    printf("libm %d libgcc_s %d start %ld end %ld live %zu hwm %ld rss %ld thp %ld data %ld text %ld textsize %ld\n",
           libm, libgcc_s, start, end, live / 1024, hwm, rss, thp, data, text, text_size);
    return 0;
}
