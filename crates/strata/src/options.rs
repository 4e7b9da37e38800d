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
//! | text | any bytes but none, at most [`OptionText::MAX`] | the text |
//! | signal | `USR1`, `USR2`, `PROF`, `URG` (with or without `SIG`) or a number 1..=64; `0` | the name, or the number |
//! | stack walker | `strata` or `system` | the word |
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
//! # Where values live
//! Most rows are fields of [`Config`]. The heap profiler's four
//! (`STRATA_PROFILE`, `STRATA_PROFILE_INTERVAL`, `STRATA_PROFILE_SIGNAL`,
//! `STRATA_STACK_WALKER`) are kept by the profiler; their rows read and
//! apply them there ([`Store::Own`]), and the profiler applies their
//! environment values through the same rows at start-up
//! ([`apply_own_from_env`]).
//!
//! # Invariants
//! - Nothing here allocates, formats through the global allocator or
//!   panics: the environment is read inside the allocator's start-up. A
//!   text value is held in place ([`OptionText`]).
//! - Each field of [`Config`] has exactly one row, and so has every
//!   setting kept elsewhere; the environment, [`crate::set_option`],
//!   [`crate::get_option`] and `STRATA_VERBOSE`'s warnings all go through
//!   the rows.

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
// A text is held in place, not boxed: reading a setting allocates nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionValue {
    /// A number: bytes, milliseconds, or 0/1 for a flag.
    Number(u64),
    /// The word a setting takes for one special value (`never`, `none`,
    /// `unlimited`), or one of the words a setting is chosen by
    /// (`system`, `USR2`).
    Word(&'static str),
    /// A text: `STRATA_PROFILE`'s path prefix.
    Text(OptionText),
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Number(n) => write!(f, "{n}"),
            OptionValue::Word(w) => f.write_str(w),
            OptionValue::Text(t) => fmt::Display::fmt(t, f),
        }
    }
}

/// A text value held in place (a path is bytes, not necessarily UTF-8).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OptionText {
    len: usize,
    buf: [u8; OptionText::MAX],
}

impl OptionText {
    /// The longest text a setting takes, in bytes.
    pub const MAX: usize = 510;

