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
//! # The first batches share pages with other classes
//! A class's first [`FIRST`] pointers (two batches of 32) live in its slice
//! of one table shared by all classes (`Central::first_table`: 512 bytes a
//! class, eight to a page); a table of its own, with room for its capacity,
//! is mapped only when more are parked at once. Every table is touched from
//! its first page, so with a table per class from the first batch, each
//! class a program used cost a resident page (4 KiB) for a few hundred bytes
//! of pointers (measured: 25 tables, 132 KiB resident, in a two-thread
//! larson-like run whose whole heap is 1.9 MiB). Kept in the cache itself,
//! next to the lock, the first slices made the allocator's static 50 KiB
//! larger; that static is in `.data` (it holds non-zero defaults and
//! padding), whose pages the kernel maps 16 at a time on a read fault:
//! that cost as much as it saved.
//!
//! # Invariants
//! - `slots[..len]` are the parked objects, free objects of the class; `len`
//!   is a multiple of the class's batch size and at most
//!   `room(capacity, batch)`, and `len <= cap`.
//! - `cap` is 0 with `slots` null until the first batch is parked; then
//!   `FIRST` (the class's slice of the shared table), and once more are
//!   parked at once, `room(capacity, batch)` (its own table, mapped once
//!   for the life of the process: address space, touched as it fills). The
//!   shared slice is not used again after the move.

use core::ptr::{self, NonNull};

/// Most batches a transfer cache can hold (2 under loom: `crate::sync`).
pub(crate) const MAX_SLOTS: usize = crate::sync::TRANSFER_SLOTS;

/// Most objects in a batch of any class (checked by the size-class tests).
pub(crate) const MAX_BATCH: usize = 32;

/// Pointers a class keeps in its slice of the shared first table: two
/// batches of the largest size (eight under loom, so that the models move
/// to tables of their own too).
pub(crate) const FIRST: usize = if cfg!(strata_loom) { 8 } else { 2 * MAX_BATCH };

pub(crate) struct TransferCache {
    slots: *mut *mut u8,
    /// Objects held (a multiple of the batch size).
    len: usize,
    /// Room in `slots`: 0, `FIRST` or the class's room.
    cap: usize,
    /// The fewest objects held since the last idle pass: that many sat
    /// unused the whole time ([`TransferCache::take_idle`]).
    low_water: usize,
}

// SAFETY: the cache is only reached under its lock; the pointers are objects
// owned by the allocator and a table mapped for this cache alone.
unsafe impl Send for TransferCache {}

impl TransferCache {
    pub(crate) const fn new() -> Self {
        TransferCache {
            slots: ptr::null_mut(),
            len: 0,
            cap: 0,
            low_water: 0,
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
    /// the cache holds `capacity` batches already, or needs a table and got
    /// none: `first` gives the class's slice of the shared table (`FIRST`
    /// pointers), `map` a table of its own (asked for
    /// [`TransferCache::table_bytes`]).
    pub(crate) fn push(
        &mut self,
        objs: &[*mut u8],
        capacity: usize,
        first: impl FnOnce() -> Option<NonNull<*mut u8>>,
        map: impl FnOnce(usize) -> Option<NonNull<u8>>,
    ) -> bool {
        let batch = objs.len();
        debug_assert!(
            batch > 0 && self.len % batch == 0,
            "a transfer cache holds whole batches"
        );
        let room = Self::room(capacity, batch);
        if self.len + batch > room {
            return false;
        }
        if self.len + batch > self.cap {
            let shared = if self.cap == 0 && batch <= FIRST {
                first()
            } else {
                None
            };
            if let Some(t) = shared {
                self.slots = t.as_ptr();
                self.cap = FIRST;
            } else {
                let Some(t) = map(Self::table_bytes(capacity, batch)) else {
                    return false;
                };
                let table = t.as_ptr() as *mut *mut u8;
                if self.len > 0 {
                    // SAFETY: `slots[..len]` hold the parked pointers; the
                    // new table has room for `room >= len` and is another
                    // mapping.
                    unsafe { ptr::copy_nonoverlapping(self.slots, table, self.len) };
                }
                self.slots = table;
                self.cap = room;
            }
        }
        // SAFETY: `slots` has room for `cap >= len + batch` pointers (the
        // shared slice is taken only when a batch fits, and an own table
        // holds `room`); `objs` is a separate slice.
        unsafe { ptr::copy_nonoverlapping(objs.as_ptr(), self.slots.add(self.len), batch) };
        self.len += batch;
        debug_assert!(self.len <= self.cap && self.len <= room);
        true
    }

    /// Takes the last batch parked into `out` (`out.len()` is the class's
    /// batch size); false if there is none.
    pub(crate) fn pop(&mut self, out: &mut [*mut u8]) -> bool {
        let batch = out.len();
        debug_assert!(
            batch > 0 && self.len % batch == 0,
            "a transfer cache holds whole batches"
        );
        if self.len < batch {
            return false;
        }
        self.len -= batch;
        self.low_water = self.low_water.min(self.len);
        // SAFETY: `slots[len..len + batch]` hold a parked batch; `out` is a
        // separate slice of that length.
        unsafe { ptr::copy_nonoverlapping(self.slots.add(self.len), out.as_mut_ptr(), batch) };
        true
    }

    /// Whether `obj` is parked here (a linear search: for the check of a
    /// suspected double free only).
    pub(crate) fn holds(&self, obj: *mut u8) -> bool {
        // SAFETY: `slots[..len]` are initialised entries of the table.
        (0..self.len).any(|i| unsafe { *self.slots.add(i) } == obj)
    }

    /// Objects parked.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Batches (of `batch` objects) that sat unused since the last call,
    /// and starts the next period: the caller pops that many and gives them
    /// back to their spans.
    pub(crate) fn take_idle(&mut self, batch: usize) -> usize {
        let idle = self.low_water.min(self.len) / batch.max(1);
        self.low_water = self.len - idle * batch;
        idle
    }
}
