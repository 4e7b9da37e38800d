//! Settings by name: one table of every `STRATA_*` setting, the one parser
//! of their values (for the environment at start-up and for
//! [`crate::set_option`] at run time alike), and the text each value reads
//! back as ([`crate::get_option`]).
//!
//! # Names and values
//! A setting is named by its variable (`STRATA_DECAY_MS`) or by the rest of
//! it in lower case (`decay_ms`).
//!
//! | kind | accepted | reads back as |
//! |---|---|---|
//! | bytes | decimal, with an optional `k`, `m` or `g` suffix (binary units, either case): `4096`, `64k`, `8m`, `2g` | decimal bytes |
//! | milliseconds | decimal | decimal |
//! | flag | `0` or `1` (any number: not 0 is on), `true`/`false`, `on`/`off`, `yes`/`no` | `0` or `1` |
//!
//! Some settings take a word for one value as well (`never`, `none`,
//! `unlimited`); the value reads back as that word.
//!
//! # Run time
//! Every setting but `STRATA_VERBOSE` takes effect at run time (thread
//! caches refit to a new budget at their next periodic check; a stopped
//! background thread ends at its next wake-up). `STRATA_VERBOSE` only says
//! whether the environment is checked at start-up, which is over by then:
//! setting it fails with [`OptionError::StartupOnly`].
//!
//! # Invariants
//! - Nothing here allocates, formats through the global allocator or
//!   panics: the environment is read inside the allocator's start-up.
//! - Each field of [`Config`] has exactly one row, and the environment,
//!   [`crate::set_option`] and [`crate::get_option`] all go through it.

use core::fmt;

use crate::config::{self, Config};

/// Why a setting was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionError {
    /// No setting has this name.
    Unknown,
    /// The value does not parse; `expected` says what would.
    Malformed {
        /// What the setting accepts, in words.
        expected: &'static str,
    },
    /// The setting is read once at start-up and cannot change afterwards.
    StartupOnly,
    /// The value is valid but could not be applied (the background release
    /// thread could not be created).
    Failed,
}

impl OptionError {
    /// The `errno` the C API reports this with: `EINVAL` for an unknown
    /// name or a malformed value, `EPERM` for a start-up-only setting,
    /// `EAGAIN` for a failure to apply.
    pub fn errno(self) -> i32 {
        match self {
            OptionError::Unknown | OptionError::Malformed { .. } => libc::EINVAL,
            OptionError::StartupOnly => libc::EPERM,
            OptionError::Failed => libc::EAGAIN,
        }
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unknown => f.write_str("no strata setting has this name"),
            OptionError::Malformed { expected } => write!(f, "expected {expected}"),
            OptionError::StartupOnly => f.write_str("read at start-up only"),
            OptionError::Failed => f.write_str("could not be applied"),
        }
    }
}

/// The value of a setting, as [`crate::get_option`] reads it back. Its
/// `Display` text is accepted by [`crate::set_option`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionValue {
    /// A number: bytes, milliseconds, or 0/1 for a flag.
    Number(u64),
    /// The word a setting takes for one special value (`never`, `none`,
    /// `unlimited`).
    Word(&'static str),
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Number(n) => write!(f, "{n}"),
            OptionValue::Word(w) => f.write_str(w),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bytes,
    Millis,
    Flag,
    /// A plain decimal count.
    Count,
}

