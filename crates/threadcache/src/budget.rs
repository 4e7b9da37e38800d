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
//! draws more only when one of its lists is about to grow past its budget
//! (up to the fair share and what the pool has), and gives back on its
//! periodic checks what it holds above the fair share, and at its idle
//! passes what its lists no longer use. The pool starts at the total, so
//! the budgets of all caches add up to at most the total plus the floors
//! drawn from an empty pool.
//!
//! Drawing on demand, not up to the fair share at once, matters when a
//! cache goes quiet without exiting: a program's main thread that
//! allocates a little, starts the workers and waits for them in
//! `pthread_join` never reaches another periodic check. Had it drawn the
//! fair share of a lone thread (the per-thread maximum) when it started,
//! that budget would stay with it, and the last worker to start would
//! find the pool empty and work with the floor, moving objects to and
//! from the central layer on most of its allocations (malloc-thread, 4
//! workers: 38,000 budget fits in that worker and a third more
//! instructions for the whole program; measurements: docs/performance.md,
//! "Thread-cache budget").
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

    /// The budget a cache holding `current` keeps when it needs `keep`:
    /// what it holds above that, or above the fair share, goes back to the
    /// pool (a cache that needs more draws it with [`Budget::draw`]).
    pub(crate) fn shrink(&self, current: usize, keep: usize) -> usize {
        let keep = keep.min(self.fair());
        if current <= keep {
            return current;
        }
        self.pool
            .fetch_add((current - keep) as isize, Ordering::Relaxed);
        keep
    }

    /// The budget of a cache holding `current` that wants `want`: what the
    /// pool can add towards the smaller of `want` and the fair share
    /// (`current` if nothing, or if it holds that much already).
    pub(crate) fn draw(&self, current: usize, want: usize) -> usize {
        let target = want.min(self.fair());
        if target <= current {
            return current;
        }
        let want = (target - current) as isize;
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
            // Every cache gives back its excess, then draws all it may.
            for c in caches.iter_mut() {
                *c = b.shrink(*c, usize::MAX);
            }
            for c in caches.iter_mut() {
                *c = b.draw(*c, usize::MAX);
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

    /// A cache draws what it asks for, never past its fair share, and a
    /// quiet cache that drew little leaves the rest to the others.
    #[test]
    fn caches_draw_what_they_need_and_give_back_what_they_do_not() {
        let total = 8 * MIB;
        let b = Budget::new(total, fair_share(32 * MIB, total, 1));
        // A first thread, alone, needs little.
        let quiet = b.join();
        assert_eq!(b.draw(quiet, 100 << 10), quiet, "the floor covers it");
        b.set_fair(fair_share(32 * MIB, total, 4));
        let mut busy: Vec<usize> = (0..3).map(|_| b.join()).collect();
        for c in busy.iter_mut() {
            *c = b.draw(*c, usize::MAX);
        }
        // Each of the busy ones got its share (2 MiB), the quiet one kept
        // its floor, and the pool holds the quiet one's unused share.
        assert!(busy.iter().all(|&c| c == 2 * MIB), "{busy:?}");
        assert_eq!(b.pool(), (2 * MIB - MIN_CACHE_BYTES) as isize);
        // A busy cache whose lists shrank keeps what it uses now.
        busy[0] = b.shrink(busy[0], MIB);
        assert_eq!(busy[0], MIB);
        assert_eq!(b.pool(), (3 * MIB - MIN_CACHE_BYTES) as isize);
        for c in busy.into_iter().chain([quiet]) {
            b.leave(c);
        }
        assert_eq!(b.pool(), total as isize);
    }
}
