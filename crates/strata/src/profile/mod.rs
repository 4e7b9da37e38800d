//! Sampled heap profiling: which stacks allocated the memory in use now,
//! at the peak, and since the start, estimated from a sample of the
//! allocations, written in pprof's format and as collapsed stacks.
//!
//! ```no_run
//! strata::profile::set_interval(2 << 20);
//! strata::profile::start();
//! // ... the program runs ...
//! strata::profile::dump("heap.pb.gz").unwrap();
//! ```
//!
//! or `STRATA_PROFILE=/tmp/prof` in the environment, or
//! `strata::set_option("STRATA_PROFILE", "/tmp/prof")` at run time (dumps
//! at exit; see `docs/profiling.md`).
//!
//! # Sampling
//! Each allocation of `s` bytes is sampled with probability
//! `p(s) = 1 - exp(-s/T)` (`T`: the interval, 2 MiB by default), as if a
//! Poisson process with one point every `T` bytes on average ran over the
//! bytes allocated; a sample of probability `p` stands for `1/p` blocks and
//! `s/p` bytes, so every estimate is unbiased.
//!
//! - Large blocks (a span of their own, already a slow path) draw their
//!   sample directly: one random number per block, from a generator the
//!   threads share (`sampler`).
//! - Small blocks cost the fast path nothing. The thread cache's countdown,
//!   which expires every 1024 allocations for the cache's idle check, also
//!   expires at an allocation the sampler picked: gaps are geometric with
//!   mean `1/q` (each allocation is *examined* with probability `q`,
//!   independently), and an examined allocation of `s` bytes is sampled
//!   with probability `min(1, p(s)/q)`, decided by the remainder of the
//!   gap's own draw (no second random number, no exponential: `sampler`).
//!   It is sampled with probability `min(p(s), q)` in all, and weighted by
//!   its inverse: unbiased whatever `q` is. `q` adapts per thread (at least
//!   about 1/1024, raised to the `p(s)` of each examined allocation,
//!   decaying by about 3% per examination), so that a thread allocating
//!   large small-class blocks is examined often enough to sample them at
//!   their own `p(s)`.
//! - A sampled small block is served from the profiler's pool (`pool`),
//!   outside the heap's arena; the object the cache popped goes back to
//!   its list. The free paths send pointers outside the arena to cold
//!   paths, which ask `release` first.
//!
//! # Records
//! A sample captures its stack ([`strata_os::stack::capture`]: no
//! allocation, no lock the allocator holds; strata's own reading of the
//! call-frame tables with a cache of decoded rules, or libgcc's walker
//! with `STRATA_STACK_WALKER=system`) before it takes the profiler's
//! lock, which guards only the tables of `store` and the pool, all in OS
//! memory. A capture the walker repeated from its memo comes with the key
//! of an earlier one (the same frames): the stack it was interned to is
//! remembered by key, so a repeated stack is neither hashed nor compared.
//! The lock is never held across a call that could take it again;
//! a signal handler that allocates on a thread holding it is refused a
//! sample (and its frees of sampled blocks wait for the next dump: see
//! `with_state`).
//!
//! # Invariants
//! - `live` counts the records in the table, in all and by a hash of
//!   their addresses; a free path consults the profiler only while both
//!   counts of its block are non-zero, so a program that never profiles
//!   pays one load on its cold free paths, and one that does takes the
//!   lock for few blocks besides the sampled ones.
//! - Every pool slot in use has a record; a record with `pooled == 0` is a
//!   block of the page heap's, whose free drops the record before the
//!   block goes back.
//! - Nothing here allocates through the global allocator or panics on a
//!   path an allocation reaches.

mod dump;
mod encode;
mod live;
mod math;
mod pool;
mod sampler;
pub(crate) mod settings;
mod signal;
mod store;
mod symbols;

use core::ptr::NonNull;

use strata_base::{ForkLock, Lock};
use strata_threadcache::SampleState;

use crate::sync::statics::{AtomicBool, AtomicUsize, Ordering};

pub use dump::{dump, dump_collapsed, dump_collapsed_cstr, dump_cstr, Kind};

pub(crate) use signal::signal_number;
use store::{Counts, Record, Records, Stacks};

/// The default mean interval between samples, in bytes.
pub const DEFAULT_INTERVAL: usize = 2 << 20;

/// Frames kept per stack (the innermost ones).
pub(crate) const MAX_DEPTH: usize = 64;

/// A new peak profile is taken when the live estimate passes the last one
/// by this fraction: the peak profile is within about 3% of the peak.
const PEAK_STEP: f64 = 1.0 / 32.0;

