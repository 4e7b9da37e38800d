//! Large blocks kept for reuse outside the heap lock.
//!
//! Every large allocation and free takes the heap lock, and carving,
//! filing and merging spans under it is most of what such a call costs.
//! Threads that free blocks of a few hundred KiB and allocate others like
//! them (buffers, vectors grown past the size classes) queue on that lock:
//! four threads replacing blocks of 8 B-1 MiB spent a fifth of their time
//! waiting for it (measurements: docs/performance.md, "Large blocks kept
//! outside the heap lock").
//!
//! So once a thread has had to wait for the lock (noted by
//! `PageHeap::lock_noting`, forgotten at each decay pass), a freed heap
//! block of at most [`KEPT_MAX_PAGES`] pages parks in one of
//! [`KEPT_SLOTS`] slots instead: still in use as far as the heap's lists
//! and counters go, its record filed by one compare-exchange. An
//! allocation that need not be zero and that a parked block fits (as long
//! as asked, or up to an eighth longer) takes it back with another. A
//! zeroed allocation does not: the heap's clean spans serve it without a
//! write. Parked blocks go to the heap at the decay pass after they have
//! been parked for the decay delay, and at once on a release of free
//! memory (an explicit one, or under a memory limit) and at a trim past
//! the dirty cap, so they stay resident no longer than free dirty spans
//! do; and before an allocation that need not be zero would fault in
//! clean pages or grow the heap, parked blocks join the free spans, so
//! such allocations never make the heap larger for them. A program that
//! never waits for the lock never parks: its blocks merge in the heap as
//! before (parking on every free raised a one-thread sweep's peak from 5.2
//! to 8.4 MiB: parked blocks do not merge).
//!
//! # Double frees
//! A record's `kept` flag is set by every free of a heap block, the one
//! that parks it and the one under the lock alike (a swap: the second of
//! two frees finds it set and is refused, wherever the first went) and
//! cleared by the
//! allocation that takes the block back, or under the lock when the heap
//! hands the record out again after a drain ([`crate::heap`]'s
//! `record_in_use`). A drained block keeps its flag while it is free, so a
//! late second free is refused either way: by its state (free) or by the
//! flag.
//!
//! # Invariants
//! - A slot holds 0 or `npages << LEN_SHIFT | record`: the record of a
//!   large block of the heap (not a mapping of its own), in use, `kept`
//!   set, `npages` its length (at most [`KEPT_MAX_PAGES`]), `freed_at`
//!   when it was parked. No record is in two slots.
//! - Only the thread whose compare-exchange emptied a slot owns the block
//!   it held.
//! - The heap's counters count parked blocks as in use;
//!   [`crate::PageHeap::stats`] reports them as free dirty memory.

use strata_base::LockGuard;
use strata_os::Os;

use crate::heap::HeapState;
use crate::span::Span;
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::{PageHeap, PAGE_SHIFT};

/// Slots for parked blocks: one cache line of them (two under loom).
pub(crate) const KEPT_SLOTS: usize = if cfg!(strata_loom) { 2 } else { 8 };

/// The longest block that parks: 1 MiB.
pub(crate) const KEPT_MAX_PAGES: usize = (1 << 20) >> PAGE_SHIFT;

/// Where a slot keeps the block's length; the record's address is below
/// (user-space addresses have 47 bits, 56 with five-level page tables only
/// where a program asks for them).
const LEN_SHIFT: u32 = 48;

const RECORD_MASK: usize = (1 << LEN_SHIFT) - 1;

/// The parked blocks.
pub(crate) struct Kept {
    slots: [AtomicUsize; KEPT_SLOTS],
    /// Nonzero when a thread had to wait for the heap lock since the last
    /// decay pass: frees park only then.
    contended: AtomicU32,
    /// Parked blocks taken back by allocations (for the statistics).
    taken: AtomicU64,
}

impl Kept {
    strata_base::const_unless_loom! {
        pub(crate) fn new() -> Self {
            Kept {
                slots: strata_base::array_unless_loom![AtomicUsize::new(0); KEPT_SLOTS],
                contended: AtomicU32::new(0),
                taken: AtomicU64::new(0),
            }
        }
    }

