//! Caches exited threads left for the next threads to start.
//!
//! A thread's key destructor hands its cache to [`ThreadCaches::retire`]:
//! a cache that holds no more than a new cache's starting budget is kept
//! whole, objects and all (`ThreadCache::retire`), and the next thread to
//! create a cache adopts the one kept last, whose objects the exited
//! thread touched last. Anything else is flushed as before. Why, and what
//! an adopted list does first: the `cache::retire` module.
//!
//! # Bounds
//! - At most [`MAX_RETIRED`] caches are kept, each holding at most the
//!   floor of the budget (128 KiB by default): 512 KiB in all. The oldest
//!   goes back when a fifth arrives.
//! - A kept cache that no thread took within the backend's idle interval
//!   goes back at the next thread exit, at a live cache's idle pass, or at
//!   the owner's own beat ([`ThreadCaches::reap_retired`]);
//!   [`ThreadCaches::release_retired`] gives them all back at once (the
//!   owner's "release free memory").
//!
//! # Invariants
//! - A retired cache is in the registry's `retired` list and in no other,
//!   belongs to no thread and draws no budget; it leaves the list under
//!   the list's lock, to be adopted or flushed by exactly one thread.
//! - Flushes and record frees happen outside the list's lock (a flush
//!   takes the central layer's locks).

use core::ptr::{self, NonNull};

use strata_os::Os;

use crate::budget::MIN_CACHE_BYTES;
use crate::cache::ThreadCache;
use crate::registry::ThreadCaches;
use crate::{Backend, Hooks};

/// Caches kept for the threads to come. mleak (8 threads started at a
/// time, on 2 cores) took the same CPU time keeping 2, 4 or 8, and its
/// peak grew with each (about 64 KiB a cache): 4 leaves room for a few
/// more cores (measured with a variant that also skipped the exit's
/// drain: docs/performance.md, "Threads that come and go").
pub(crate) const MAX_RETIRED: usize = 4;

impl<B: Backend, H: Hooks> ThreadCaches<B, H> {
    /// The cache of a thread that is exiting (its slot already says
    /// destroyed): kept for the next thread if it is small enough, else
    /// flushed and its record freed; either way out of the live list.
    ///
    /// # Safety
    /// `c` is a live cache of this registry whose thread uses it no more.
    pub(crate) unsafe fn retire(&self, c: *mut ThreadCache) {
        let keep = MIN_CACHE_BYTES.min(self.budget.fair());
        // SAFETY: caller's contract: nobody else touches the cache.
        let kept = unsafe { (*c).retire(&self.backend, keep) };
        let mut evicted = ptr::null_mut();
        {
            let mut list = self.list.lock();
            // SAFETY: a live cache is in the live list (caller's contract).
            unsafe { list.remove(c) };
            if kept {
                // SAFETY: `c` is in no list now.
                unsafe { list.retired.push(c) };
                if list.retired.len() > MAX_RETIRED {
                    evicted = list.retired.iter().last().unwrap_or(ptr::null_mut());
                    // SAFETY: the last of the retired list is in it.
                    unsafe { list.retired.remove(evicted) };
                }
            }
        }
        self.update_budget_now();
        if !kept {
            // SAFETY: flushed, unlinked, used by nobody.
            unsafe { self.records.free(NonNull::new_unchecked(c)) };
        }
        // SAFETY: taken out of the retired list above.
        unsafe { self.give_back(evicted) };
        self.reap_retired();
    }

    /// The cache kept last, taken out of the retired list (the caller
    /// adopts it), if any.
    pub(crate) fn take_retired(&self) -> Option<NonNull<ThreadCache>> {
        let mut list = self.list.lock();
        let c = NonNull::new(list.retired.first())?;
        // SAFETY: the first of the retired list is in it.
        unsafe { list.retired.remove(c.as_ptr()) };
        Some(c)
    }

    /// Gives back the retired caches no thread took within the backend's
    /// idle interval. Live caches call it at their idle passes; an owner
    /// with a thread of its own for idle memory calls it on that beat, so
    /// that kept caches go back even in a program that makes no call.
    pub fn reap_retired(&self) {
        let now = self.backend.os().now_ms();
        let interval = self.backend.idle_interval_ms();
        loop {
            let stale = {
                let mut list = self.list.lock();
                let Some(oldest) = list.retired.iter().last() else {
                    return;
                };
                // SAFETY: a retired cache is a whole record.
                if now.saturating_sub(unsafe { (*oldest).retired_at() }) < interval {
                    return;
                }
                // SAFETY: the last of the retired list is in it.
                unsafe { list.retired.remove(oldest) };
                oldest
            };
            // SAFETY: taken out of the retired list just now.
            unsafe { self.give_back(stale) };
        }
    }

    /// Gives back every retired cache (their objects to the backend, their
    /// records to the pool). Returns how many there were.
    pub fn release_retired(&self) -> usize {
        let mut n = 0;
        while let Some(c) = self.take_retired() {
            // SAFETY: taken out of the retired list just now.
            unsafe { self.give_back(c.as_ptr()) };
            n += 1;
        }
        n
    }

    /// Flushes a retired cache and frees its record (nothing for null).
    ///
    /// # Safety
    /// `c` is null or a retired cache taken out of the retired list.
    unsafe fn give_back(&self, c: *mut ThreadCache) {
        if let Some(rec) = NonNull::new(c) {
            // SAFETY: caller's contract: a whole cache only we hold now;
            // its budget went back when it was retired.
            unsafe {
                (*c).flush(&self.backend);
                self.records.free(rec);
            }
        }
    }
}