static ACTIVE: AtomicBool = AtomicBool::new(false);
static INTERVAL: AtomicUsize = AtomicUsize::new(DEFAULT_INTERVAL);
/// `pthread_self` of the thread holding `STATE` (0: none).
static OWNER: AtomicUsize = AtomicUsize::new(0);

/// What the profiler's lock guards.
pub(crate) struct State {
    records: Records,
    stacks: Stacks,
    pool: pool::Pool,
    /// Estimated live bytes (the sum of the live records' `size * weight`).
    live_bytes: f64,
    /// The live estimate when the peak profile was last taken.
    peak_bytes: f64,
    /// Samples taken since the start.
    samples: u64,
    /// The stacks of recent captures by their keys
    /// ([`strata_os::stack::capture_keyed`]): a capture with one of these
    /// keys wrote the frames of that stack, which need no interning.
    recent: [(u64, u32); RECENT],
}

/// Keys remembered in [`State::recent`]: one per memo of the stack
/// walker, whose keys modulo this say which memo gave them.
const RECENT: usize = strata_os::stack::CAPTURE_MEMOS;

impl State {
    const fn new() -> State {
        State {
            records: Records::new(),
            stacks: Stacks::new(),
            pool: pool::Pool::new(),
            live_bytes: 0.0,
            peak_bytes: 0.0,
            samples: 0,
            recent: [(0, 0); RECENT],
        }
    }
}

static STATE: Lock<State> = Lock::new(State::new());

/// Runs `f` with the profiler's tables; `None` if the calling thread holds
/// them already (a signal handler interrupted it in here), so that
/// re-entry never deadlocks.
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    // Only this thread stores `me`: seeing it means this thread holds it.
    if OWNER.load(Ordering::Relaxed) == me {
        return None;
    }
    let mut g = STATE.lock();
    OWNER.store(me, Ordering::Relaxed);
    let r = f(&mut g);
    OWNER.store(0, Ordering::Relaxed);
    Some(r)
}

// ---- switches -----------------------------------------------------------

/// Starts sampling (at the interval set, [`DEFAULT_INTERVAL`] unless
/// changed): on the calling thread at once, on every other thread at its
/// next countdown expiry, within 1024 of its allocations.
pub fn start() {
    crate::global::ensure_init();
    ACTIVE.store(true, Ordering::Relaxed);
    crate::global::rearm_this_thread();
}

/// Turns sampling on from a setting ([`settings`]): every thread at its
/// next countdown expiry, this one included (start-up applies settings, so
/// this must not wait for the allocator's initialisation).
fn switch_on() {
    ACTIVE.store(true, Ordering::Relaxed);
}

/// Stops sampling. The records of blocks still live stay (a dump still
/// shows them) and go as the blocks are freed.
pub fn stop() {
    ACTIVE.store(false, Ordering::Relaxed);
}

/// Whether sampling is on.
pub fn is_on() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Sets the mean interval between samples in bytes (`STRATA_PROFILE_INTERVAL`;
/// at least 1). Smaller is more precise and dearer: the relative error of
/// an estimate of `L` live bytes allocated in small blocks is about
/// `sqrt(T / L)`.
pub fn set_interval(bytes: usize) {
    INTERVAL.store(bytes.max(1), Ordering::Relaxed);
    sampler::interval_changed(bytes.max(1));
}

/// The mean interval between samples, in bytes.
pub fn interval() -> usize {
    INTERVAL.load(Ordering::Relaxed)
}

/// What the profiler holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProfileStats {
    /// Samples taken since the start.
    pub samples: u64,
    /// Sampled blocks still live (records held).
    pub live_samples: usize,
    /// Distinct stacks recorded.
    pub stacks: usize,
    /// The estimate of the bytes live now.
    pub live_bytes_estimate: f64,
    /// Bytes of OS memory the profiler's tables and pool hold (the pool
    /// counted as mapped, the sampled blocks' own bytes included).
    pub mapped_bytes: usize,
    /// Bytes of pool slots holding live sampled blocks (each block's
    /// bytes rounded up to its slot).
    pub pool_in_use: usize,
}

/// What the profiler holds now.
pub fn stats() -> ProfileStats {
    with_state(|s| ProfileStats {
        samples: s.samples,
        live_samples: s.records.len(),
        stacks: s.stacks.list.len(),
        live_bytes_estimate: s.live_bytes.max(0.0),
        mapped_bytes: s.records.mapped() + s.stacks.mapped() + s.pool.mapped(),
        pool_in_use: s.pool.in_use(),
    })
    .unwrap_or_default()
}

// ---- the samples -----------------------------------------------------------

pub(crate) use sampler::{draw_gap, drawn_below, examine_hazard, hazard, on_refill};

