//! The time budget of guarded sampling: at most so many guarded blocks a
//! second, process-wide, whatever the sampling rate asks for.
//!
//! A guarded block costs two `mprotect` calls, a page fill and two stack
//! captures (about 5 µs on a virtual machine), against tens of
//! nanoseconds for an ordinary allocation. One in 1,000 of a program that
//! allocates 50 million blocks a second would spend a quarter of its time
//! there; a budget of 2,000 a second keeps that near 1% of one core while
//! programs that allocate less than 2 million blocks a second see the
//! rate they asked for. `mprotect` also takes the process's memory-map
//! lock, which is why the budget is one for the process, not one per
//! thread.
//!
//! # Invariants
//! - A token bucket: `tokens` never exceeds the burst (a tenth of a
//!   second's worth, at least 1), and is refilled from the coarse
//!   monotonic clock in whole tokens, so no time is lost to rounding.
//! - Called under the guarded pool's lock only; a budget of 0 is no budget.

/// Guarded blocks a second at most, process-wide, by default.
pub const DEFAULT_MAX_PER_SEC: usize = 2000;

/// A token bucket over a millisecond clock.
pub(super) struct Budget {
    tokens: u64,
    /// The clock reading the tokens are counted up to; `None` before the
    /// first call (the bucket starts full).
    since_ms: Option<u64>,
}

impl Budget {
    pub(super) const fn new() -> Budget {
        Budget {
            tokens: 0,
            since_ms: None,
        }
    }

    /// Takes a token at `now_ms` under a budget of `per_sec` (0: none);
    /// false if the budget is spent.
    pub(super) fn take(&mut self, now_ms: u64, per_sec: usize) -> bool {
        if per_sec == 0 {
            return true;
        }
        let per_sec = per_sec as u64;
        let burst = (per_sec / 10).max(1);
        match self.since_ms {
            None => {
                self.tokens = burst;
                self.since_ms = Some(now_ms);
            }
            Some(since) => {
                let elapsed = now_ms.saturating_sub(since);
                let earned = elapsed.saturating_mul(per_sec) / 1000;
                if earned > 0 {
                    self.tokens = self.tokens.saturating_add(earned).min(burst);
                    // Only the time the earned tokens account for is spent.
                    let used_ms = earned.saturating_mul(1000) / per_sec;
                    self.since_ms = Some(if self.tokens == burst {
                        now_ms
                    } else {
                        since + used_ms
                    });
                }
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_then_the_rate() {
        let mut b = Budget::new();
        // 1,000 a second: a burst of 100, then one a millisecond.
        let first = (0..1000).filter(|_| b.take(5_000, 1000)).count();
        assert_eq!(first, 100);
        assert!(!b.take(5_000, 1000));
        let mut taken = 0;
        for ms in 5_001..6_001 {
            taken += (0..10).filter(|_| b.take(ms, 1000)).count();
        }
        assert_eq!(taken, 1000, "one a millisecond for a second");
    }

    #[test]
    fn slow_rates_still_earn_tokens() {
        let mut b = Budget::new();
        // 3 a second: a burst of 1, then one every 333 ms or so.
        assert!(b.take(0, 3));
        let mut taken = 0;
        for ms in (1..=10_000).step_by(4) {
            taken += usize::from(b.take(ms, 3));
        }
        assert!((29..=31).contains(&taken), "{taken} in 10 s at 3 a second");
    }

    #[test]
    fn an_idle_bucket_fills_to_the_burst_only() {
        let mut b = Budget::new();
        assert!(b.take(0, 100));
        let n = (0..1000).filter(|_| b.take(3_600_000, 100)).count();
        assert_eq!(n, 10, "a tenth of a second's worth after an hour");
    }

    #[test]
    fn no_budget_takes_everything() {
        let mut b = Budget::new();
        assert!((0..10_000).all(|_| b.take(0, 0)));
    }
}
