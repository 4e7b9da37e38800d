//! The heap profiler's rows of the settings table ([`crate::options`]):
//! how each reads back and is applied, at start-up (from the environment)
//! and at run time alike.
//!
//! | setting | applied as |
//! |---|---|
//! | `STRATA_PROFILE` | a prefix: sampling on, dumps at exit (and on the signal) under it; `off`: no prefix, sampling off |
//! | `STRATA_PROFILE_INTERVAL` | [`super::set_interval`] |
//! | `STRATA_PROFILE_SIGNAL` | strata's handler moved to the signal (sampling on); `0`/`off`: removed |
//! | `STRATA_STACK_WALKER` | [`strata_os::stack::set_walker`] |
//!
//! # Invariants
//! - An `apply` never waits for the allocator's initialisation (start-up
//!   runs them) and allocates nothing.

use crate::options::{OptionError, OptionText, OptionValue};
use crate::sync::statics::{AtomicBool, Ordering};

use super::signal;

/// `STRATA_PROFILE`.
pub(crate) mod prefix {
    use super::*;

    pub(crate) const DEFAULT: OptionValue = OptionValue::Word("off");

    /// Whether the dump at exit is registered (once per process).
    static AT_EXIT: AtomicBool = AtomicBool::new(false);

    pub(crate) fn get() -> OptionValue {
        let mut buf = [0; signal::PREFIX_MAX];
        let n = signal::prefix(&mut buf);
        match OptionText::new(&buf[..n]) {
            Some(t) if n > 0 => OptionValue::Text(t),
            _ => DEFAULT,
        }
    }

    /// `on` 0: `off`; otherwise `text` is the prefix.
    pub(crate) fn apply(on: u64, text: &[u8]) -> Result<(), OptionError> {
        if on == 0 {
            signal::set_prefix(b"");
            crate::profile::stop();
            return Ok(());
        }
        if !signal::set_prefix(text) {
            return Err(OptionError::Failed);
        }
        if !AT_EXIT.swap(true, Ordering::AcqRel) {
            // SAFETY: a plain function valid for the process lifetime.
            unsafe { libc::atexit(crate::profile::dump_at_exit) };
        }
        crate::profile::switch_on();
        Ok(())
    }
}

/// `STRATA_PROFILE_INTERVAL`.
pub(crate) mod interval {
    use super::*;

    pub(crate) const DEFAULT: OptionValue =
        OptionValue::Number(crate::profile::DEFAULT_INTERVAL as u64);

    pub(crate) fn get() -> OptionValue {
        OptionValue::Number(crate::profile::interval() as u64)
    }

    pub(crate) fn apply(bytes: u64, _: &[u8]) -> Result<(), OptionError> {
        crate::profile::set_interval(usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(())
    }
}

/// `STRATA_PROFILE_SIGNAL`.
pub(crate) mod signal_row {
    use super::*;

    pub(crate) const DEFAULT: OptionValue = OptionValue::Word("off");

    pub(crate) fn get() -> OptionValue {
        match signal::signal() {
            0 => DEFAULT,
            sig => {
                signal::signal_name(sig).map_or(OptionValue::Number(sig as u64), OptionValue::Word)
            }
        }
    }

    pub(crate) fn apply(sig: u64, _: &[u8]) -> Result<(), OptionError> {
        if !signal::set_signal(sig as core::ffi::c_int) {
            return Err(OptionError::Failed);
        }
        if sig != 0 {
            crate::profile::switch_on();
        }
        Ok(())
    }
}

/// `STRATA_STACK_WALKER`.
pub(crate) mod walker {
    use super::*;
    use strata_os::stack::{self, Walker};

    pub(crate) const DEFAULT: OptionValue = OptionValue::Word("strata");

    pub(crate) fn get() -> OptionValue {
        match stack::walker() {
            Walker::Fast => DEFAULT,
            Walker::System => OptionValue::Word("system"),
        }
    }

    pub(crate) fn apply(system: u64, _: &[u8]) -> Result<(), OptionError> {
        stack::set_walker(if system != 0 {
            Walker::System
        } else {
            Walker::Fast
        });
        Ok(())
    }
}