/// An examined allocation of `class` for `request` ([`crate::request`]):
/// sampled with probability `min(p, q)` ([`sampler`]), served from the
/// pool if so.
pub(crate) fn offer(st: &mut SampleState, class: u8, request: usize) -> Option<NonNull<u8>> {
    if !is_on() {
        return None;
    }
    let size = crate::request::size(request);
    let size = if size == 0 {
        strata_central::class_size_of(class)
    } else {
        size
    };
    let weight = sampler::examine(st, size)?;
    let bucket = pool::bucket_for(strata_central::class_size_of(class))?;
    let mut frames = [0usize; MAX_DEPTH];
    let (depth, key) = strata_os::stack::capture_keyed(&mut frames, 1);
    with_state(|s| {
        let block = s.pool.take(bucket);
        let block = NonNull::new(block)?;
        let r = Record {
            addr: block.as_ptr() as usize,
            size,
            weight,
            stack: 0,
            pooled: bucket as u32 + 1,
        };
        if !s.add(r, &frames[..depth], key) {
            // SAFETY: the slot was just taken and handed to nobody.
            unsafe { s.pool.give(block.as_ptr(), bucket) };
            return None;
        }
        Some(block)
    })
    .flatten()
}

/// A large block of `size` bytes just allocated at `p`: sampled with
/// probability `p(size)` ([`sampler`]: from the thread's own draws, or a
/// draw of its own on a thread without a cache).
#[cold]
pub(crate) fn sample_large(p: *mut u8, size: usize) {
    if !is_on() || p.is_null() {
        return;
    }
    use strata_threadcache::ThreadSlot;
    let weight = match crate::tls::this_thread().slot().cache() {
        // SAFETY: the calling thread's own cache, read through its own
        // slot; the large path holds no other reference to it.
        Some(mut c) => sampler::large_weight_on(unsafe { c.as_mut() }.sample_state(), size),
        None => sampler::large_weight(size),
    };
    let Some(weight) = weight else {
        return;
    };
    let mut frames = [0usize; MAX_DEPTH];
    let (depth, key) = strata_os::stack::capture_keyed(&mut frames, 1);
    let r = Record {
        addr: p as usize,
        size,
        weight,
        stack: 0,
        pooled: 0,
    };
    with_state(|s| s.add(r, &frames[..depth], key));
}

impl State {
    /// Records a sample of `frames`, captured with `key`; false if the OS
    /// refused room for it.
    fn add(&mut self, mut r: Record, frames: &[usize], key: u64) -> bool {
        r.stack = self.stack_of(frames, key);
        if !self.records.insert(r) {
            return false;
        }
        live::added(r.addr);
        self.samples += 1;
        let bytes = r.size as f64 * r.weight;
        let c: &mut Counts = self.stacks.counts_mut(r.stack);
        c.alloc_objects += r.weight;
        c.alloc_bytes += bytes;
        c.live_objects += r.weight;
        c.live_bytes += bytes;
        self.live_bytes += bytes;
        if self.live_bytes > self.peak_bytes * (1.0 + PEAK_STEP) {
            self.take_peak();
        }
        true
    }

    /// The stack id of `frames`: remembered for `key` if a capture with
    /// the same key was interned before (the same frames), else interned.
    fn stack_of(&mut self, frames: &[usize], key: u64) -> u32 {
        let seen = &mut self.recent[key as usize % RECENT];
        if key != 0 && seen.0 == key {
            return seen.1;
        }
        let id = self.stacks.intern(frames);
        // Id 0 may be a refusal of room that a later intern would not
        // meet: not remembered.
        if key != 0 && id != 0 {
            *seen = (key, id);
        }
        id
    }

    /// Makes the live profile the peak profile.
    fn take_peak(&mut self) {
        self.stacks.snapshot_peak();
        self.peak_bytes = self.live_bytes;
    }

    fn drop_record(&mut self, r: &Record) {
        live::dropped(r.addr);
        let bytes = r.size as f64 * r.weight;
        let c = self.stacks.counts_mut(r.stack);
        c.live_objects -= r.weight;
        c.live_bytes -= bytes;
        self.live_bytes -= bytes;
    }
}

// ---- the free paths' questions --------------------------------------------

pub(crate) use live::tracking;

/// `p` is being freed: drops its record if it has one. True if it was a
/// pool block, now freed (the caller has nothing left to do); false for a
/// block of the heap's, which the caller frees.
#[cold]
pub(crate) fn release(p: *mut u8) -> bool {
    with_state(|s| {
        let r = s.records.remove(p as usize)?;
        s.drop_record(&r);
        if r.pooled == 0 {
            return Some(false);
        }
        // SAFETY: the record said `p` is a slot of this bucket, and the
        // program gave it up.
        unsafe { s.pool.give(p, r.pooled as usize - 1) };
        Some(true)
    })
    .flatten()
    .unwrap_or(false)
}