/// A row of the table: one setting.
pub(crate) struct OptionRow {
    /// The environment variable.
    pub(crate) var: &'static str,
    kind: Kind,
    /// A word standing for one value, accepted and read back.
    word: Option<(&'static str, u64)>,
    /// What the setting accepts, in words (for errors and warnings).
    expected: &'static str,
    get: fn(&Config) -> u64,
    put: fn(&mut Config, u64),
    /// Applies a value to the running allocator; `None`: start-up only.
    apply: Option<fn(u64) -> Result<(), OptionError>>,
}

const PREFIX: &str = "STRATA_";

const BYTES: &str = "a size in bytes: 4096, 64k, 8m or 2g";

/// A row for the `Config` field `$field`: its value as a `u64` (`$ty` is
/// the field's type; a flag is a `bool`), put back into the field, and
/// applied at run time by `$apply` (a function of the field's value) or
/// not at all (`startup_only`).
macro_rules! row {
    ($var:literal, $kind:ident, $word:expr, $expected:expr, $field:ident: bool, startup_only) => {
        OptionRow {
            apply: None,
            ..row!($var, $kind, $word, $expected, $field: bool, |_| Ok(()))
        }
    };
    ($var:literal, $kind:ident, $word:expr, $expected:expr, $field:ident: bool, $apply:expr) => {
        OptionRow {
            var: $var,
            kind: Kind::$kind,
            word: $word,
            expected: $expected,
            get: |c| u64::from(c.$field),
            put: |c, v| c.$field = v != 0,
            apply: row!(@apply bool, $apply),
        }
    };
    ($var:literal, $kind:ident, $word:expr, $expected:expr, $field:ident: $ty:ty, $apply:expr) => {
        OptionRow {
            var: $var,
            kind: Kind::$kind,
            word: $word,
            expected: $expected,
            get: |c| c.$field as u64,
            put: |c, v| c.$field = v as $ty,
            apply: row!(@apply $ty, $apply),
        }
    };
    (@apply bool, $apply:expr) => {
        Some(|v| $apply(v != 0))
    };
    (@apply $ty:ty, $apply:expr) => {
        Some(|v| $apply(v as $ty))
    };
}

/// A setter that cannot fail, as a row's `apply`.
fn always<T>(set: fn(T)) -> impl Fn(T) -> Result<(), OptionError> {
    move |v| {
        set(v);
        Ok(())
    }
}

/// Every setting, in the order the README lists them.
pub(crate) static OPTIONS: [OptionRow; 11] = [
    row!(
        "STRATA_DECAY_MS", Millis, Some(("never", u64::MAX)),
        "milliseconds (a number) or `never`",
        decay_ms: u64, always(crate::global::set_decay_ms)
    ),
    row!(
        "STRATA_BACKGROUND_RELEASE", Flag, None, "0 or 1",
        background_release: bool, set_background_release
    ),
    row!(
        "STRATA_THREAD_CACHE_BYTES", Bytes, None, BYTES,
        thread_cache_bytes: usize, always(crate::global::set_thread_cache_bytes)
    ),
    row!(
        "STRATA_THREAD_CACHES_TOTAL", Bytes, None, BYTES,
        thread_caches_total: usize, always(crate::global::set_thread_caches_total)
    ),
    row!(
        "STRATA_DIRTY_MAX", Bytes, Some(("unlimited", usize::MAX as u64)),
        "a size in bytes (4096, 64k, 8m or 2g) or `unlimited`",
        dirty_max: usize, always(crate::global::set_dirty_max)
    ),
    row!(
        "STRATA_MEMORY_LIMIT", Bytes, Some(("none", 0)),
        "a size in bytes (4096, 64k, 8m or 2g) or `none`",
        memory_limit: usize, always(|b: usize| crate::global::set_memory_limit(Some(b).filter(|&b| b > 0)))
    ),
    row!(
        "STRATA_SHOW_STATS", Flag, None, "0 or 1",
        show_stats: bool, always(crate::global::set_show_stats)
    ),
    row!(
        "STRATA_HUGE_PAGES_AFTER", Bytes, Some(("never", usize::MAX as u64)),
        "a size in bytes (4096, 64k, 8m or 2g) or `never`",
        huge_pages_after: usize, always(crate::global::set_huge_pages_after)
    ),
    row!(
        "STRATA_GUARDED_RATE", Count, Some(("off", 0)),
        "a count (one allocation in it is guarded; 0: off) or `off`",
        guarded_rate: usize, always(crate::guarded::set_rate)
    ),
    row!(
        "STRATA_GUARDED_MAX_PER_SEC", Count, Some(("unlimited", 0)),
        "a count (guarded blocks a second at most; 0: no limit) or `unlimited`",
        guarded_max_per_sec: usize, always(crate::guarded::set_max_per_sec)
    ),
    row!(
        "STRATA_VERBOSE", Flag, None, "0 or 1",
        verbose: bool, startup_only
    ),
];

/// `STRATA_BACKGROUND_RELEASE` at run time: starts or stops the thread.
fn set_background_release(on: bool) -> Result<(), OptionError> {
    if !on {
        crate::global::stop_background_release();
    } else if !crate::global::start_background_release() {
        return Err(OptionError::Failed);
    }
    Ok(())
}

impl OptionRow {
    /// The short name: the variable without `STRATA_`, in lower case.
    pub(crate) fn short_name(&self) -> ShortName {
        ShortName(&self.var[PREFIX.len()..])
    }

