//! Configuration from `STRATA_*` environment variables, read once at start-up
//! without allocating: the environment (`environ`) is scanned in place and
//! each value parsed by its row of [`crate::options`], the parser
//! [`crate::set_option`] uses at run time too. The heap profiler's
//! settings are not fields of [`Config`]: the profiler applies them at its
//! start-up through the same rows.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `STRATA_THREAD_CACHE_BYTES` | largest byte budget of one thread's cache (`k`, `m`, `g` suffixes) | 32 MiB |
//! | `STRATA_THREAD_CACHES_TOTAL` | bytes all threads' caches may hold together: each cache draws its budget from it as its lists grow, up to an equal share of it (at least 128 KiB, at most `STRATA_THREAD_CACHE_BYTES`), refitted as threads come and go | 64 MiB |
//! | `STRATA_DIRTY_MAX` | free memory kept resident for reuse at most (or a quarter of the memory in use, or the size of the large blocks in use, if more; plus what the program took back after such a release, at most twice this), whatever the decay delay; more is released at once (`unlimited`: leave it all to decay) | 16 MiB |
//! | `STRATA_DECAY_MS` | how long free memory stays resident before it goes back to the OS; `0`: at once; `never` | 1000 |
//! | `STRATA_BACKGROUND_RELEASE` | `1`: a background thread runs decay even when the program is idle | off |
//! | `STRATA_MEMORY_LIMIT` | a soft limit on the memory strata holds: near it (and near the cgroup's `memory.max` / `memory.high`, read by itself), free memory and the caches go back to the OS before the heap grows | none |
//! | `STRATA_SHOW_STATS` | `1`: print statistics to stderr at exit | off |
//! | `STRATA_PROFILE` | a path prefix: heap profiling on, profile written at exit to `<prefix>.<pid>.heap.pb.gz` (pprof) and `.inuse/.alloc/.peak.collapsed` (`crate::profile`) | off |
//! | `STRATA_PROFILE_INTERVAL` | mean bytes between heap-profile samples (`k`, `m`, `g` suffixes) | 2 MiB |
//! | `STRATA_PROFILE_SIGNAL` | a signal (`USR2`, `SIGUSR1`, a number) that writes a numbered profile (profiling on; prefix `strata-profile` if `STRATA_PROFILE` is unset) | none |
//! | `STRATA_STACK_WALKER` | how the heap profiler captures stacks: `strata` (its own reading of the call-frame tables) or `system` (libgcc's walker) | `strata` |
//! | `STRATA_HUGE_PAGES_AFTER` | ask for transparent huge pages on all heap growth once the heap has grown by this much (`0`: from the start); growth for a plain request of 4 MiB or more asks either way while the heap is under 64 MiB | never |
//! | `STRATA_GUARDED_RATE` | guarded sampling (`crate::guarded`): one small allocation in this many, on average, gets a page of its own between guard pages, so that an overflow, underflow or use after free of it stops the program with a report; `0` or `off`: off; 1000 is the suggested rate | off |
//! | `STRATA_GUARDED_MAX_PER_SEC` | guarded blocks made a second at most, process-wide: the rate's picks past it are ordinary allocations, so that a program allocating tens of millions of blocks a second spends about 1% of a core on guarded ones; `0` or `unlimited`: every pick | 2000 |
//! | `STRATA_VERBOSE` | `1`: warn on stderr, at start-up, about every `STRATA_*` variable that is not one of these or whose value does not parse (such a variable is ignored either way) | off |
//!
//! A value that does not parse leaves the default in force.

use core::fmt::Write;

use crate::options::{OptionRow, OPTIONS};
use crate::text::SliceWriter;

/// The settings in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Byte budget of each thread's cache at most.
    pub thread_cache_bytes: usize,
    /// Bytes all threads' caches may hold together.
    pub thread_caches_total: usize,
    /// Free dirty bytes the page heap keeps at most (besides a quarter of
    /// the bytes in use).
    pub dirty_max: usize,
    /// A soft limit on the memory strata holds (0: none but the cgroup's).
    pub memory_limit: usize,
    /// Print statistics to stderr at exit.
    pub show_stats: bool,
    /// Milliseconds a free dirty span stays resident before decay releases it.
    pub decay_ms: u64,
    /// Run decay from a background thread too.
    pub background_release: bool,
    /// Bytes of heap growth after which all new heap memory is hinted for
    /// transparent huge pages; `usize::MAX`: never (growth for a plain
    /// request of 4 MiB or more is hinted regardless while the heap is under
    /// 64 MiB).
    pub huge_pages_after: usize,
    /// Warn about `STRATA_*` variables that are unknown or malformed.
    pub verbose: bool,
    /// One small allocation in this many, on average, is guarded
    /// (`crate::guarded`); 0: off.
    pub guarded_rate: usize,
    /// Guarded blocks made a second at most, process-wide; 0: no limit.
    pub guarded_max_per_sec: usize,
}