/// The bytes asked for of the pool block at `p`, if it is one.
#[cold]
pub(crate) fn pooled_size(p: *const u8) -> Option<usize> {
    with_state(|s| s.records.get(p as usize).filter(|r| r.pooled != 0))
        .flatten()
        .map(|r| r.size)
}

/// A sampled block's record, taken out of the table while the block is
/// resized in place (see [`put_back`]).
#[cold]
pub(crate) fn take(p: *const u8) -> Option<TakenRecord> {
    with_state(|s| {
        let r = s.records.remove(p as usize)?;
        s.drop_record(&r);
        Some(TakenRecord(r))
    })
    .flatten()
}

/// A record out of the table (its bytes no longer counted as live).
#[derive(Clone, Copy)]
pub(crate) struct TakenRecord(Record);

impl TakenRecord {
    /// Bytes asked for.
    pub(crate) fn size(&self) -> usize {
        self.0.size
    }
}

/// Puts a record back for the block now at `addr` with `size` bytes. A
/// resize keeps the block's weight: it was sampled with probability `p` as
/// a block, and its bytes now are `size`, so `size / p` stays an unbiased
/// estimate of them (a block not sampled had no record before and gets none
/// now: a resize in place is not a new allocation).
#[cold]
pub(crate) fn put_back(rec: TakenRecord, addr: usize, size: usize) {
    let r = Record {
        addr,
        size,
        ..rec.0
    };
    with_state(|s| {
        if s.records.insert(r) {
            live::added(r.addr);
            let bytes = r.size as f64 * r.weight;
            let c = s.stacks.counts_mut(r.stack);
            c.live_objects += r.weight;
            c.live_bytes += bytes;
            s.live_bytes += bytes;
        }
    });
}

// ---- set-up and fork ------------------------------------------------------

/// Applies `STRATA_PROFILE`, `STRATA_PROFILE_INTERVAL`,
/// `STRATA_PROFILE_SIGNAL` and `STRATA_STACK_WALKER` from the environment
/// (once, at the allocator's start), through their rows of the settings
/// table ([`settings`]).
pub(crate) fn init_from_env() {
    crate::options::apply_own_from_env();
}

extern "C" fn dump_at_exit() {
    signal::dump_to_prefix(None);
}

/// Takes the profiler's lock before `fork`.
pub(crate) fn fork_prepare() {
    signal::settings_lock().fork_prepare();
    STATE.fork_prepare();
}

/// Releases it in the parent.
pub(crate) fn fork_parent() {
    // SAFETY: fork_prepare ran on this thread.
    unsafe { STATE.fork_parent() };
    // SAFETY: as above.
    unsafe { signal::settings_lock().fork_parent() };
}

/// Resets it in the child.
pub(crate) fn fork_child() {
    // SAFETY: in the child, after fork_prepare in the parent.
    unsafe { STATE.fork_child() };
    OWNER.store(0, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { signal::settings_lock().fork_child() };
    signal::forget_thread();
}

/// Copies what a dump needs under the lock ([`dump`]).
pub(crate) fn snapshot(
    out: &mut store::OsVec<dump::StackCopy>,
    frames: &mut store::OsVec<usize>,
) -> bool {
    with_state(|s| {
        if s.live_bytes > s.peak_bytes {
            s.take_peak();
        }
        out.clear();
        frames.clear();
        let list = s.stacks.list.as_slice();
        if !out.reserve(list.len()) || !frames.reserve(s.stacks.frames.len()) {
            return false;
        }
        for f in s.stacks.frames.as_slice() {
            frames.push(*f);
        }
        for st in list {
            out.push(dump::StackCopy {
                at: st.at,
                depth: st.depth,
                counts: st.counts,
            });
        }
        true
    })
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_stack() {
        let mut s = State::new();
        let a = s.stack_of(&[1, 2, 3], 17);
        assert_ne!(a, 0);
        // A capture with the same key wrote the same frames: the stack is
        // not looked up again (other frames here show it was not).
        assert_eq!(s.stack_of(&[9, 9], 17), a);
        // No key: interned, found.
        assert_eq!(s.stack_of(&[1, 2, 3], 0), a);
        let b = s.stack_of(&[1, 2, 4], 33);
        assert_ne!(33 % RECENT, 17 % RECENT);
        assert_ne!(b, a);
        // A new key of the same memo replaces it; the old key's frames
        // are interned again, to the same stack.
        let c = s.stack_of(&[5], 33 + RECENT as u64);
        assert!(c != a && c != b);
        assert_eq!(s.stack_of(&[1, 2, 4], 33), b);
        assert_eq!(s.stacks.list.len(), 4, "the empty stack and three");
    }
}
