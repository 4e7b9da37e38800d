//! The `checked` build: bad frees, heap overflows and writes to freed
//! memory caught, at a price on every allocation and free (measured in
//! `docs/safety.md`).
//!
//! # What a block carries
//! - **Live small object** ([`object`]): the bytes asked for, zeroed, then a
//!   canary and a size word ([`marks`]). Every request is served from the
//!   class for 8 bytes more (and at least 16), so the size word always fits.
//!   `free` reads the size back and checks every byte between it and the
//!   size word: a 1-byte or a 32-byte overrun is a
//!   [`BadFreeKind::HeapOverflow`].
//! - **Free small object**: a free tag in its second word and poison in the
//!   rest (up to 1 KiB, and its last word). Freeing it again is a
//!   [`BadFreeKind::DoubleFree`]; if the poison was written meanwhile, a
//!   [`BadFreeKind::WriteAfterFree`]. The poison is checked again when the
//!   object leaves the quarantine and when it is handed out.
//! - **Quarantine** ([`quarantine`]): a freed object waits among the last
//!   256 (at most about 1 MiB) before it can be handed out again.
//! - **Large block** ([`large`]): the same marks after the bytes asked for,
//!   then a guard page (`PROT_NONE`) at the end of its span: a run of
//!   writes past the end faults at once.
//!
//! # Zero
//! Every block handed out reads as zero: a small object's bytes asked for
//! are cleared as it is handed out (freed objects are poisoned while free,
//! then zeroed on reuse), and a large block is always asked of the page heap
//! zeroed (clean pages are not written). A read of memory the program never
//! wrote gives the same zeros on every run.
//!
//! # Also
//! - Every `dealloc` is checked against the pagemap
//!   ([`crate::validate::valid_small_free`]): the page must hold objects of
//!   the layout's class, and the pointer must be at an object boundary,
//!   below the span's last object; the size word must match the layout's
//!   size.
//! - `realloc` always moves the block (so a stale pointer to the old one is
//!   caught like any freed pointer), and the usable size of a block is the
//!   size asked for.
//! - No layer reads a link out of a free object (thread and transfer
//!   caches hold pointers, spans a bitmap), so a use-after-free write
//!   cannot redirect allocation.
//!
//! # Invariants
//! - A small object is live (marks intact unless the program overran it)
//!   or retired (tag and poison); it is retired before it enters the
//!   quarantine and stays so until it is handed out again.
//! - Nothing here allocates, formats or panics; the reports go through
//!   [`crate::bad_free::report`] with no lock held.

mod large;
mod marks;
mod object;
mod quarantine;

use core::ptr;

use strata_central::CLASSES;

use crate::bad_free::{report, BadFreeKind};
use crate::global::{pages, HEAP};
use crate::tls::this_thread;
use crate::validate::{small_object_at, valid_small_free};

pub(crate) use quarantine::{drain as drain_quarantine, fork_child, fork_parent, fork_prepare};

/// The size class serving `size` bytes aligned to `align` in this build:
/// the class for 8 bytes more (the size word), and at least 16 bytes (room
/// for a link and a free tag); 0 for a large block.
#[inline(always)]
pub(crate) fn class_of(size: usize, align: usize) -> u8 {
    let room = size.saturating_add(marks::SIZE_WORD).max(object::MIN_SIZE);
    strata_central::class_index(room, align)
}

/// A small object of `class` for `request` ([`crate::request`]), zeroed
/// and marked.
#[inline]
pub(crate) fn alloc_small(class: u8, request: usize) -> *mut u8 {
    let p = HEAP.alloc(this_thread(), class, request);
    // A guarded block is zeroed, and checked by its pool instead of marks.
    if !p.is_null() && !crate::guarded::owns(p) {
        // SAFETY: a free object of `class` just taken from a free list, now
        // ours; class_of made room for size + SIZE_WORD.
        unsafe { object::hand_out(p, class, crate::request::size(request)) };
    }
    p
}

/// A large block of `size` bytes, zeroed, marked and guarded.
pub(crate) fn alloc_large(size: usize, align: usize) -> *mut u8 {
    large::alloc(size, align)
}

