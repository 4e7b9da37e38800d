//! Configuration from `STRATA_*` environment variables, read once at start-up
//! without allocating (`getenv` returns a pointer into the environment; the
//! digits are parsed in place).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `STRATA_THREAD_CACHE_BYTES` | largest byte budget of one thread's cache (`k`, `m`, `g` suffixes) | 32 MiB |
//! | `STRATA_THREAD_CACHES_TOTAL` | bytes all threads' caches may hold together: each cache's budget is an equal share of it, at least 128 KiB, at most `STRATA_THREAD_CACHE_BYTES`, refitted as threads come and go | 64 MiB |
//! | `STRATA_DIRTY_MAX` | free memory kept resident for reuse at most, besides a quarter of the memory in use, whatever the decay delay; more is released at once | 16 MiB |
//! | `STRATA_DECAY_MS` | how long free memory stays resident before it goes back to the OS; `0`: at once | 1000 |
//! | `STRATA_BACKGROUND_RELEASE` | `1`: a background thread runs decay even when the program is idle | off |
//! | `STRATA_MEMORY_LIMIT` | a soft limit on the memory strata holds: near it (and near the cgroup's `memory.max` / `memory.high`, read by itself), free memory and the caches go back to the OS before the heap grows | none |
//! | `STRATA_SHOW_STATS` | `1`: print statistics to stderr at exit | off |
//! | `STRATA_PROFILE` | a path prefix: heap profiling on, profile written at exit to `<prefix>.<pid>.heap.pb.gz` (pprof) and `.inuse/.alloc/.peak.collapsed` (`crate::profile`) | off |
//! | `STRATA_PROFILE_INTERVAL` | mean bytes between heap-profile samples (`k`, `m`, `g` suffixes) | 2 MiB |
//! | `STRATA_PROFILE_SIGNAL` | a signal (`USR2`, `SIGUSR1`, a number) that writes a numbered profile (profiling on; prefix `strata-profile` if `STRATA_PROFILE` is unset) | none |
//! | `STRATA_HUGE_PAGES_AFTER` | ask for transparent huge pages on all heap growth once the heap has grown by this much (`0`: from the start); growth for a plain request of 4 MiB or more asks either way | never |

use core::ffi::CStr;

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
    /// request of 4 MiB or more is hinted regardless).
    pub huge_pages_after: usize,
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
    };

    /// The defaults overridden by the environment.
    pub fn from_env() -> Config {
        let mut c = Config::DEFAULT;
        if let Some(v) = env_usize(c"STRATA_THREAD_CACHE_BYTES") {
            c.thread_cache_bytes = v;
        }
        if let Some(v) = env_usize(c"STRATA_THREAD_CACHES_TOTAL") {
            c.thread_caches_total = v;
        }
        if let Some(v) = env_usize(c"STRATA_DIRTY_MAX") {
            c.dirty_max = v;
        }
        if let Some(v) = env_usize(c"STRATA_MEMORY_LIMIT") {
            c.memory_limit = v;
        }
        if let Some(v) = env_usize(c"STRATA_SHOW_STATS") {
            c.show_stats = v != 0;
        }
        if let Some(v) = env_usize(c"STRATA_DECAY_MS") {
            c.decay_ms = v as u64;
        }
        if let Some(v) = env_usize(c"STRATA_BACKGROUND_RELEASE") {
            c.background_release = v != 0;
        }
        if let Some(v) = env_usize(c"STRATA_HUGE_PAGES_AFTER") {
            c.huge_pages_after = v;
        }
        c
    }
}

/// The value of an environment variable as a number: decimal, with an
/// optional `k`, `m` or `g` suffix (binary units). `None` if unset or
/// malformed.
pub(crate) fn env_usize(name: &CStr) -> Option<usize> {
    // SAFETY: getenv reads the environment; the result is null or a
    // NUL-terminated string that stays valid while nobody calls setenv.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null result of getenv.
    parse_size(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Parses `123`, `64k`, `8M`, `1g`.
pub(crate) fn parse_size(s: &[u8]) -> Option<usize> {
    let (digits, mult) = match s.last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: usize = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as usize)?;
    }
    v.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size(b"123"), Some(123));
        assert_eq!(parse_size(b"64k"), Some(64 << 10));
        assert_eq!(parse_size(b"8M"), Some(8 << 20));
        assert_eq!(parse_size(b"1g"), Some(1 << 30));
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"k"), None);
        assert_eq!(parse_size(b"12x"), None);
        assert_eq!(parse_size(b"99999999999999999999999"), None);
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

    pub(crate) fn set(c: Config) {
        THREAD_CACHE_BYTES.store(c.thread_cache_bytes, Ordering::Relaxed);
        THREAD_CACHES_TOTAL.store(c.thread_caches_total, Ordering::Relaxed);
        DIRTY_MAX.store(c.dirty_max, Ordering::Relaxed);
        MEMORY_LIMIT.store(c.memory_limit, Ordering::Relaxed);
        SHOW_STATS.store(c.show_stats, Ordering::Relaxed);
        BACKGROUND.store(c.background_release, Ordering::Relaxed);
        DECAY_MS.store(c.decay_ms, Ordering::Relaxed);
        HUGE_PAGES_AFTER.store(c.huge_pages_after, Ordering::Relaxed);
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
        }
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