    fn is_named(&self, name: &[u8]) -> bool {
        let short = &self.var.as_bytes()[PREFIX.len()..];
        name == self.var.as_bytes()
            || (name.len() == short.len()
                && name
                    .iter()
                    .zip(short)
                    .all(|(&a, &b)| a == b.to_ascii_lowercase()))
    }

    /// Parses a value for this setting.
    pub(crate) fn parse(&self, s: &[u8]) -> Result<u64, OptionError> {
        let malformed = OptionError::Malformed {
            expected: self.expected,
        };
        if let Some((word, v)) = self.word {
            if s == word.as_bytes() {
                return Ok(v);
            }
        }
        let v = match self.kind {
            Kind::Bytes => parse_size(s).map(|v| v as u64),
            Kind::Millis => parse_decimal(s),
            Kind::Flag => parse_flag(s),
            Kind::Count => parse_decimal(s),
        };
        v.ok_or(malformed)
    }

    /// The value of this setting in `c`, as it reads back.
    pub(crate) fn value(&self, c: &Config) -> OptionValue {
        let v = (self.get)(c);
        match self.word {
            Some((word, w)) if w == v => OptionValue::Word(word),
            _ => OptionValue::Number(v),
        }
    }

    /// Stores a parsed value into `c` (start-up).
    pub(crate) fn put(&self, c: &mut Config, v: u64) {
        (self.put)(c, v);
    }
}

/// A setting's short name, written in lower case.
pub(crate) struct ShortName(&'static str);

impl fmt::Display for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            fmt::Write::write_char(f, b.to_ascii_lowercase() as char)?;
        }
        Ok(())
    }
}

/// The row named `name` (its variable or its short name).
pub(crate) fn find(name: &[u8]) -> Option<&'static OptionRow> {
    OPTIONS.iter().find(|o| o.is_named(name))
}

/// [`crate::set_option`].
pub(crate) fn set(name: &[u8], value: &[u8]) -> Result<(), OptionError> {
    let row = find(name).ok_or(OptionError::Unknown)?;
    let apply = row.apply.ok_or(OptionError::StartupOnly)?;
    apply(row.parse(value)?)
}

/// [`crate::get_option`].
pub(crate) fn get(name: &[u8]) -> Result<OptionValue, OptionError> {
    let row = find(name).ok_or(OptionError::Unknown)?;
    crate::global::ensure_init();
    Ok(row.value(&config::state::get()))
}

/// Parses `123`, `64k`, `8M`, `1g`.
pub(crate) fn parse_size(s: &[u8]) -> Option<usize> {
    let (digits, mult) = match s.last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    usize::try_from(parse_decimal(digits)?)
        .ok()?
        .checked_mul(mult)
}

/// Parses a non-empty run of decimal digits.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

