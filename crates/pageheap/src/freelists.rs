//! The page heap's free spans, indexed by length.
//!
//! Spans of up to [`MAX_EXACT`] pages sit in one list per exact length, with a
//! bitmap of the non-empty lists so that finding the smallest fitting length
//! is one bit scan. Longer spans share one list searched best-fit (ties go to
//! the lower address, which keeps the heap compact). Clean and dirty spans are
//! kept in separate sets so that a caller wanting zeroed memory can prefer
//! clean spans and everyone else can prefer dirty (already resident) ones.

use crate::span::{Span, SpanList};

/// Longest span kept in an exact-length list.
pub(crate) const MAX_EXACT: usize = 127;

pub(crate) struct FreeLists {
    exact: [SpanList; MAX_EXACT + 1],
    nonempty: u128,
    long: SpanList,
    pub(crate) pages: usize,
    /// Spans in the set (for statistics).
    pub(crate) spans: usize,
}

impl FreeLists {
    pub(crate) const fn new() -> Self {
        FreeLists {
            exact: [const { SpanList::new() }; MAX_EXACT + 1],
            nonempty: 0,
            long: SpanList::new(),
            pages: 0,
            spans: 0,
        }
    }

    /// # Safety
    /// `s` is a valid free span in no list.
    pub(crate) unsafe fn insert(&mut self, s: *mut Span) {
        // SAFETY: caller's contract.
        let n = unsafe { (*s).npages };
        self.pages += n;
        self.spans += 1;
        if n <= MAX_EXACT {
            // SAFETY: s is unlinked.
            unsafe { self.exact[n].push(s) };
            self.nonempty |= 1 << n;
        } else {
            // SAFETY: s is unlinked.
            unsafe { self.long.push(s) };
        }
    }

    /// # Safety
    /// `s` is in this set.
    pub(crate) unsafe fn remove(&mut self, s: *mut Span) {
        // SAFETY: caller's contract.
        let n = unsafe { (*s).npages };
        self.pages -= n;
        self.spans -= 1;
        if n <= MAX_EXACT {
            // SAFETY: s is in this list.
            unsafe { self.exact[n].remove(s) };
            if self.exact[n].is_empty() {
                self.nonempty &= !(1 << n);
            }
        } else {
            // SAFETY: s is in the long list.
            unsafe { self.long.remove(s) };
        }
    }

    /// The smallest span with at least `n` pages, or null.
    pub(crate) fn find(&self, n: usize) -> *mut Span {
        if n <= MAX_EXACT {
            let mask = self.nonempty & !((1u128 << n) - 1);
            if mask != 0 {
                return self.exact[mask.trailing_zeros() as usize].first();
            }
        }
        let mut best: *mut Span = core::ptr::null_mut();
        for s in self.long.iter() {
            // SAFETY: members of the list are valid spans.
            let (len, start) = unsafe { ((*s).npages, (*s).start) };
            if len < n {
                continue;
            }
            // SAFETY: best, when non-null, is a member too.
            let better = best.is_null()
                || unsafe {
                    len < (*best).npages || (len == (*best).npages && start < (*best).start)
                };
            if better {
                best = s;
            }
        }
        best
    }

    /// Calls `f` on every span in the set (the set must not change meanwhile).
    pub(crate) fn for_each(&self, mut f: impl FnMut(*mut Span)) {
        for l in self.exact.iter().chain(core::iter::once(&self.long)) {
            for s in l.iter() {
                f(s);
            }
        }
    }

    /// Calls `f` on spans from the longest list down while it returns true
    /// (the set must not change meanwhile): releases take the largest first,
    /// fewest system calls for the most memory.
    pub(crate) fn for_each_longest_first(&self, mut f: impl FnMut(*mut Span) -> bool) {
        for l in core::iter::once(&self.long).chain(self.exact.iter().rev()) {
            for s in l.iter() {
                if !f(s) {
                    return;
                }
            }
        }
    }
}
