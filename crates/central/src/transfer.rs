//! The transfer cache of one size class: batches of objects on their way
//! between thread caches, kept as an array of pointers.
//!
//! When one thread frees a batch and another needs one (the
//! producer/consumer pattern), the batch moves through here in O(1), without
//! touching a span or the central list's lock.
//!
//! # Pointers, not lists linked through the objects
//! A batch is copied in and out as pointers; nothing here reads or writes an
//! object, so an object's cache lines move between cores only when the
//! program touches it, not each time its batch changes hands (measurements:
//! docs/performance.md, "Transfer caches").
//!
//! # The first batches share pages with other classes
//! A class's first [`FIRST`] pointers (two batches of 32) live in its slice
//! of one table shared by all classes (512 bytes a class, eight to a page),
//! the next, up to [`SECOND`] (eight batches), in its slice of a second
//! shared table (2 KiB a class, two to a page); a table of its own, with
//! room for its capacity, is mapped only when more are parked at once.
//! Every table is touched from its first page, so a table per class costs
//! each class a program uses a resident page for a few hundred bytes of
//! pointers, and a small program that frees all it holds at its end parks
//! a few hundred objects in each class it used; kept in the cache itself,
//! next to the lock, the first slices would enlarge the allocator's
//! static, whose `.data` pages the kernel maps 16 at a time (measurements:
//! docs/performance.md, "Transfer caches").
//!
//! # Growing on demand
//! A cache that is full grows into its next table only once a push found
//! it full and objects were taken from it after: a class whose parked
//! objects are wanted again. The batches a program frees at its end (or
//! any phase that frees what nobody allocates again) go to their spans
//! instead of touching new table pages: a small program that frees its
//! 4,000 objects before it exits peaked 60 KiB lower (measurements:
//! docs/performance.md, "Memory that follows the live heap").
//!
//! # Part batches
//! A thread cache gives back a whole batch when one of its lists overflows
//! past a batch, and fewer objects when the list is shorter than a batch:
//! a thread that started lately (its lists grow a step at a time) or that
//! uses a class little. Parked, those objects go on to the next thread that
//! asks; sent to their spans, each would be linked into its span there and
//! carved out again by the next refill, at a pagemap lookup and a few span
//! updates apiece (measurements: docs/performance.md, "Transfer caches").
//! So a push parks up to a batch, a take takes up to a batch from the top,
//! and whole batches and parts mix freely.
//!
//! # Invariants
//! - `slots[..len]` are the parked objects, free objects of the class; `len`
//!   is at most `room(capacity, batch)`, and `len <= cap`.
//! - `room(capacity, batch)` is a whole number of batches, but `len` is not
//!   a multiple of the batch: parts are parked and taken as they come, so
//!   no batch boundary is kept inside the table.
//! - `cap` is 0 with `slots` null until the first batch is parked; then
//!   one of [`TIERS`] (the class's slice of a shared table), and once more
//!   are parked at once than the last tier holds, `room(capacity, batch)`
//!   (its own table, mapped once for the life of the process: address
//!   space, touched as it fills). `cap` only grows: a slice is not used
//!   again after the class moves up.
//! - `cap` grows past a nonzero value only when `wanted`: since it last
//!   grew, a push found it full (`was_full`) and a pop took objects after
//!   that. Both are cleared when it grows.

use core::ptr::{self, NonNull};

/// Most batches a transfer cache can hold (2 under loom: `crate::sync`).
pub(crate) const MAX_SLOTS: usize = crate::sync::TRANSFER_SLOTS;

/// Most objects in a batch of any class (checked by the size-class tests).
pub(crate) const MAX_BATCH: usize = 32;

/// Pointers a class keeps in its slice of the shared first table: two
/// batches of the largest size (eight under loom, so that the models move
/// to tables of their own too).
pub(crate) const FIRST: usize = if cfg!(strata_loom) { 8 } else { 2 * MAX_BATCH };

/// Pointers a class keeps in its slice of the shared second table: eight
/// batches of the largest size, a quarter of a 4 KiB page (the same as
/// `FIRST` under loom, where the tier is skipped).
pub(crate) const SECOND: usize = if cfg!(strata_loom) {
    FIRST
} else {
    8 * MAX_BATCH
};

