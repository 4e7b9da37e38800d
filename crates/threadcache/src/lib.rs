//! # strata-threadcache: per-thread caches
//!
//! The top of strata's stack. Every thread gets a [`ThreadCache`], a free list
//! per size class, so that the common `malloc`/`free` is a pop or a push with
//! no lock and no atomic read-modify-write. Lists refill from and drain to a
//! [`Backend`] (the central layer) a batch at a time.
//!
//! ## Thread-local state
//! The owner of a [`ThreadCaches`] declares the thread-local slot:
//!
//! ```ignore
//! thread_local! { static SLOT: Slot = const { Slot::new() }; }
//! ```
//!
//! A const-initialised thread-local without a destructor costs one
//! `%fs`-relative load in an executable and never allocates or registers
//! anything with std. Cleanup at thread exit goes through a pthread key
//! destructor instead. The slot holds a pointer or one of three states:
//!
//! ```text
//!   Uninit ──first use──▶ Initialising ──▶ Active(cache) ──thread exit──▶ Destroyed
//!                         (pthread_setspecific may call calloc: served centrally)
//! ```
//!
//! In any state but Active, allocations and frees go straight to the backend,
//! so a thread that allocates while its cache is being set up, or inside a
//! TLS destructor after its cache was flushed, is served correctly.
//!
//! ## Sampling
//! An owner may have some allocations offered to a [`Sampler`] of its own
//! (strata's heap profiler), named by its [`Hooks`] (`ThreadCaches<B, H>`,
//! made with `ThreadCaches::with_hooks`): the per-thread countdown that paces the idle
//! checks also expires at the allocation the sampler asked for next, and
//! only then is the sampler called. The fast path is the same with
//! sampling on or off; allocations served by a refill count too.
//!
//! ## Cross-thread frees
//! An object freed by another thread goes into *that* thread's cache, and
//! flows back through the central layer in batches; nothing is lost when a
//! thread exits, because its destructor flushes every list.
//!
//! # Invariants
//! - A cache is touched only by its thread (and its destructor).
//! - Cache records come from OS memory ([`strata_base::MetaPool`]), never from
//!   the global allocator.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

mod budget;
mod cache;
mod registry;
mod retired;
mod slot;
mod sync;

#[cfg(test)]
mod fake;
#[cfg(all(test, strata_loom))]
mod loom_tests;
#[cfg(all(test, not(strata_loom)))]
mod tests;
#[cfg(all(test, not(strata_loom)))]
mod tests_retired;

pub use cache::{ThreadCache, EVENT_EVERY, MAX_CLASSES};
#[doc(hidden)]
pub use registry::{ThreadCacheStats, ThreadCaches};
pub use slot::{Sentinels, Slot, ThreadSlot, SENTINELS};

use core::ptr::NonNull;

use strata_os::Os;

/// A sampler's state for one thread, kept in the thread's cache and
/// handed to the [`Sampler`]'s functions: opaque to the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SampleState {
    /// A random generator's state (seeded per cache, never zero).
    pub rng: u64,
    /// The sampler's own parameter (0.0 in a new cache).
    pub param: f64,
    /// What the sampler noted of its last draw (0.0 in a new cache).
    pub note: f64,
    /// The sampler's own state for the thread's allocations that bypass
    /// the cache, large blocks (0.0 in a new cache).
    pub large: f64,
}

impl SampleState {
    /// A state whose generator starts from `seed`.
    pub const fn seeded(seed: u64) -> SampleState {
        // Any odd constant keeps an xorshift state non-zero.
        SampleState {
            rng: seed | 1,
            param: 0.0,
            note: 0.0,
            large: 0.0,
        }
    }
}

/// The owner's sampler, called on the allocating thread with no lock of
/// the thread caches held; it must not allocate through them.
#[derive(Clone, Copy, Debug)]
pub struct Sampler {
    /// The number of allocations until the next one to offer (the next
    /// one is 1), drawn afresh at every expiry of the countdown: the gaps
    /// must be memoryless (geometric) for redrawing to be harmless. 0:
    /// offer none.
    pub next_gap: fn(&mut SampleState) -> u32,
    /// An allocation offered: its size class and the word the owner passed
    /// for the request (the bytes asked for, or a word of the owner's own
    /// that says more, such as the alignment; 0 when the owner did not
    /// say), which the cache never reads. Returns a block meeting the
    /// request to hand out instead of the cache's object (which goes back
    /// on its list), or `None` to hand that out.
    pub offer: fn(&mut SampleState, class: u8, size: usize) -> Option<NonNull<u8>>,
    /// A list of `class` was refilled: the thread is about to allocate
    /// objects of that class. True if that changed what `next_gap` draws
    /// (the countdown is then re-armed before the refill's allocation
    /// counts).
    pub on_refill: fn(&mut SampleState, class: u8) -> bool,
}

/// The sampler of thread caches made without one: offers nothing.
pub const NO_SAMPLER: Sampler = Sampler {
    next_gap: |_| 0,
    offer: |_, _, _| None,
    on_refill: |_, _| false,
};

/// What the owner of the thread caches hooks into them, as a type rather
/// than as function pointers in the registry: the calls are direct, and a
/// registry in a static holds no relocated pointer, so it can be all zero
/// bytes (`.bss`: no memory until written).
pub trait Hooks: 'static {
    /// Called whenever a thread sets up its cache (the owner's one-time
    /// initialisation goes there; it must be cheap once done, and may
    /// allocate: the thread is served centrally while it runs).
    fn on_first_use() {}
    /// Offered the allocations it asks for (see [`Sampler`]).
    const SAMPLER: Sampler = NO_SAMPLER;
}

