//! How big a run of a bench is.

use std::time::Duration;

/// How big a run to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The real comparison (2-3 minutes on 2 quiet cores).
    Full,
    /// A run of about a third of that, with smaller counts and fewer
    /// repetitions.
    Quick,
    /// A few seconds: every workload once with tiny counts (used when the
    /// bench binary is run by `cargo test`, to check that it still works).
    Smoke,
}

impl Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
        }
    }

    /// Repetitions per allocator (the median of these is reported).
    pub fn reps(self) -> usize {
        match self {
            Mode::Full => 5,
            Mode::Quick => 3,
            Mode::Smoke => 1,
        }
    }

    /// Time budget of one run; a run that exceeds it stops early and is
    /// flagged (and the allocator is not repeated on that row). A full run
    /// of a row takes well under a second on every allocator that does not
    /// stumble on it; those that do are cut off here.
    pub fn budget(self) -> Duration {
        match self {
            Mode::Full => Duration::from_secs(3),
            Mode::Quick => Duration::from_millis(1500),
            Mode::Smoke => Duration::from_secs(2),
        }
    }

    /// `full`, `quick` or `smoke`, whichever this mode is.
    pub fn pick<T>(self, full: T, quick: T, smoke: T) -> T {
        match self {
            Mode::Full => full,
            Mode::Quick => quick,
            Mode::Smoke => smoke,
        }
    }
}