/// The shared tables' slices, smallest first: a class moves up a tier (to
/// its slice in the next shared table) while its objects fit there, and to
/// a table of its own after the last.
pub(crate) const TIERS: [usize; 2] = [FIRST, SECOND];

pub(crate) struct TransferCache {
    slots: *mut *mut u8,
    /// Objects held.
    len: usize,
    /// Room in `slots`: 0, a tier's slice (`FIRST`, `SECOND`) or the
    /// class's room.
    cap: usize,
    /// The fewest objects held since the last idle pass: that many sat
    /// unused the whole time ([`TransferCache::take_idle`]).
    low_water: usize,
    /// A push found the table full since it last grew.
    was_full: bool,
    /// ... and objects were taken after that: the table may grow.
    wanted: bool,
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
            was_full: false,
            wanted: false,
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

    /// Parks a batch or part of one (`objs.len()` at most the class's
    /// batch size, `batch`); false if it does not fit in `capacity`
    /// batches, or needs a table and got none: `shared(tier)` gives the
    /// class's slice of a shared table (`TIERS[tier]` pointers), `map` a
    /// table of its own (asked for [`TransferCache::table_bytes`]).
    pub(crate) fn push(
        &mut self,
        objs: &[*mut u8],
        batch: usize,
        capacity: usize,
        shared: impl Fn(usize) -> Option<NonNull<*mut u8>>,
        map: impl FnOnce(usize) -> Option<NonNull<u8>>,
    ) -> bool {
        let k = objs.len();
        debug_assert!(k > 0 && k <= batch, "more than a batch parked at once");
        let room = Self::room(capacity, batch);
        debug_assert_eq!(room % batch, 0, "a table holds whole batches");
        if self.len + k > room {
            return false;
        }
        if self.len + k > self.cap {
            if self.cap > 0 && !self.wanted {
                // Full, and nobody took from it since it last was: the
                // objects go to their spans, no table grows.
                self.was_full = true;
                return false;
            }
            // The smallest tier above this one that the objects fit in.
            let tier = (0..TIERS.len())
                .find(|&t| TIERS[t] > self.cap && self.len + k <= TIERS[t])
                .and_then(|t| Some((shared(t)?, TIERS[t])));
            let (table, cap) = match tier {
                Some(slice) => slice,
                None => {
                    let Some(t) = map(Self::table_bytes(capacity, batch)) else {
                        return false;
                    };
                    (t.cast::<*mut u8>(), room)
                }
            };
            if self.len > 0 {
                // SAFETY: `slots[..len]` hold the parked pointers; the new
                // table has room for `cap >= len + k` and is another slice
                // or mapping.
                unsafe { ptr::copy_nonoverlapping(self.slots, table.as_ptr(), self.len) };
            }
            self.slots = table.as_ptr();
            self.cap = cap;
            self.was_full = false;
            self.wanted = false;
        }
        // SAFETY: `slots` has room for `cap >= len + k` pointers (a shared
        // slice is taken only when the objects fit, and an own table holds
        // `room`); `objs` is a separate slice.
        unsafe { ptr::copy_nonoverlapping(objs.as_ptr(), self.slots.add(self.len), k) };
        self.len += k;
        debug_assert!(self.len <= self.cap && self.len <= room);
        true
    }

    /// Takes the objects parked last into `out`: as many as it holds, or
    /// all that are parked if fewer. Returns the count (0: none parked).
    pub(crate) fn pop(&mut self, out: &mut [*mut u8]) -> usize {
        let k = out.len().min(self.len);
        self.wanted |= self.was_full && k > 0;
        self.len -= k;
        self.low_water = self.low_water.min(self.len);
        // SAFETY: `slots[len..len + k]` hold parked objects; `out` is a
        // separate slice of at least that length.
        unsafe { ptr::copy_nonoverlapping(self.slots.add(self.len), out.as_mut_ptr(), k) };
        k
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

    /// Objects that sat unused since the last call, and starts the next
    /// period: the caller pops that many and gives them back to their
    /// spans.
    pub(crate) fn take_idle(&mut self) -> usize {
        let idle = self.low_water.min(self.len);
        self.low_water = self.len - idle;
        idle
    }
}
