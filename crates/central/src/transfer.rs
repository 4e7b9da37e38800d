//! The transfer cache of one size class: whole batches of objects on their
//! way between thread caches, kept as an array of pointers.
//!
//! When one thread frees a full batch and another needs one (the
//! producer/consumer pattern), the batch moves through here in O(1), without
//! touching a span or the central list's lock.
//!
//! # Pointers, not lists linked through the objects
//! A batch is copied in and out as pointers; nothing here reads or writes an
//! object. With batches linked through their objects (the first version),
//! the thread that took a batch walked it, one dependent cache miss per
//! object, and those lines were usually modified in the cache of the core
//! that freed them: a producer/consumer pair spent most of its time there.
//! Now an object's lines move only when the program touches it.
//!
//! # Invariants
//! - `slots[..len]` are free objects of the class; `len` is a multiple of
//!   the class's batch size and at most `capacity * batch`.
//! - `slots` is null until the first batch is parked; then it points to
//!   room for `capacity * batch` pointers, mapped once for the life of the
//!   process (address space, touched as it fills).

use core::ptr::{self, NonNull};

/// Most batches a transfer cache can hold (2 under loom: `crate::sync`).
pub(crate) const MAX_SLOTS: usize = crate::sync::TRANSFER_SLOTS;

/// Most objects in a batch of any class (checked by the size-class tests).
pub(crate) const MAX_BATCH: usize = 32;

pub(crate) struct TransferCache {
    slots: *mut *mut u8,
    /// Objects held (a multiple of the batch size).
    len: usize,
}

// SAFETY: the cache is only reached under its lock; the pointers are objects
// owned by the allocator and a table mapped for this cache alone.
unsafe impl Send for TransferCache {}

impl TransferCache {
    pub(crate) const fn new() -> Self {
        TransferCache {
            slots: ptr::null_mut(),
            len: 0,
        }
    }

    /// Objects the table holds for `capacity` batches of `batch` objects.
    fn room(capacity: usize, batch: usize) -> usize {
        capacity.min(MAX_SLOTS) * batch
    }

    /// Bytes of the table for `capacity` batches of `batch` objects.
    fn table_bytes(capacity: usize, batch: usize) -> usize {
        Self::room(capacity, batch) * core::mem::size_of::<*mut u8>()
    }

    /// Parks a full batch (`objs.len()` is the class's batch size); false if
    /// the cache holds `capacity` batches already, or has no table and
    /// `map` (asked for [`TransferCache::table_bytes`]) gave none.
    pub(crate) fn push(
        &mut self,
        objs: &[*mut u8],
        capacity: usize,
        map: impl FnOnce(usize) -> Option<NonNull<u8>>,
    ) -> bool {
        let batch = objs.len();
        let room = Self::room(capacity, batch);
        if self.len + batch > room {
            return false;
        }
        if self.slots.is_null() {
            match map(Self::table_bytes(capacity, batch)) {
                Some(t) => self.slots = t.as_ptr() as *mut *mut u8,
                None => return false,
            }
        }
        // SAFETY: the table has room for `room` pointers and len + batch <=
        // room; `objs` is a separate slice.
        unsafe { ptr::copy_nonoverlapping(objs.as_ptr(), self.slots.add(self.len), batch) };
        self.len += batch;
        true
    }

    /// Takes the last batch parked into `out` (`out.len()` is the class's
    /// batch size); false if there is none.
    pub(crate) fn pop(&mut self, out: &mut [*mut u8]) -> bool {
        let batch = out.len();
        if self.len < batch {
            return false;
        }
        self.len -= batch;
        // SAFETY: `slots[len..len + batch]` hold a parked batch; `out` is a
        // separate slice of that length.
        unsafe { ptr::copy_nonoverlapping(self.slots.add(self.len), out.as_mut_ptr(), batch) };
        true
    }

    /// Objects parked.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}
