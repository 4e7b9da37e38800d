/* strata.h: strata's own functions, for C programs that run on strata.
 *
 * They are exported by libstrata_malloc.so (LD_PRELOAD), linked in from
 * libstrata_malloc.a, or exported by a Rust program built with strata's
 * `override` feature. The standard allocation functions (malloc, free, ...)
 * and glibc's introspection functions (mallinfo2, malloc_info,
 * malloc_stats, malloc_trim) keep their own headers (<stdlib.h>,
 * <malloc.h>); crates/malloc/README.md describes them all.
 *
 * A program that may also run without strata can look these functions up
 * with dlsym(RTLD_DEFAULT, "strata_stats_json") instead of linking them.
 *
 * Conventions:
 * - Text is written snprintf-style: at most len - 1 bytes and a NUL into
 *   buf (nothing when len is 0, and buf may then be NULL); the return value
 *   is the length of the whole text, not counting the NUL. A return value
 *   of len or more means the text was cut.
 * - A failure returns -1 and sets errno.
 * - None of these functions allocates through Rust's global allocator or
 *   takes a lock across a call into the program. */
#ifndef STRATA_H
#define STRATA_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statistics ---------------------------------------------------------- */

/* Writes all of strata's statistics as one JSON document:
 *
 *   {"version":1,
 *    "stats":{"mapped_bytes":...,"allocated_bytes":...,"resident_bytes":...,
 *             "peak_resident_bytes":...,...},
 *    "options":{"decay_ms":"1000",...},
 *    "size_classes":[{"class":1,"size":8,"spans":...,"span_bytes":...,
 *                     "free_objects":...,"transfer_objects":...,
 *                     "span_free_objects":...,"uncarved_objects":...,
 *                     "thread_cache_objects":...},...],
 *    "thread_caches":{"live":2,"bytes":[40960,512]}}
 *
 * (one line; "stats" has every field of the Rust strata::Stats, named as
 * there; "size_classes" lists the classes in use, with the free objects of
 * each in the central lists ("free_objects": in transfer caches and in
 * spans) and in all thread caches; "thread_caches" gives each live cache's
 * bytes as it holds them now, largest first, at most 256 of them). Returns the document's length, snprintf-style. The figures move
 * between two calls: when asking for the length first (len 0), allocate
 * some room to spare. */
size_t strata_stats_json(char *buf, size_t len);

/* ---- memory -------------------------------------------------------------- */

/* Returns every free page strata holds to the OS now: flushes the calling
 * thread's cache, empties the transfer caches, releases all free spans.
 * Returns the bytes released. (malloc_trim(0) does the same and returns
 * 1 or 0.) */
size_t strata_release_free_memory(void);

/* Makes [ptr, ptr + len) resident now, so that writing it later takes no
 * page fault and cannot fail for lack of memory later. The range must lie
 * inside one live block from malloc (or any allocation function here).
 * Returns 0, or -1 with errno ENOMEM when the kernel refused, EINVAL for a
 * NULL ptr with a non-zero len. */
int strata_populate(void *ptr, size_t len);

/* ---- settings ------------------------------------------------------------ */

/* Sets a setting at run time. name is the environment variable
 * ("STRATA_DECAY_MS") or its short name ("decay_ms"); value is written as
 * for the variable:
 *
 *   decay_ms             milliseconds, or "never"
 *   background_release   0 or 1 (also true/false, on/off, yes/no); 0 stops
 *                        the thread at its next wake-up
 *   thread_cache_bytes   bytes: "4096", "64k", "8m", "2g"
 *   thread_caches_total  bytes
 *   dirty_max            bytes, or "unlimited"
 *   memory_limit         bytes, or "none"
 *   show_stats           0 or 1: print statistics to stderr at exit
 *   huge_pages_after     bytes, or "never"
 *   guarded_rate         a count: one small allocation in it, on average,
 *                        is guarded (docs/safety.md); 0 or "off": off
 *   guarded_max_per_sec  a count: guarded blocks made a second at most,
 *                        process-wide (2000); 0 or "unlimited": no limit
 *   profile              a path prefix (at most 510 bytes): heap profiling
 *                        on, a profile written at exit to
 *                        <prefix>.<pid>.heap.pb.gz (docs/profiling.md);
 *                        "off": no prefix, sampling off
 *   profile_interval     bytes: mean bytes between heap-profile samples
 *                        (2m)
 *   profile_signal       a signal ("USR2", "SIGUSR1", "PROF", "URG", a
 *                        number): profiling on, each signal writes a
 *                        numbered profile; strata's handler moves from the
 *                        signal before, which gets back its own; 0 or
 *                        "off": removed
 *   stack_walker         "strata" (its own reading of the call-frame
 *                        tables) or "system" (libgcc's), for the profiler
 *   verbose              read at start-up only: setting it fails with EPERM
 *
 * Each takes effect at once (thread caches refit to a new budget at their
 * next periodic check). Returns 0, or -1 with errno EINVAL for an unknown
 * name, a malformed value or a NULL argument, EPERM for a setting read at
 * start-up only, EAGAIN when the background thread (or the profiler's
 * signal thread or handler) could not be set up. */
int strata_set_option(const char *name, const char *value);

/* Heap profiling (docs/profiling.md). strata_profile_start(0) samples one
 * allocation per 2 MiB on average (or the interval in force);
 * strata_profile_dump writes pprof's profile.proto, gzipped, to `path`;
 * strata_profile_dump_collapsed writes collapsed stacks (`kind` 0: live
 * now, 1: allocated since the start, 2: live at the peak). The dumps
 * return 0, or an errno value (also stored in errno). */
void strata_profile_start(size_t interval);
void strata_profile_stop(void);
int strata_profile_dump(const char *path);
int strata_profile_dump_collapsed(const char *path, int kind);

/* Writes the value of a setting (named as for strata_set_option) into buf,
 * snprintf-style, as strata_set_option accepts it: "1000", "never", "0",
 * "USR2", a profile prefix.
 * Returns its length, or -1 with errno EINVAL for an unknown or NULL name. */
ssize_t strata_get_option(const char *name, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_H */
