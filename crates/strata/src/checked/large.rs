//! Large blocks in the `checked` build: a guard page after each, so that a
//! run past the end faults instead of writing the next block.
//!
//! ```text
//!   span start                                         last OS page
//!   [ bytes asked for (zero) | canary | size word ]   [ guard: PROT_NONE ]
//!   p                        p + size   end            end + 8 = guard
//! ```
//!
//! A block is asked of the page heap (always zeroed) for `size` plus the size
//! word plus one OS page; the span's last OS page becomes the guard
//! (`mprotect(PROT_NONE)`), and the slack between the size asked for and the
//! guard holds the marks of [`super::marks`], checked on free. The block's
//! start stays the span's start, so the page heap validates frees as always.
//!
//! # Invariants
//! - While a large block is live its span's last OS page is inaccessible,
//!   or the `mprotect` that would have made it so failed (the kernel's
//!   limit on mappings: each guard splits a mapping in up to three); the
//!   marks are there either way.
//! - The guard is made accessible again before the span goes back to the
//!   page heap, so every free page is readable and writable. Taking write
//!   access away keeps the mapping's commit charge, so giving it back cannot
//!   fail for want of memory; if the kernel still refuses, the program stops
//!   rather than let the heap hand out an inaccessible page.
//! - A block is never resized in place (`realloc` moves it): the guard stays
//!   where the span ends.

use strata_os::os_page_size;

use super::marks::{self, SIZE_WORD};
use crate::bad_free::{report, BadFreeKind};
use crate::global::pages;

/// Allocates a zeroed large block of `size` bytes aligned to `align`, with
/// its marks and guard page; null if it cannot.
pub(crate) fn alloc(size: usize, align: usize) -> *mut u8 {
    let guard = os_page_size();
    // (No block that large could be mapped; the size word holds no more.)
    if size > marks::MAX_SIZE {
        return core::ptr::null_mut();
    }
    let total = size + SIZE_WORD + guard;
    let p = crate::global::alloc_large_span(total, align, true);
    if p.is_null() {
        return p;
    }
    let Ok(len) = pages().large_size(p as usize) else {
        strata_os::fatal(b"strata: a large block just allocated is not in the page heap\n");
    };
    let end = p.wrapping_add(len - guard - SIZE_WORD);
    // SAFETY: [p, p + len) is the new block, ours; size + SIZE_WORD + guard
    // <= len; `end` is 8-aligned (len and guard are page multiples).
    unsafe { marks::write(p, size, end) };
    // SAFETY: the span's last OS page, part of the block, which nobody
    // else uses. A failure leaves it accessible (see the invariants).
    unsafe { libc::mprotect(end.add(SIZE_WORD).cast(), guard, libc::PROT_NONE) };
    p
}

/// The size asked for of the live large block at `p` (its span is `len`
/// bytes), or `None` if bytes past it were written.
///
/// # Safety
/// `p` is the start of an in-use large span of `len` bytes made by [`alloc`].
pub(crate) unsafe fn live_size(p: *mut u8, len: usize) -> Option<usize> {
    let end = p.wrapping_add(len - os_page_size() - SIZE_WORD);
    // SAFETY: [p, end + 8) is the block, below its guard.
    unsafe { marks::read(p, end) }
}

/// Frees the large block at `p`; with `expected`, the size it must have been
/// asked for (a sized `dealloc`). Anything else is reported and not freed.
///
/// # Safety
/// `p` is a block the caller gives up, or a bad pointer (reported).
pub(crate) unsafe fn free(p: *mut u8, expected: Option<usize>) {
    let len = match pages().large_size(p as usize) {
        Ok(len) => len,
        Err(why) => return report(p, why.into()),
    };
    // SAFETY: an in-use large span of `len` bytes, made by `alloc`.
    match unsafe { live_size(p, len) } {
        None => return report(p, BadFreeKind::HeapOverflow),
        Some(size) if expected.is_some_and(|e| e != size) => {
            return report(p, BadFreeKind::WrongLayout)
        }
        Some(_) => {}
    }
    let guard = p.wrapping_add(len - os_page_size());
    // SAFETY: the block's last OS page, the caller's.
    let rc = unsafe {
        libc::mprotect(
            guard.cast(),
            os_page_size(),
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if rc != 0 {
        strata_os::fatal(
            b"strata: the guard page of a large block cannot be made accessible again\n",
        );
    }
    // SAFETY: validated above; the page heap validates again under its lock
    // (two racing frees: one of them is refused).
    if let Err(why) = unsafe { pages().free_large(p as usize) } {
        report(p, why.into());
    }
}