/// No hooks: nothing on first use, no sampler.
pub struct NoHooks;

impl Hooks for NoHooks {}

/// What thread caches need from the layer below.
///
/// # Safety
/// Objects handed out are distinct, at least `class_size(class)` bytes and at
/// least 8 bytes, and stay valid until given back.
pub unsafe trait Backend: Sync {
    /// The OS layer cache records are mapped from.
    type Os: Os;
    /// The OS layer.
    fn os(&self) -> &Self::Os;
    /// Number of size classes, class 0 (unused) included; at most [`MAX_CLASSES`].
    fn num_classes(&self) -> usize;
    /// Object size of `class`.
    fn class_size(&self, class: u8) -> usize;
    /// Objects moved per batch for `class`.
    fn batch_size(&self, class: u8) -> usize;
    /// Up to `out.len()` objects into `out[..count]`, the count 0 only
    /// when memory ran out. They form a stack: the last is used first.
    fn alloc_batch(&self, class: u8, out: &mut [*mut u8]) -> usize;
    /// Like [`Backend::alloc_batch`], for a list that starts out: objects
    /// apart from those other threads freed or took just before (fresh
    /// from a span where the backend can), since the list hands out the
    /// last of them as its first object (see [`ThreadCache::refill`]).
    fn alloc_batch_apart(&self, class: u8, out: &mut [*mut u8]) -> usize {
        self.alloc_batch(class, out)
    }
    /// Takes back the objects in `objs`.
    ///
    /// # Safety
    /// `objs` are distinct free objects of `class` from this backend.
    unsafe fn free_batch(&self, class: u8, objs: &[*mut u8]);
    /// Takes back objects from a cache that is going away (thread exit,
    /// an explicit flush): they need not be kept for another thread.
    ///
    /// # Safety
    /// As for [`Backend::free_batch`].
    unsafe fn free_batch_to_spans(&self, class: u8, objs: &[*mut u8]) {
        // SAFETY: forwarded contract.
        unsafe { self.free_batch(class, objs) }
    }
    /// A thread's cache went away and `live` caches remain: the backend
    /// may give back its share of what it keeps for the threads (all of it
    /// when one cache, or none, is left).
    fn thread_exited(&self, live: usize) {
        let _ = live;
    }
    /// How often an active cache gives back what it held unused (ms).
    fn idle_interval_ms(&self) -> u64 {
        250
    }
    /// Changes whenever the memory beneath nears its limit: a cache that
    /// sees it change gives back everything it holds.
    fn pressure_epoch(&self) -> u32 {
        0
    }
    /// The backend's own idle work (decay), called by a cache's idle pass
    /// and every 64 slow-path calls of a cache (so the backend's batch
    /// calls need not read the clock themselves). Must be cheap when there
    /// is nothing to do.
    fn tick(&self) {}
    /// The size class of `obj`, an object this backend handed out, or 0
    /// if it cannot tell (then no sample is taken in its place).
    fn class_of_object(&self, obj: *mut u8) -> u8 {
        let _ = obj;
        0
    }
}

// The central layer's classes must fit a cache's lists.
const _: () = assert!(strata_central::NUM_CLASSES <= MAX_CLASSES);

// SAFETY: the central layer hands out distinct objects of its class sizes,
// all at least 8 bytes.
unsafe impl<O: Os> Backend for strata_central::Central<strata_pageheap::PageHeap<O>> {
    type Os = O;
    #[inline]
    fn os(&self) -> &O {
        self.pages().os()
    }
    #[inline]
    fn num_classes(&self) -> usize {
        strata_central::NUM_CLASSES
    }
    #[inline]
    fn class_size(&self, class: u8) -> usize {
        strata_central::class_size_of(class)
    }
    #[inline]
    fn batch_size(&self, class: u8) -> usize {
        strata_central::CLASSES[class as usize].batch as usize
    }
    #[inline]
    fn alloc_batch(&self, class: u8, out: &mut [*mut u8]) -> usize {
        strata_central::Central::alloc_batch(self, class, out)
    }
    fn alloc_batch_apart(&self, class: u8, out: &mut [*mut u8]) -> usize {
        strata_central::Central::alloc_batch_apart(self, class, out)
    }
    #[inline]
    unsafe fn free_batch(&self, class: u8, objs: &[*mut u8]) {
        // SAFETY: forwarded contract.
        unsafe { strata_central::Central::free_batch(self, class, objs) }
    }
    unsafe fn free_batch_to_spans(&self, class: u8, objs: &[*mut u8]) {
        // SAFETY: forwarded contract.
        unsafe { strata_central::Central::free_to_spans(self, class, objs) }
    }
    #[inline]
    fn pressure_epoch(&self) -> u32 {
        self.pages().pressure_epoch()
    }
    fn thread_exited(&self, live: usize) {
        strata_central::Central::drain_share(self, live);
    }
    fn idle_interval_ms(&self) -> u64 {
        // The page heap's decay pass interval: a quarter of the delay.
        (self.pages().decay_ms() / 4).clamp(1, 1000)
    }
    fn tick(&self) {
        strata_central::Central::tick(self)
    }
    fn class_of_object(&self, obj: *mut u8) -> u8 {
        self.pages().size_class_of(obj as usize)
    }
}

/// Defaults of the registry, for owners that expose configuration.
pub mod registry_defaults {
    /// Default byte budget of one thread's cache.
    pub const MAX_CACHE_BYTES: usize = crate::registry::DEFAULT_MAX_CACHE_BYTES;
    /// Default byte budget of all threads' caches together.
    pub const TOTAL_CACHE_BYTES: usize = crate::registry::DEFAULT_TOTAL_CACHE_BYTES;
}