/// Parses a flag: a number (not 0 is on) or a word.
fn parse_flag(s: &[u8]) -> Option<u64> {
    match s {
        b"true" | b"on" | b"yes" => Some(1),
        b"false" | b"off" | b"no" => Some(0),
        _ => parse_decimal(s).map(|v| u64::from(v != 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size(b"123"), Some(123));
        assert_eq!(parse_size(b"4096"), Some(4096));
        assert_eq!(parse_size(b"64k"), Some(64 << 10));
        assert_eq!(parse_size(b"8M"), Some(8 << 20));
        assert_eq!(parse_size(b"1g"), Some(1 << 30));
        assert_eq!(parse_size(b"2g"), Some(2 << 30));
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"k"), None);
        assert_eq!(parse_size(b"12x"), None);
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b" 1"), None);
        assert_eq!(parse_size(b"99999999999999999999999"), None);
        assert_eq!(parse_size(b"17179869184g"), None);
    }

    #[test]
    fn every_setting_has_one_row_found_by_either_name() {
        for o in OPTIONS.iter() {
            assert!(o.var.starts_with(PREFIX));
            let short = format!("{}", o.short_name());
            assert_eq!(short, o.var[PREFIX.len()..].to_ascii_lowercase());
            assert!(core::ptr::eq(find(o.var.as_bytes()).unwrap(), o));
            assert!(core::ptr::eq(find(short.as_bytes()).unwrap(), o));
        }
        assert!(find(b"decay_MS").is_none());
        assert!(find(b"strata_decay_ms").is_none());
        assert!(find(b"DECAY_MS").is_none());
        assert!(find(b"").is_none());
    }

    #[test]
    fn values_read_back_as_they_are_accepted() {
        // Every row puts and gets the same field: set a distinct value
        // through each row and read it back through the same one.
        for (i, o) in OPTIONS.iter().enumerate() {
            let mut c = Config::DEFAULT;
            let v = if o.kind == Kind::Flag {
                1 - (o.get)(&Config::DEFAULT)
            } else {
                (i as u64 + 1) << 20
            };
            o.put(&mut c, v);
            assert_eq!((o.get)(&c), v, "{}", o.var);
            let text = format!("{}", o.value(&c));
            assert_eq!(o.parse(text.as_bytes()), Ok(v), "{}", o.var);
            // And no other field changed.
            for p in OPTIONS.iter().filter(|p| p.var != o.var) {
                assert_eq!(
                    (p.get)(&c),
                    (p.get)(&Config::DEFAULT),
                    "{} moved {}",
                    o.var,
                    p.var
                );
            }
        }
    }

    #[test]
    fn words_and_kinds_parse() {
        let decay = find(b"decay_ms").unwrap();
        assert_eq!(decay.parse(b"never"), Ok(u64::MAX));
        assert_eq!(decay.parse(b"250"), Ok(250));
        assert!(matches!(
            decay.parse(b"1k"),
            Err(OptionError::Malformed { .. })
        ));
        let limit = find(b"STRATA_MEMORY_LIMIT").unwrap();
        assert_eq!(limit.parse(b"none"), Ok(0));
        assert_eq!(limit.parse(b"2g"), Ok(2 << 30));
        let mut c = Config::DEFAULT;
        limit.put(&mut c, 0);
        assert_eq!(limit.value(&c), OptionValue::Word("none"));
        let flag = find(b"show_stats").unwrap();
        for (s, v) in [("1", 1), ("0", 0), ("2", 1), ("on", 1), ("no", 0)] {
            assert_eq!(flag.parse(s.as_bytes()), Ok(v), "{s}");
        }
        assert_eq!(
            flag.parse(b"maybe"),
            Err(OptionError::Malformed { expected: "0 or 1" })
        );
        let bytes = find(b"thread_cache_bytes").unwrap();
        assert!(bytes.parse(b"never").is_err());
        assert_eq!(OptionError::Unknown.errno(), libc::EINVAL);
        assert_eq!(OptionError::StartupOnly.errno(), libc::EPERM);
    }
}
