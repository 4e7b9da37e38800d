//! Double frees through `free(p)`, caught in the default build: a freed
//! small object carries a mark in its first word while it sits in a cache.
//!
//! # How
//! - `raw::free` of a small object reads its first word. If it is not
//!   [`MARK`], it writes the mark and frees as usual. If it is, the object
//!   may already be free: [`confirm`] searches the calling thread's cache
//!   list of the object's class, then the class's transfer cache, then
//!   the bitmap of the object's span, and reports a double free if it is
//!   free in any of them. Otherwise the program had stored the mark's
//!   value itself, and the free goes on.
//! - `raw::alloc` clears the first word of the small object it hands out,
//!   so an allocated object never carries a stale mark (which would send
//!   each of its frees through the search).
//!
//! The common double frees are caught: the second free on the thread that
//! made the first, while the object is in that thread's cache, parked in a
//! transfer cache or back in its span (`free(p); free(p)`, with other frees
//! or allocations of other sizes in between; nothing is written to an
//! object the central layer takes back, so the mark stays). One freed into
//! another thread's cache is not searched for; a second free that reaches
//! a span where the object is already free, or with no object out, is
//! still stopped there (`strata-central`).
//!
//! # Cost
//! Three instructions on `free` (a compare of the first byte with an
//! immediate, a branch, a store) and one on `malloc` (a store): the mark
//! is a constant that fits an instruction's 32-bit immediate,
//! sign-extended, and its whole word is compared only when its first byte
//! matched ([`is_marked`] says why a byte first). A secret mark would not
//! make the check stronger (a false match is confirmed by the search,
//! never reported), only dearer.
//!
//! `dealloc` through `GlobalAlloc` is not marked: safe Rust cannot free
//! twice, and a sized free need not touch the object at all. The `checked`
//! build tags every freed object instead (`crate::checked`).
//!
//! # Invariants
//! - A small object handed out by `raw::alloc` does not carry the mark.
//! - Only a free that found the object in this thread's cache list or in
//!   its class's transfer cache is reported: those hold free objects only.

use crate::bad_free::{report, BadFreeKind};
use crate::global::{central, HEAP};
use crate::tls::this_thread;
use strata_threadcache::ThreadSlot;

/// The first word of an object freed through `free(p)`: an address in the
/// kernel's half, so never a pointer of the program's, and a 32-bit
/// immediate sign-extended.
pub(crate) const MARK: usize = 0xFFFF_FFFF_DB1E_F4EE;

/// The mark's first byte in memory (x86-64 and AArch64 are little-endian).
const MARK_LOW: u8 = MARK.to_le_bytes()[0];

/// Whether the object at `p` carries the mark: its first byte, then (only
/// if that matched) its first word.
///
/// The byte goes first because of how a load meets the program's last
/// stores: a program that has just written part of the first word (a
/// byte, an `int`) and then frees the object would make a word load wait
/// until that store has left the core (the store cannot be forwarded to
/// a load wider than itself), some 12-15 cycles on every such free. A
/// byte load is always inside any store that wrote its byte, so it is
/// forwarded and never waits. The word compare after it runs only for the
/// 1 in 256 objects of arbitrary contents whose first byte matches.
///
/// # Safety
/// `p` is a small object of strata's (at least 8 bytes, aligned).
#[inline(always)]
pub(crate) unsafe fn is_marked(p: *mut u8) -> bool {
    // SAFETY: caller's contract; the word is read only after the byte.
    unsafe { p.read() == MARK_LOW && (p as *const usize).read() == MARK }
}

/// Marks the object at `p` as freed.
///
/// # Safety
/// As [`is_marked`], and the caller gives the object up.
#[inline(always)]
pub(crate) unsafe fn mark(p: *mut u8) {
    // SAFETY: caller's contract.
    unsafe { (p as *mut usize).write(MARK) }
}

/// [`alloc_cleared`] from this thread's cache only: null if the list is
/// empty.
#[inline(always)]
pub(crate) fn alloc_cached(class: u8, request: usize) -> *mut u8 {
    HEAP.alloc_cached::<true>(this_thread(), class, request)
}

/// Allocates an object of `class` for `request` ([`crate::request`]; a
/// plain size for C's `malloc`) (the default build's small path) with its
/// first word cleared, so it carries no mark.
#[inline(always)]
pub(crate) fn alloc_cleared(class: u8, request: usize) -> *mut u8 {
    HEAP.alloc_with::<true>(this_thread(), class, request)
}

/// Checks a marked object of `class` being freed: reports a double free
/// (and returns false: it must not be freed again) if it is among the free
/// objects of this thread's cache or of the class's transfer cache.
#[cold]
#[inline(never)]
pub(crate) fn confirm(p: *mut u8, class: u8) -> bool {
    let free = HEAP.holds(this_thread().slot(), p, class)
        || central().transfer_holds(class, p)
        || central().span_holds(class, p);
    if free {
        report(p, BadFreeKind::DoubleFree);
    }
    !free
}
