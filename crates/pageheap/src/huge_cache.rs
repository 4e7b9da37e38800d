//! The huge cache: freed mappings of their own (huge blocks, and blocks
//! grown past [`crate::MOVE_MIN`]) kept for reuse instead of unmapped.
//!
//! A program that allocates and frees the same big buffer over and over
//! would otherwise map, fault in, and unmap it every time. A kept mapping is
//! handed to the next request it can serve, resized with `mremap` if its
//! length differs; it goes back to the OS when it has been idle for the
//! decay delay, when more than [`HUGE_CACHE_MAX`] are kept, or on an
//! explicit release.
//!
//! A plain structure under the heap lock: it files and picks records and
//! makes no system call; what it evicts is handed back to be unmapped
//! outside the lock.
//!
//! # Invariants
//! - Every record in the cache is a whole mapping (`own_mapping`), `Free`
//!   and dirty, with the time it was freed; `pages` is the sum of their
//!   lengths.
//! - The list runs from the most recently freed to the oldest, and holds
//!   at most [`HUGE_CACHE_MAX`] records.
//! - A record taken out is `Releasing`: the caller owns it.

use crate::span::{Span, SpanList, SpanState};

/// Freed mappings kept for reuse at most.
pub(crate) const HUGE_CACHE_MAX: usize = 4;

/// The kept mappings, most recently freed first.
pub(crate) struct HugeCache {
    list: SpanList,
    /// Pages in the kept mappings.
    pages: usize,
}

impl HugeCache {
    pub(crate) const fn new() -> Self {
        HugeCache {
            list: SpanList::new(),
            pages: 0,
        }
    }

    /// Pages kept.
    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// Mappings kept.
    #[cfg(all(test, not(strata_loom)))]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Keeps freed mapping `s`, freed at `now`; returns the oldest ones it
    /// pushed out (at most one), `Releasing`, to be unmapped by the caller.
    ///
    /// # Safety
    /// `s` is a whole mapping's record in no list, given up by its owner.
    pub(crate) unsafe fn keep(&mut self, s: *mut Span, now: u64) -> SpanList {
        // SAFETY: caller's contract.
        unsafe {
            debug_assert!((*s).own_mapping, "a heap span in the huge cache");
            (*s).set_state(SpanState::Free);
            (*s).clean = false;
            (*s).freed_at = now;
            self.pages += (*s).npages;
            self.list.push(s);
        }
        let mut evicted = SpanList::new();
        while self.list.len() > HUGE_CACHE_MAX {
            // The oldest is last.
            let Some(oldest) = self.list.iter().last() else {
                break;
            };
            // SAFETY: `oldest` is in the cache.
            unsafe { evicted.push(self.take(oldest)) };
        }
        evicted
    }

    /// The most recently freed mapping that can serve `len` bytes aligned
    /// to `align`, taken out (`Releasing`). A plain request takes any
    /// aligned one (a remap fits it to the length); a zeroed request only
    /// one at least `len` long: growing a smaller one would leave the old
    /// part to clear where a fresh mapping reads as zero for free, and its
    /// page tables would make every later drop of the whole block walk them
    /// (measurements: docs/performance.md, "Page heap: the arena test,
    /// large and huge blocks").
    pub(crate) fn take_fit(&mut self, len: usize, align: usize, zero: bool) -> Option<*mut Span> {
        let found = self.list.iter().find(|&c| {
            // SAFETY: members of the cache are valid records.
            unsafe { (*c).start_addr() % align == 0 && (!zero || (*c).len_bytes() >= len) }
        })?;
        // SAFETY: `found` is in the cache.
        Some(unsafe { self.take(found) })
    }

    /// Takes out every mapping freed at or before `cutoff` (`Releasing`),
    /// to be unmapped by the caller.
    pub(crate) fn take_idle(&mut self, cutoff: u64) -> SpanList {
        let mut out = SpanList::new();
        // SAFETY: members of the cache are valid records.
        while let Some(c) = self
            .list
            .iter()
            .find(|&c| unsafe { (*c).freed_at } <= cutoff)
        {
            // SAFETY: `c` is in the cache.
            unsafe { out.push(self.take(c)) };
        }
        out
    }

