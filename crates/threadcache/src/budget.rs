//! The byte budget the thread caches share.
//!
//! Each cache's budget is a ceiling on what it keeps for reuse (the sum of
//! its lists' maxima times their object sizes). A fair share is `total /
//! live caches`, between a floor and the per-thread maximum; but a cache
//! that went idle cannot be told to shrink (only its own thread touches
//! it), so fair shares alone do not bound the sum: caches made when few
//! threads lived would keep large budgets while many more arrive.
//!
//! So budgets are drawn from a pool. A cache joins with the floor (drawn
//! even when the pool is empty: a thread always gets a working cache),
//! and on its periodic checks moves towards the fair share: it gives back
//! what it holds above it, or draws what the pool has up to it. The pool
//! starts at the total, so the budgets of all caches add up to at most the
//! total plus the floors drawn from an empty pool.
//!
//! # Invariants
//! - `pool + Σ budgets of live caches == total` at all times (every change
//!   is one atomic add or compare-exchange on `pool` that matches a change
//!   of one cache's budget).
//! - Both words are stored relative to the registry's defaults (the pool
//!   less the default total, the fair share xor the default maximum), so
//!   that a budget made with the defaults is zero bytes: the thread caches
//!   in a static sit in `.bss` and cost no memory until written.

use crate::registry::{DEFAULT_MAX_CACHE_BYTES, DEFAULT_TOTAL_CACHE_BYTES};
use crate::sync::statics::{AtomicIsize, AtomicUsize, Ordering};

/// What `pool` is stored relative to.
const POOL_BASE: isize = DEFAULT_TOTAL_CACHE_BYTES as isize;
/// What `fair` is stored xor'd with.
const FAIR_BASE: usize = DEFAULT_MAX_CACHE_BYTES;

/// The least budget a cache gets (or the per-thread maximum, if lower):
/// enough for a few batches of every size a thread commonly uses.
pub(crate) const MIN_CACHE_BYTES: usize = 128 << 10;

/// The fair share of each cache when `live` caches exist, the per-thread
/// maximum is `max` and all caches together may hold `total`.
pub(crate) fn fair_share(max: usize, total: usize, live: usize) -> usize {
    (total / live.max(1)).clamp(MIN_CACHE_BYTES.min(max), max)
}

/// The budget pool and the fair share, shared by every cache of a registry
/// (always core's atomics: caches hold the address).
pub(crate) struct Budget {
    /// Each cache's fair share now, xor `FAIR_BASE`.
    fair: AtomicUsize,
    /// Bytes of the total no cache holds (negative when floors overdrew),
    /// less `POOL_BASE`.
    pool: AtomicIsize,
}

impl Budget {
    pub(crate) const fn new(total: usize, fair: usize) -> Budget {
        Budget {
            fair: AtomicUsize::new(fair ^ FAIR_BASE),
            pool: AtomicIsize::new(total as isize - POOL_BASE),
        }
    }

    /// Sets the fair share (as caches come and go, or settings change).
    pub(crate) fn set_fair(&self, fair: usize) {
        self.fair.store(fair ^ FAIR_BASE, Ordering::Relaxed);
    }

    /// The fair share now.
    pub(crate) fn fair(&self) -> usize {
        self.fair.load(Ordering::Relaxed) ^ FAIR_BASE
    }

    /// The total changed by `delta` bytes.
    pub(crate) fn grow_total(&self, delta: isize) {
        self.pool.fetch_add(delta, Ordering::Relaxed);
    }

    /// A new cache's budget: the floor (at most the fair share), drawn
    /// whatever the pool holds. Refit moves it towards the fair share.
    pub(crate) fn join(&self) -> usize {
        let start = MIN_CACHE_BYTES.min(self.fair());
        self.pool.fetch_sub(start as isize, Ordering::Relaxed);
        start
    }

    /// The budget a cache holding `current` should hold now: the fair
    /// share if it holds more (the excess goes back to the pool), else
    /// what the pool can add towards the fair share.
    pub(crate) fn refit(&self, current: usize) -> usize {
        let fair = self.fair();
        if current >= fair {
            self.pool
                .fetch_add((current - fair) as isize, Ordering::Relaxed);
            return fair;
        }
        let want = (fair - current) as isize;
        // Adds and subtractions work on the stored (shifted) value as they
        // are; only the comparison with `want` needs the real one.
        let mut stored = self.pool.load(Ordering::Relaxed);
        loop {
            let take = want.min(stored + POOL_BASE);
            if take <= 0 {
                return current;
            }
            match self.pool.compare_exchange_weak(
                stored,
                stored - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return current + take as usize,
                Err(now) => stored = now,
            }
        }
    }

    /// A cache holding `current` went away.
    pub(crate) fn leave(&self, current: usize) {
        self.pool.fetch_add(current as isize, Ordering::Relaxed);
    }

    /// Bytes in the pool (tests).
    #[cfg(test)]
    pub(crate) fn pool(&self) -> isize {
        self.pool.load(Ordering::Relaxed) + POOL_BASE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn fair_shares_stay_between_floor_and_maximum() {
        let total = 64 * MIB;
        for live in 0..=2 {
            assert_eq!(fair_share(32 * MIB, total, live), 32 * MIB, "{live} live");
        }
        assert_eq!(fair_share(32 * MIB, total, 8), 8 * MIB);
        assert_eq!(fair_share(32 * MIB, total, 10_000), MIN_CACHE_BYTES);
        assert_eq!(fair_share(64 << 10, total, 10_000), 64 << 10);
        for live in 1..=512 {
            assert!(fair_share(32 * MIB, total, live) * live <= total);
        }
    }

    /// Budgets taken early while few caches lived come back as caches
    /// refit, and the sum never passes the total plus the floors.
    #[test]
    fn budgets_drawn_from_the_pool_never_add_up_past_the_total() {
        let total = 8 * MIB;
        let b = Budget::new(total, fair_share(32 * MIB, total, 1));
        let mut caches: Vec<usize> = Vec::new();
        for live in 1..=32usize {
            b.set_fair(fair_share(32 * MIB, total, live));
            caches.push(b.join());
            // Every cache refits once per arrival, in order.
            for c in caches.iter_mut() {
                *c = b.refit(*c);
            }
            let sum: usize = caches.iter().sum();
            assert!(sum <= total + live * MIN_CACHE_BYTES, "{live}: {sum}");
            assert_eq!(b.pool() + sum as isize, total as isize);
        }
        // With 32 caches each has its fair share (256 KiB).
        assert!(caches.iter().all(|&c| c == total / 32), "{caches:?}");
        for c in caches.drain(..) {
            b.leave(c);
        }
        assert_eq!(b.pool(), total as isize);
    }
}