/// Frees the small object at `p` of `class` (from the layout, or the
/// pagemap); with `expected`, the size it must have been asked for. A bad
/// free is reported and ignored; a good one goes into quarantine.
///
/// # Safety
/// `p` is a block the caller gives up, or a bad pointer (reported).
pub(crate) unsafe fn free_small(p: *mut u8, class: u8, expected: Option<usize>) {
    if !valid_small_free(pages(), p, class) {
        return;
    }
    if !below_last_object(p, class) {
        return report(p, BadFreeKind::NeverAllocated);
    }
    // SAFETY: the start of an object of `class` in an in-use span.
    match unsafe { object::live_size(p, class) } {
        Err(why) => return report(p, why),
        Ok(size) if expected.is_some_and(|e| e != size) => {
            return report(p, BadFreeKind::WrongLayout)
        }
        Ok(_) => {}
    }
    // SAFETY: a live object of `class` its owner gives up.
    unsafe {
        object::retire(p, class);
        quarantine::admit(p, class);
    }
}

/// Frees the large block at `p`, as [`free_small`] does a small one.
///
/// # Safety
/// As [`free_small`].
pub(crate) unsafe fn free_large(p: *mut u8, expected: Option<usize>) {
    // SAFETY: forwarded contract.
    unsafe { large::free(p, expected) }
}

/// `GlobalAlloc::dealloc`: the layout's size must be the size asked for.
///
/// # Safety
/// As [`free_small`].
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    if crate::guarded::owns(p) {
        if crate::guarded::size_of(p) != size {
            return report(p, BadFreeKind::WrongLayout);
        }
        // SAFETY: forwarded contract.
        return unsafe { crate::guarded::free(p) };
    }
    // A sampled block: a pool block (outside the arena, which the checks
    // below would call never allocated) is the profiler's to free, and a
    // large one's record goes before its span does, as in the default
    // build's free paths.
    if crate::profile::tracking(p) && crate::profile::release(p) {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe {
        match class_of(size, align) {
            0 => free_large(p, Some(size)),
            class => free_small(p, class, Some(size)),
        }
    }
}

/// The size asked for of the live block at `p` (not null); reports and
/// returns `None` for anything else (never allocated, interior, freed,
/// overrun).
///
/// # Safety
/// `p` is a pointer the caller holds as a live block.
pub(crate) unsafe fn live_size(p: *mut u8) -> Option<usize> {
    if crate::guarded::owns(p) {
        return Some(crate::guarded::size_of(p)).filter(|&n| n != 0);
    }
    // A sampled block of the profiler's pool: outside the arena, it has no
    // marks of this build's, and the profiler's record knows its size.
    if crate::profile::tracking(p) {
        if let Some(n) = crate::profile::pooled_size(p) {
            return Some(n);
        }
    }
    let (class, at_start) = small_object_at(pages(), p as usize);
    let result = if class == 0 {
        match pages().large_size(p as usize) {
            // SAFETY: an in-use large span of `len` bytes.
            Ok(len) => unsafe { large::live_size(p, len) }.ok_or(BadFreeKind::HeapOverflow),
            Err(why) => Err(why.into()),
        }
    } else if !at_start {
        Err(BadFreeKind::Interior)
    } else if !below_last_object(p, class) {
        Err(BadFreeKind::NeverAllocated)
    } else {
        // SAFETY: an object start in an in-use span of `class`.
        unsafe { object::live_size(p, class) }
    };
    result.map_err(|why| report(p, why)).ok()
}

/// `realloc` of the live block at `p` (not null) to `new_size` bytes: always
/// a new block, so that the old one is freed (and quarantined) like any
/// other. Null if `p` is not a live block (reported) or memory ran out.
///
/// # Safety
/// `p` is a live block of the caller's, allocated with `align`.
pub(crate) unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    // SAFETY: forwarded contract.
    let Some(old) = (unsafe { live_size(p) }) else {
        return ptr::null_mut();
    };
    let q = crate::raw::alloc(new_size, align);
    if !q.is_null() {
        // SAFETY: distinct live blocks; the copy fits both.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old.min(new_size));
            crate::raw::free(p);
        }
    }
    q
}

/// Whether the object boundary `p` in a span of `class` is one of the
/// span's objects, not the leftover bytes past its last one.
fn below_last_object(p: *mut u8, class: u8) -> bool {
    let (_, start) = pages().small_span_of(p as usize);
    let info = &CLASSES[class as usize];
    (p as usize).wrapping_sub(start) < info.objects as usize * info.size as usize
}