    /// # Safety
    /// `c` is in the cache.
    unsafe fn take(&mut self, c: *mut Span) -> *mut Span {
        // SAFETY: caller's contract.
        unsafe {
            debug_assert_eq!((*c).state, SpanState::Free);
            self.list.remove(c);
            self.pages -= (*c).npages;
            (*c).set_state(SpanState::Releasing);
        }
        c
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;
    use crate::{PAGE_SHIFT, PAGE_SIZE};

    /// A record for a mapping of `npages` at address `addr`.
    fn mapping(addr: usize, npages: usize) -> Box<Span> {
        let mut s = Box::new(Span::new(
            addr >> PAGE_SHIFT,
            npages,
            SpanState::InUse,
            true,
        ));
        s.own_mapping = true;
        s
    }

    #[test]
    fn keeps_the_newest_and_evicts_the_oldest() {
        let mut cache = HugeCache::new();
        let mut recs: Vec<Box<Span>> = (0..6).map(|i| mapping((i + 1) << 30, 10 + i)).collect();
        let mut evicted = Vec::new();
        for (t, r) in recs.iter_mut().enumerate() {
            // SAFETY: a record in no list, given up.
            let mut out = unsafe { cache.keep(&mut **r, t as u64) };
            while !out.is_empty() {
                let e = out.first();
                // SAFETY: in the local list.
                unsafe { out.remove(e) };
                evicted.push(e);
            }
        }
        assert_eq!(cache.len(), HUGE_CACHE_MAX);
        // The two oldest went, in order.
        assert_eq!(
            evicted,
            [&mut *recs[0] as *mut Span, &mut *recs[1] as *mut Span]
        );
        assert!(evicted
            .iter()
            .all(|&e| unsafe { (*e).state } == SpanState::Releasing));
        assert_eq!(cache.pages(), 12 + 13 + 14 + 15);
        // Kept ones are free and dirty, with their time.
        assert!(recs[2..]
            .iter()
            .all(|r| r.state == SpanState::Free && !r.clean));
        assert_eq!(recs[5].freed_at, 5);
    }

    #[test]
    fn a_fit_is_the_newest_aligned_one_and_zeroed_requests_never_grow_one() {
        let mut cache = HugeCache::new();
        let mut small = mapping(3 << 21, 8); // 2 MiB aligned, 64 KiB
        let mut big = mapping(1 << 30, 64); // 1 GiB aligned, 512 KiB
                                            // SAFETY: records in no list.
        unsafe {
            assert!(cache.keep(&mut *big, 1).is_empty());
            assert!(cache.keep(&mut *small, 2).is_empty());
        }
        // A plain request takes the newest aligned one, whatever its length.
        let want = 40 * PAGE_SIZE;
        assert_eq!(
            cache.take_fit(want, 1 << 21, false),
            Some(&mut *small as *mut Span)
        );
        assert_eq!(small.state, SpanState::Releasing);
        // SAFETY: back in, given up again.
        unsafe { assert!(cache.keep(&mut *small, 3).is_empty()) };
        // A zeroed request skips the one that is too short.
        assert_eq!(
            cache.take_fit(want, 1 << 21, true),
            Some(&mut *big as *mut Span)
        );
        // Nothing aligned to 1 GiB is left.
        assert_eq!(cache.take_fit(PAGE_SIZE, 1 << 30, false), None);
        assert_eq!(cache.pages(), 8);
    }

    #[test]
    fn idle_mappings_are_taken_by_age() {
        let mut cache = HugeCache::new();
        let mut recs: Vec<Box<Span>> = (0..3).map(|i| mapping((i + 1) << 30, 4)).collect();
        for (t, r) in recs.iter_mut().enumerate() {
            // SAFETY: records in no list.
            unsafe { assert!(cache.keep(&mut **r, 100 * t as u64).is_empty()) };
        }
        assert_eq!(cache.take_idle(50).len(), 1);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.take_idle(u64::MAX).len(), 2);
        assert_eq!((cache.len(), cache.pages()), (0, 0));
    }
}
