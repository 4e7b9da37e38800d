//! Configuration from `STRATA_*` environment variables, read once at start-up
//! without allocating (`getenv` returns a pointer into the environment; the
//! digits are parsed in place).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `STRATA_THREAD_CACHE_BYTES` | byte budget of each thread's cache | 4 MiB |
//! | `STRATA_SHOW_STATS` | `1`: print statistics to stderr at exit | off |

use core::ffi::CStr;

/// The settings in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Byte budget of each thread's cache.
    pub thread_cache_bytes: usize,
    /// Print statistics to stderr at exit.
    pub show_stats: bool,
}

impl Config {
    /// The defaults, before the environment is read.
    pub const DEFAULT: Config = Config {
        thread_cache_bytes: strata_threadcache::registry_defaults::MAX_CACHE_BYTES,
        show_stats: false,
    };

    /// The defaults overridden by the environment.
    pub fn from_env() -> Config {
        let mut c = Config::DEFAULT;
        if let Some(v) = env_usize(c"STRATA_THREAD_CACHE_BYTES") {
            c.thread_cache_bytes = v;
        }
        if let Some(v) = env_usize(c"STRATA_SHOW_STATS") {
            c.show_stats = v != 0;
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
    use crate::sync::{AtomicBool, AtomicUsize, Ordering};

    static THREAD_CACHE_BYTES: AtomicUsize = AtomicUsize::new(Config::DEFAULT.thread_cache_bytes);
    static SHOW_STATS: AtomicBool = AtomicBool::new(false);

    pub(crate) fn set(c: Config) {
        THREAD_CACHE_BYTES.store(c.thread_cache_bytes, Ordering::Relaxed);
        SHOW_STATS.store(c.show_stats, Ordering::Relaxed);
    }

    pub(crate) fn get() -> Config {
        Config {
            thread_cache_bytes: THREAD_CACHE_BYTES.load(Ordering::Relaxed),
            show_stats: SHOW_STATS.load(Ordering::Relaxed),
        }
    }
}
