//! The transfer cache of one size class: whole batches of objects on their
//! way between thread caches, kept as the heads of linked lists.
//!
//! When one thread frees a full batch and another needs one (the
//! producer/consumer pattern), the batch moves through here in O(1), without
//! touching a span or the central list's lock.
//!
//! # Invariants
//! - Every entry heads a null-terminated list of exactly `batch` objects
//!   (callers of `free_batch` must terminate their lists).
//! - At most `capacity` entries (sized so a class holds about 1 MiB here).

use core::ptr;

/// Most batches a transfer cache can hold (2 under loom: `crate::sync`).
pub(crate) const MAX_SLOTS: usize = crate::sync::TRANSFER_SLOTS;

pub(crate) struct TransferCache {
    slots: [*mut u8; MAX_SLOTS],
    len: usize,
}

// SAFETY: the cache is only reached under its lock; the pointers are objects
// owned by the allocator.
unsafe impl Send for TransferCache {}

impl TransferCache {
    pub(crate) const fn new() -> Self {
        TransferCache {
            slots: [ptr::null_mut(); MAX_SLOTS],
            len: 0,
        }
    }

    /// Stores a full batch; false if the cache is at `capacity`.
    pub(crate) fn push(&mut self, head: *mut u8, capacity: usize) -> bool {
        if self.len >= capacity.min(MAX_SLOTS) {
            return false;
        }
        self.slots[self.len] = head;
        self.len += 1;
        true
    }

    /// Takes a full batch, or null.
    pub(crate) fn pop(&mut self) -> *mut u8 {
        if self.len == 0 {
            return ptr::null_mut();
        }
        self.len -= 1;
        self.slots[self.len]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}
