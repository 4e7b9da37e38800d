//! What a cache holds, read without changing it: by its own thread (for
//! its slow paths, and to confirm a suspected double free) or by any
//! thread, for statistics.
//!
//! # Invariants
//! - A list's length is written only by the cache's own thread, and only
//!   as a relaxed atomic store (`FreeList::store_len`); so another
//!   thread may read it as an atomic at any time ([`ThreadCache::held_bytes`])
//!   and sees every cache as it holds now, not as it last reported.
//! - The class count and the object sizes are written before a cache is
//!   registered and never again.

use core::ptr;

use super::ThreadCache;
use crate::sync::statics::{AtomicU32, Ordering};

impl ThreadCache {
    /// Whether `obj` is among the free objects of `class` held here (a
    /// linear search of the list: for confirming a suspected double free).
    pub fn holds(&self, obj: *mut u8, class: u8) -> bool {
        let l = &self.lists[class as usize];
        // SAFETY: `slots[..len]` are the list's entries (none in a
        // sentinel, whose `len` is 0).
        (0..l.len as usize).any(|i| unsafe { *l.slots.add(i) } == obj)
    }

    /// Where a class's stack is and how much room it has (tests; the loom
    /// build runs only the models).
    #[cfg(all(test, not(strata_loom)))]
    pub(crate) fn stack_of(&self, class: u8) -> (usize, u32) {
        let l = &self.lists[class as usize];
        (l.slots as usize, l.cap)
    }

    /// Bytes held in this cache (computed: a slow call).
    pub fn size(&self) -> usize {
        // SAFETY: a cache we hold a reference to: initialised and live.
        unsafe { Self::held_bytes(self) }
    }

    /// Objects list `k` of the cache `c` holds now, read from any thread:
    /// the length as its owner last stored it.
    ///
    /// # Safety
    /// `c` is an initialised cache record that stays allocated during the
    /// call (a cache in the registry's lists, read under its lock), and
    /// `k < MAX_CLASSES`.
    unsafe fn len_now(c: *const ThreadCache, k: usize) -> usize {
        // SAFETY: caller's contract; the length is read as the atomic its
        // owner stores (`FreeList::store_len`).
        unsafe {
            let len = ptr::addr_of!((*c).lists[k].len) as *mut u32;
            AtomicU32::from_ptr(len).load(Ordering::Relaxed) as usize
        }
    }

    /// Bytes held in the cache `c` now, read from any thread (a snapshot
    /// taken list by list while the owner may be working).
    ///
    /// # Safety
    /// As for [`ThreadCache::len_now`].
    pub(crate) unsafe fn held_bytes(c: *const ThreadCache) -> usize {
        // SAFETY: caller's contract; `nclasses` and the object sizes are
        // set before the cache is registered and never written again.
        unsafe {
            (1..(*c).nclasses)
                .map(|k| Self::len_now(c, k) * (*c).info[k].object_size as usize)
                .sum()
        }
    }

    /// Adds the objects the cache `c` holds now, class by class, into
    /// `out[class]` (classes past `out` are left out).
    ///
    /// # Safety
    /// As for [`ThreadCache::len_now`].
    pub(crate) unsafe fn add_held_objects(c: *const ThreadCache, out: &mut [usize]) {
        // SAFETY: caller's contract; `nclasses` is set before the cache is
        // registered and never written again.
        unsafe {
            for (k, n) in out.iter_mut().enumerate().take((*c).nclasses).skip(1) {
                *n += Self::len_now(c, k);
            }
        }
    }

    /// Makes list `class` of `c` count `len` objects it does not hold, for
    /// the registry's models of statistics: the cache must be dropped
    /// without a flush.
    ///
    /// # Safety
    /// `c` is an initialised cache no thread uses.
    #[cfg(all(test, strata_loom))]
    pub(crate) unsafe fn pretend_held(c: *mut ThreadCache, class: usize, len: u32) {
        // SAFETY: caller's contract.
        unsafe { super::FreeList::store_len(ptr::addr_of_mut!((*c).lists[class]), len) }
    }

    /// Bytes this cache may hold at most with its present list maxima.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Objects held for `class`.
    pub fn len(&self, class: u8) -> usize {
        self.lists[class as usize].len as usize
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.lists[..self.nclasses].iter().all(|l| l.len == 0)
    }
}