    /// `b` as a text, if it is at most [`OptionText::MAX`] bytes.
    pub fn new(b: &[u8]) -> Option<OptionText> {
        let mut t = OptionText {
            len: b.len(),
            buf: [0; OptionText::MAX],
        };
        t.buf.get_mut(..b.len())?.copy_from_slice(b);
        Some(t)
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Display for OptionText {
    /// The bytes, invalid UTF-8 shown as U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.as_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for OptionText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bytes,
    Millis,
    Flag,
    /// A plain decimal count.
    Count,
    /// Any non-empty bytes up to [`OptionText::MAX`]; parses as 1 (the
    /// row's `apply` takes the bytes).
    Text,
    /// A signal by name or number (`0`: none).
    Signal,
    /// `strata` (0) or `system` (1).
    Walker,
}

/// Where a setting's value lives.
#[derive(Clone, Copy)]
enum Store {
    /// A field of [`Config`].
    Config {
        get: fn(&Config) -> u64,
        put: fn(&mut Config, u64),
        /// Applies a value to the running allocator; `None`: start-up only.
        apply: Option<fn(u64) -> Result<(), OptionError>>,
    },
    /// Kept by the part that uses it (the heap profiler).
    Own {
        get: fn() -> OptionValue,
        /// The value before any is set (what a malformed one leaves).
        default: &'static OptionValue,
        /// Applies the parsed value (the second argument: the text as
        /// given, for a text setting); used at start-up too, so it must
        /// not wait for the allocator's initialisation.
        apply: fn(u64, &[u8]) -> Result<(), OptionError>,
    },
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
    store: Store,
}

const PREFIX: &str = "STRATA_";

const BYTES: &str = "a size in bytes: 4096, 64k, 8m or 2g";

/// A row for the `Config` field `$field`: its value as a `u64` (`$ty` is
/// the field's type; a flag is a `bool`), put back into the field, and
/// applied at run time by `$apply` (a function of the field's value) or
/// not at all (`startup_only`).
macro_rules! row {
    ($var:literal, $kind:ident, $word:expr, $expected:expr, $field:ident: bool, startup_only) => {
        row!(@config $var, $kind, $word, $expected,
            |c| u64::from(c.$field), |c, v| c.$field = v != 0, None)
    };
    ($var:literal, $kind:ident, $word:expr, $expected:expr, $field:ident: bool, $apply:expr) => {
        row!(@config $var, $kind, $word, $expected,
            |c| u64::from(c.$field), |c, v| c.$field = v != 0, row!(@apply bool, $apply))
    };
    ($var:literal, $kind:ident, $word:expr, $expected:expr, $field:ident: $ty:ty, $apply:expr) => {
        row!(@config $var, $kind, $word, $expected,
            |c| c.$field as u64, |c, v| c.$field = v as $ty, row!(@apply $ty, $apply))
    };
    (@config $var:literal, $kind:ident, $word:expr, $expected:expr, $get:expr, $put:expr, $apply:expr) => {
        row!(@row $var, $kind, $word, $expected, Store::Config { get: $get, put: $put, apply: $apply })
    };
    (@row $var:literal, $kind:ident, $word:expr, $expected:expr, $store:expr) => {
        OptionRow {
            var: $var,
            kind: Kind::$kind,
            word: $word,
            expected: $expected,
            store: $store,
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

/// A row of a setting the heap profiler keeps ([`crate::profile::settings`]).
macro_rules! own_row {
    ($var:literal, $kind:ident, $word:expr, $expected:expr, $module:ident) => {
        row!(@row $var, $kind, $word, $expected, Store::Own {
            get: crate::profile::settings::$module::get,
            default: &crate::profile::settings::$module::DEFAULT,
            apply: crate::profile::settings::$module::apply,
        })
    };
}

/// Every setting, in the order the README lists them (the profiler's in
/// the order start-up applies them: the prefix before the signal that
/// dumps under it).
pub(crate) static OPTIONS: [OptionRow; 15] = [
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
    own_row!(
        "STRATA_PROFILE",
        Text,
        Some(("off", 0)),
        "a path prefix (at most 510 bytes) or `off`",
        prefix
    ),
    own_row!("STRATA_PROFILE_INTERVAL", Bytes, None, BYTES, interval),
    own_row!(
        "STRATA_PROFILE_SIGNAL",
        Signal,
        Some(("off", 0)),
        "a signal (USR1, USR2, PROF, URG, SIGUSR2 or a number 1..64), or 0 or `off`",
        signal_row
    ),
    own_row!(
        "STRATA_STACK_WALKER",
        Walker,
        None,
        "`strata` or `system`",
        walker
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
            Kind::Text => (!s.is_empty() && s.len() <= OptionText::MAX).then_some(1),
            Kind::Signal if s == b"0" => Some(0),
            Kind::Signal => crate::profile::signal_number(s).map(|n| n as u64),
            Kind::Walker => match s {
                b"strata" => Some(0),
                b"system" => Some(1),
                _ => None,
            },
        };
        v.ok_or(malformed)
    }

    /// The value of this setting in `c` (a setting kept elsewhere: as it
    /// is now), as it reads back.
    pub(crate) fn value(&self, c: &Config) -> OptionValue {
        let v = match self.store {
            Store::Config { get, .. } => get(c),
            Store::Own { get, .. } => return get(),
        };
        match self.word {
            Some((word, w)) if w == v => OptionValue::Word(word),
            _ => OptionValue::Number(v),
        }
    }

    /// The value before any is set.
    pub(crate) fn default_value(&self) -> OptionValue {
        match self.store {
            Store::Config { .. } => self.value(&Config::DEFAULT),
            Store::Own { default, .. } => *default,
        }
    }

    /// Whether this setting is a field of [`Config`].
    pub(crate) fn in_config(&self) -> bool {
        matches!(self.store, Store::Config { .. })
    }

    /// Stores a parsed value into `c` (start-up); a setting kept elsewhere
    /// is not in `c` ([`apply_own_from_env`] applies it).
    pub(crate) fn put(&self, c: &mut Config, v: u64) {
        if let Store::Config { put, .. } = self.store {
            put(c, v);
        }
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
    match row.store {
        Store::Config { apply, .. } => apply.ok_or(OptionError::StartupOnly)?(row.parse(value)?),
        Store::Own { apply, .. } => {
            let v = row.parse(value)?;
            // Start-up applies the environment's value first, so that this
            // one is not overridden by it afterwards.
            crate::global::ensure_init();
            apply(v, value)
        }
    }
}

/// [`crate::get_option`].
pub(crate) fn get(name: &[u8]) -> Result<OptionValue, OptionError> {
    let row = find(name).ok_or(OptionError::Unknown)?;
    crate::global::ensure_init();
    Ok(row.value(&config::state::get()))
}

/// Applies the environment's values of the settings kept outside
/// [`Config`], in the table's order (the heap profiler's start-up). A
/// value that does not parse is left out, as [`Config::from_env`] does;
/// `STRATA_VERBOSE=1` names it.
pub(crate) fn apply_own_from_env() {
    for row in OPTIONS.iter() {
        if let Store::Own { apply, .. } = row.store {
            crate::config::with_env_value(row.var.as_bytes(), |value| {
                if let Ok(v) = row.parse(value) {
                    let _ = apply(v, value);
                }
            });
        }
    }
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
        // Every row of a Config field puts and gets the same field: set a
        // distinct value through each row and read it back through the
        // same one. (The profiler's rows: tests/options.rs.)
        let get = |o: &OptionRow, c: &Config| match o.store {
            Store::Config { get, .. } => get(c),
            Store::Own { .. } => 0,
        };
        for (i, o) in OPTIONS.iter().enumerate().filter(|(_, o)| o.in_config()) {
            let mut c = Config::DEFAULT;
            let v = if o.kind == Kind::Flag {
                1 - get(o, &Config::DEFAULT)
            } else {
                (i as u64 + 1) << 20
            };
            o.put(&mut c, v);
            assert_eq!(get(o, &c), v, "{}", o.var);
            let text = format!("{}", o.value(&c));
            assert_eq!(o.parse(text.as_bytes()), Ok(v), "{}", o.var);
            // And no other field changed.
            for p in OPTIONS.iter().filter(|p| p.var != o.var) {
                assert_eq!(
                    get(p, &c),
                    get(p, &Config::DEFAULT),
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
        let prefix = find(b"profile").unwrap();
        assert_eq!(prefix.parse(b"/tmp/p"), Ok(1));
        assert_eq!(prefix.parse(b"off"), Ok(0));
        assert!(prefix.parse(b"").is_err());
        assert!(prefix.parse(&[b'x'; OptionText::MAX + 1]).is_err());
        let signal = find(b"STRATA_PROFILE_SIGNAL").unwrap();
        for (s, v) in [("USR1", libc::SIGUSR1), ("SIGUSR2", libc::SIGUSR2)] {
            assert_eq!(signal.parse(s.as_bytes()), Ok(v as u64), "{s}");
        }
        for s in ["0", "off"] {
            assert_eq!(signal.parse(s.as_bytes()), Ok(0), "{s}");
        }
        assert!(signal.parse(b"HUP?").is_err());
        let walker = find(b"stack_walker").unwrap();
        assert_eq!(walker.parse(b"system"), Ok(1));
        assert!(walker.parse(b"fast?").is_err());
        let t = OptionText::new(b"a\xffb").unwrap();
        assert_eq!(format!("{t}"), "a\u{FFFD}b");
        assert_eq!(t.as_bytes(), b"a\xffb");
        assert_eq!(OptionError::Unknown.errno(), libc::EINVAL);
        assert_eq!(OptionError::StartupOnly.errno(), libc::EPERM);
    }
}
