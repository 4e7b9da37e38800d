//! Guarded sampling: one small allocation in `N` (on average) gets an OS
//! page of its own between two inaccessible guard pages, so that an
//! overflow, an underflow or a use after free of that block faults at the
//! first bad access and is reported with the stacks that allocated and
//! freed it (the idea of GWP-ASan, and of tcmalloc's guarded sampling).
//! Off by default; `STRATA_GUARDED_RATE=N` (or [`set_rate`], or the
//! setting `guarded_rate` through `strata_set_option`) turns it on.
//!
//! # Sampling
//! The thread cache's countdown, which the heap profiler already uses
//! ([`strata_threadcache::Sampler`]), expires at the allocations the
//! sampler wants to see. Each allocation is examined with probability
//! `c = q + g - q g`, where `q` is the profiler's examination probability
//! (0 when it is off) and `g = 1/N`: the gap to the next examined one is
//! geometric with mean `1/c`, so the profiler's and the guard's picks are
//! two independent Bernoulli processes sharing one countdown. An examined
//! allocation goes to the profiler with probability `q / c` (its own rate,
//! unchanged: profiles stay unbiased) and otherwise to the guarded pool. A
//! block is never both: when the two would pick the same allocation, the
//! profiler takes it, which lowers the guard's rate by a factor `1 - q`
//! (at most 0.1% at the profiler's least `q`). With both off, the
//! countdown runs for the idle check only, as before: the fast path is the
//! same instructions.
//!
//! # Budget
//! At most [`DEFAULT_MAX_PER_SEC`] guarded blocks a second are made,
//! process-wide (`STRATA_GUARDED_MAX_PER_SEC`, [`set_max_per_sec`]; 0: no
//! limit): a guarded block costs microseconds, and a program that
//! allocates faster than `rate` times that many blocks a second would
//! otherwise spend more than about 1% of a core on them. Picks past the
//! budget are served as ordinary allocations and counted
//! ([`GuardedStats::skipped`]); see `budget`.
//!
//! Only allocations through the thread caches are sampled, of size classes
//! up to one OS page; large blocks are not (the `checked` build guards
//! those already).
//!
//! # Invariants
//! - Nothing here allocates through the global allocator, panics, or holds
//!   a lock across a call that could take it again; the fault reporter
//!   takes no lock and captures no stack (see `report`).
//! - A pointer is the pool's exactly when `owns` says so: the free,
//!   usable-size and realloc paths ask it before anything else on their
//!   cold (outside the arena) paths.

mod budget;
mod pool;
mod report;

use core::ptr::NonNull;

use strata_threadcache::{SampleState, Sampler};

use crate::sync::statics::{AtomicUsize, Ordering};

pub use budget::DEFAULT_MAX_PER_SEC;
pub use pool::SLOTS;

/// The mean number of allocations between two guarded ones when sampling
/// is turned on at the rate this crate suggests.
pub const DEFAULT_RATE: usize = 1000;

/// One allocation in `RATE` is guarded, on average; 0: off.
static RATE: AtomicUsize = AtomicUsize::new(0);

/// Sets the mean number of allocations between two guarded ones (`1`:
/// every allocation while a slot is free; `0`: off). Takes effect on the
/// calling thread at once, on the others at their next countdown expiry
/// (within 1024 of their allocations).
pub fn set_rate(n: usize) {
    RATE.store(n, Ordering::Relaxed);
    crate::global::ensure_init();
    crate::global::rearm_this_thread();
}

/// The rate in force (0: off).
pub fn rate() -> usize {
    RATE.load(Ordering::Relaxed)
}

/// Sets the rate at start-up, before any thread cache exists. The default
/// (off) is not written: a store, even of the zero already there, would
/// make the static's page resident in every program.
pub(crate) fn set_rate_at_start(n: usize) {
    if n != RATE.load(Ordering::Relaxed) {
        RATE.store(n, Ordering::Relaxed);
    }
}

/// Guarded blocks a second at most, process-wide; 0: no limit.
static MAX_PER_SEC: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_PER_SEC);

/// Sets the most guarded blocks made a second, process-wide (0: no
/// limit): the sampling rate's picks past it are served as ordinary
/// allocations. Takes effect at the next pick.
pub fn set_max_per_sec(n: usize) {
    MAX_PER_SEC.store(n, Ordering::Relaxed);
}

/// The most guarded blocks made a second (0: no limit).
pub fn max_per_sec() -> usize {
    MAX_PER_SEC.load(Ordering::Relaxed)
}