    /// Parks block `s` of `npages` pages; false if every slot is taken (or
    /// the record's address does not fit a slot).
    ///
    /// # Safety
    /// `s` is a large block of the heap given up by its owner, `kept` set
    /// by the caller, `npages <= KEPT_MAX_PAGES`, and its fields written.
    pub(crate) unsafe fn park(&self, s: *mut Span, npages: usize) -> bool {
        debug_assert!(npages <= KEPT_MAX_PAGES);
        if s as usize & !RECORD_MASK != 0 {
            return false;
        }
        let word = (npages << LEN_SHIFT) | s as usize;
        self.slots.iter().any(|slot| {
            slot.load(Ordering::Relaxed) == 0
                && slot
                    .compare_exchange(0, word, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Takes a parked block of `npages` to `npages + npages / 8` pages for
    /// an allocation.
    pub(crate) fn take(&self, npages: usize) -> Option<*mut Span> {
        let most = npages + npages / 8;
        let s = self.slots.iter().find_map(|slot| {
            let word = slot.load(Ordering::Relaxed);
            let len = word >> LEN_SHIFT;
            let fits = word != 0 && len >= npages && len <= most;
            (fits
                && slot
                    .compare_exchange(word, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok())
            .then_some((word & RECORD_MASK) as *mut Span)
        });
        if s.is_some() {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        s
    }

    /// Parked blocks allocations took back so far.
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Takes every block parked at or before `cutoff` (heap clock, ms)
    /// and hands it to `f`. A block is taken out of its slot before its
    /// time is read (the record is the taker's then); one parked later goes
    /// back to a slot, or to `f` if none is free by then.
    pub(crate) fn take_parked_since(&self, cutoff: u64, mut f: impl FnMut(*mut Span)) {
        for slot in &self.slots {
            let word = slot.load(Ordering::Relaxed);
            if word == 0
                || slot
                    .compare_exchange(word, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let s = (word & RECORD_MASK) as *mut Span;
            // SAFETY: the exchange made the block ours, with the fields its
            // parking free wrote before publishing it.
            let recent = unsafe { (*s).freed_at } > cutoff;
            // SAFETY: still parked as far as its record goes (`kept` set).
            if !(recent && unsafe { self.park(s, word >> LEN_SHIFT) }) {
                f(s);
            }
        }
    }

    /// A thread waited for the heap lock.
    #[inline]
    pub(crate) fn note_contention(&self) {
        if self.contended.load(Ordering::Relaxed) == 0 {
            self.contended.store(1, Ordering::Relaxed);
        }
    }

    /// Whether a thread waited for the heap lock since the last decay pass.
    #[inline]
    pub(crate) fn contended(&self) -> bool {
        self.contended.load(Ordering::Relaxed) != 0
    }

    /// A decay pass: frees park again only once the lock is waited for
    /// again.
    pub(crate) fn forget_contention(&self) {
        self.contended.store(0, Ordering::Relaxed);
    }

    /// Whether any block is parked (a snapshot).
    pub(crate) fn any(&self) -> bool {
        self.slots
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) != 0)
    }

    /// Pages parked now (a snapshot).
    pub(crate) fn pages(&self) -> usize {
        self.slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed) >> LEN_SHIFT)
            .sum()
    }
}

impl<O: Os> PageHeap<O> {
    /// Takes the heap lock, noting in [`crate::kept::Kept`] when it had to
    /// wait for it: large blocks then park for reuse outside it.
    #[inline]
    pub(crate) fn lock_noting(&self) -> LockGuard<'_, HeapState> {
        match self.state.try_lock() {
            Some(st) => st,
            None => {
                self.kept.note_contention();
                self.state.lock()
            }
        }
    }

    /// Gives the blocks parked at or before `cutoff` (heap clock, ms) to
    /// the free spans (their `kept` flags stay set until their records are
    /// handed out again).
    pub(crate) fn unpark_since(&self, cutoff: u64) {
        self.kept.take_parked_since(cutoff, |s| {
            let mut st = self.state.lock();
            // SAFETY: a parked block, ours now that its slot is empty.
            unsafe { self.free_unparked_locked(&mut st, s) }
        });
    }

    /// Gives parked block `s` to the free spans.
    ///
    /// # Safety
    /// `s` was parked, and the caller emptied its slot; `st` is the locked
    /// heap state.
    unsafe fn free_unparked_locked(&self, st: &mut HeapState, s: *mut Span) {
        // SAFETY: an in-use heap block, ours.
        unsafe {
            st.counters.in_use -= (*s).npages;
            st.counters.large_in_use -= (*s).npages;
        }
        self.free_locked(st, s);
    }

    /// Before an allocation of `want` pages that need not be zero faults
    /// in clean pages or grows the heap (no dirty span fits it), the parked
    /// blocks join the free spans and merge there.
    pub(crate) fn unpark_if_short(&self, st: &mut HeapState, want: usize) {
        if self.kept.any() && st.dirty.find(want).is_null() {
            self.kept.take_parked_since(u64::MAX, |k| {
                // SAFETY: a parked block, ours now that its slot is empty;
                // the lock is held.
                unsafe { self.free_unparked_locked(st, k) }
            });
        }
    }
}