impl Config {
    /// The defaults, before the environment is read.
    pub const DEFAULT: Config = Config {
        thread_cache_bytes: strata_threadcache::registry_defaults::MAX_CACHE_BYTES,
        thread_caches_total: strata_threadcache::registry_defaults::TOTAL_CACHE_BYTES,
        dirty_max: strata_pageheap::DEFAULT_DIRTY_MAX,
        memory_limit: 0,
        show_stats: false,
        decay_ms: strata_pageheap::DEFAULT_DECAY_MS,
        background_release: false,
        huge_pages_after: strata_pageheap::DEFAULT_HUGE_PAGES_AFTER,
        verbose: false,
        guarded_rate: 0,
        guarded_max_per_sec: crate::guarded::DEFAULT_MAX_PER_SEC,
    };

    /// The defaults overridden by the environment. A variable that is not
    /// a setting, or whose value does not parse, is ignored here;
    /// `STRATA_VERBOSE=1` names it on stderr at start-up.
    pub fn from_env() -> Config {
        let mut c = Config::DEFAULT;
        for_each_strata_var(|name, value| {
            if let Some(row) = setting_named(name).filter(|r| r.in_config()) {
                if let Ok(v) = row.parse(value) {
                    row.put(&mut c, v);
                }
            }
        });
        c
    }
}

/// The row of the variable `name` (the full name only: short names are not
/// variables).
fn setting_named(name: &[u8]) -> Option<&'static OptionRow> {
    OPTIONS.iter().find(|o| o.var.as_bytes() == name)
}

/// Writes a warning to stderr for every `STRATA_*` variable that is not a
/// setting or whose value does not parse, saying what was expected
/// (`STRATA_VERBOSE=1`). Formats on the stack, allocates nothing.
pub(crate) fn warn_about_env() {
    for_each_strata_var(|name, value| {
        let mut buf = [0u8; 640];
        let mut w = SliceWriter::new(&mut buf);
        w.write_bytes(b"strata: ");
        w.write_bytes(name);
        match setting_named(name) {
            None => {
                w.write_bytes(b" is not a strata setting, ignored (the settings:");
                for o in OPTIONS.iter() {
                    w.write_bytes(b" ");
                    w.write_bytes(o.var.as_bytes());
                }
                w.write_bytes(b")");
            }
            Some(row) => match row.parse(value) {
                Ok(_) => return,
                Err(e) => {
                    w.write_bytes(b"=");
                    w.write_bytes(value);
                    let _ = write!(w, " ignored: {e}; {} stays", row.default_value());
                }
            },
        }
        w.write_bytes(b"\n");
        strata_os::write_stderr(&[w.written()]);
    });
}

pub(crate) use crate::options::parse_size;

/// Calls `f` with the value of `STRATA_*` variable `name` if it is set.
pub(crate) fn with_env_value(name: &[u8], mut f: impl FnMut(&[u8])) {
    for_each_strata_var(|n, v| {
        if n == name {
            f(v);
        }
    });
}

extern "C" {
    /// The process's environment: null, or a null-terminated array of
    /// `NAME=value` strings.
    static environ: *const *const u8;
}