/// What the guarded pool holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardedStats {
    /// Guarded blocks live now.
    pub live: usize,
    /// Guarded blocks handed out since the start.
    pub allocated: u64,
    /// Allocations the sampling rate picked that were served as ordinary
    /// ones because the budget ([`max_per_sec`]) was spent.
    pub skipped: u64,
    /// Bytes of address space the pool reserved (0 before its first use).
    pub reserved_bytes: usize,
    /// Bytes of the pool that may be resident: its slot pages (a freed
    /// slot's page stays mapped, inaccessible, until reused).
    pub max_resident_bytes: usize,
}

/// What the guarded pool holds now.
pub fn stats() -> GuardedStats {
    pool::stats()
}

/// Whether `p` is a block of the guarded pool (live or not).
pub fn is_guarded(p: *const u8) -> bool {
    owns(p)
}

/// Whether `p` lies in the pool's reservation: two loads, a subtraction
/// and a compare (false before the pool exists).
#[inline]
pub(crate) fn owns(p: *const u8) -> bool {
    pool::owns(p as usize)
}

/// The probability an allocation is guarded with (0.0 when off).
fn probability() -> f64 {
    match rate() {
        0 => 0.0,
        n => 1.0 / n as f64,
    }
}

/// The sampler the thread caches offer allocations to: the heap
/// profiler's and the guard's, on one countdown.
pub(crate) const SAMPLER: Sampler = Sampler {
    next_gap,
    offer,
    on_refill: crate::profile::on_refill,
};

/// The guard's hazard per allocation: `-ln(1 - g)` for its probability
/// `g` (0.0 when off; infinite for every allocation).
fn guard_hazard(g: f64) -> f64 {
    if g == 0.0 {
        0.0
    } else {
        crate::profile::hazard(g)
    }
}

/// Allocations until the next examined one: geometric for the sum of the
/// two hazards, as if each allocation were examined by the profiler with
/// its probability `q` and by the guard with `g`, independently (with
/// `1 - (1 - q)(1 - g)` in all).
fn next_gap(st: &mut SampleState) -> u32 {
    let c = crate::profile::examine_hazard(st) + guard_hazard(probability());
    if c <= 0.0 {
        return 0;
    }
    crate::profile::draw_gap(st, c)
}

/// An examined allocation (`request`: [`crate::request`]): the profiler's
/// if its draw fell below the profiler's hazard (with probability
/// `q / (1 - (1 - q)(1 - g))`), otherwise the guard's.
fn offer(st: &mut SampleState, class: u8, request: usize) -> Option<NonNull<u8>> {
    let h = crate::profile::examine_hazard(st);
    if h > 0.0 && crate::profile::drawn_below(st, h) {
        return crate::profile::offer(st, class, request);
    }
    if probability() == 0.0 {
        return None;
    }
    pool::alloc(class, request)
}

/// Frees the guarded block at `p` (which [`owns`] accepted); a block not
/// live, or a pointer that is not a block's start, is reported.
///
/// # Safety
/// `p` is a pointer the caller gives up.
#[cold]
pub(crate) unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded contract.
    unsafe { pool::free(p) }
}

/// The size asked for of the live guarded block at `p` (which [`owns`]
/// accepted), which is also its usable size: the bytes past it, up to the
/// guard page or the page's end, are checked on free. Anything else is
/// reported and reads as 0.
#[cold]
pub(crate) fn size_of(p: *const u8) -> usize {
    pool::live_size(p as usize).unwrap_or(0)
}

/// `realloc` of a guarded block: always a new block (a guarded block has
/// no room to grow, its guard page is right behind it), the contents
/// copied, the old block freed (and made inaccessible).
///
/// # Safety
/// `p` is a block of the caller's, which [`owns`] accepted.
#[cold]
pub(crate) unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    let Some(old) = pool::live_size(p as usize) else {
        return core::ptr::null_mut();
    };
    let q = crate::raw::alloc(new_size, align);
    if !q.is_null() {
        // SAFETY: distinct live blocks; the copy fits both.
        unsafe {
            core::ptr::copy_nonoverlapping(p, q, old.min(new_size));
            pool::free(p);
        }
    }
    q
}

/// Takes the pool's lock before `fork`.
pub(crate) fn fork_prepare() {
    pool::fork_prepare();
}

/// Releases it in the parent.
pub(crate) fn fork_parent() {
    pool::fork_parent();
}

/// Resets it in the child, which keeps the pool (the mapping is inherited).
pub(crate) fn fork_child() {
    pool::fork_child();
}