/// Calls `f` with the name and value of every `STRATA_*` variable, read in
/// place (no `getenv`, no copy). Like `getenv`, not safe against a
/// concurrent `setenv`; strata's start-up runs before the program asks for
/// memory, or on its first request.
fn for_each_strata_var(mut f: impl FnMut(&[u8], &[u8])) {
    const PREFIX: &[u8] = b"STRATA_";
    // SAFETY: `environ` is null or a null-terminated array of pointers to
    // NUL-terminated strings; the prefix test stops at the first byte that
    // differs (a NUL does), and the length is found by reading up to the
    // NUL.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let e = *entry;
            entry = entry.add(1);
            if !PREFIX.iter().enumerate().all(|(i, &c)| *e.add(i) == c) {
                continue;
            }
            let mut n = PREFIX.len();
            while *e.add(n) != 0 {
                n += 1;
            }
            let s = core::slice::from_raw_parts(e, n);
            match s.iter().position(|&b| b == b'=') {
                Some(i) => f(&s[..i], &s[i + 1..]),
                None => f(s, &[]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{for_each_strata_var, setting_named};

    #[test]
    fn variables_are_found_in_the_environment() {
        // Names no other test sets.
        std::env::set_var("STRATA_CONFIG_TEST_SIZE", "64k");
        std::env::set_var("STRATA_CONFIG_TEST_EMPTY", "");
        std::env::set_var("NOT_STRATA_CONFIG_TEST", "1");
        let mut seen = Vec::new();
        for_each_strata_var(|n, v| seen.push((n.to_vec(), v.to_vec())));
        assert!(seen.contains(&(b"STRATA_CONFIG_TEST_SIZE".to_vec(), b"64k".to_vec())));
        assert!(seen.contains(&(b"STRATA_CONFIG_TEST_EMPTY".to_vec(), Vec::new())));
        assert!(seen.iter().all(|(n, _)| n.starts_with(b"STRATA_")));
        assert!(setting_named(b"STRATA_DECAY_MS").is_some());
        assert!(setting_named(b"decay_ms").is_none());
        assert!(setting_named(b"STRATA_CONFIG_TEST_SIZE").is_none());
    }
}

/// The configuration in force, kept in atomics so it can be read from any
/// thread without a lock.
pub(crate) mod state {
    use super::Config;
    use crate::sync::statics::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    static THREAD_CACHE_BYTES: AtomicUsize = AtomicUsize::new(Config::DEFAULT.thread_cache_bytes);
    static THREAD_CACHES_TOTAL: AtomicUsize = AtomicUsize::new(Config::DEFAULT.thread_caches_total);
    static DIRTY_MAX: AtomicUsize = AtomicUsize::new(Config::DEFAULT.dirty_max);
    static MEMORY_LIMIT: AtomicUsize = AtomicUsize::new(0);
    static SHOW_STATS: AtomicBool = AtomicBool::new(false);
    static BACKGROUND: AtomicBool = AtomicBool::new(false);
    static DECAY_MS: AtomicU64 = AtomicU64::new(Config::DEFAULT.decay_ms);
    static HUGE_PAGES_AFTER: AtomicUsize = AtomicUsize::new(Config::DEFAULT.huge_pages_after);
    static VERBOSE: AtomicBool = AtomicBool::new(false);

    pub(crate) fn set(c: Config) {
        THREAD_CACHE_BYTES.store(c.thread_cache_bytes, Ordering::Relaxed);
        THREAD_CACHES_TOTAL.store(c.thread_caches_total, Ordering::Relaxed);
        DIRTY_MAX.store(c.dirty_max, Ordering::Relaxed);
        MEMORY_LIMIT.store(c.memory_limit, Ordering::Relaxed);
        SHOW_STATS.store(c.show_stats, Ordering::Relaxed);
        BACKGROUND.store(c.background_release, Ordering::Relaxed);
        DECAY_MS.store(c.decay_ms, Ordering::Relaxed);
        HUGE_PAGES_AFTER.store(c.huge_pages_after, Ordering::Relaxed);
        VERBOSE.store(c.verbose, Ordering::Relaxed);
    }

    pub(crate) fn get() -> Config {
        Config {
            thread_cache_bytes: THREAD_CACHE_BYTES.load(Ordering::Relaxed),
            thread_caches_total: THREAD_CACHES_TOTAL.load(Ordering::Relaxed),
            dirty_max: DIRTY_MAX.load(Ordering::Relaxed),
            memory_limit: MEMORY_LIMIT.load(Ordering::Relaxed),
            show_stats: SHOW_STATS.load(Ordering::Relaxed),
            decay_ms: DECAY_MS.load(Ordering::Relaxed),
            background_release: BACKGROUND.load(Ordering::Relaxed),
            huge_pages_after: HUGE_PAGES_AFTER.load(Ordering::Relaxed),
            verbose: VERBOSE.load(Ordering::Relaxed),
            guarded_rate: crate::guarded::rate(),
            guarded_max_per_sec: crate::guarded::max_per_sec(),
        }
    }

    pub(crate) fn set_thread_cache_bytes(bytes: usize) {
        THREAD_CACHE_BYTES.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_thread_caches_total(bytes: usize) {
        THREAD_CACHES_TOTAL.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_show_stats(on: bool) {
        SHOW_STATS.store(on, Ordering::Relaxed);
    }

    pub(crate) fn show_stats() -> bool {
        SHOW_STATS.load(Ordering::Relaxed)
    }

    pub(crate) fn set_decay_ms(ms: u64) {
        DECAY_MS.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn set_huge_pages_after(bytes: usize) {
        HUGE_PAGES_AFTER.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_memory_limit(bytes: usize) {
        MEMORY_LIMIT.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_dirty_max(bytes: usize) {
        DIRTY_MAX.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_background(on: bool) {
        BACKGROUND.store(on, Ordering::Relaxed);
    }
}
