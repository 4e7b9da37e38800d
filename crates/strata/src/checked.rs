//! The `checked` build: more bad frees caught, at a price on every small
//! allocation and free (see `docs/safety.md` for the measured cost).
//!
//! - Every `dealloc` is checked against the pagemap
//!   ([`crate::validate::valid_small_free`]): the page must hold objects of
//!   the layout's class, and the pointer must be at an object boundary.
//! - A freed small object gets a *free tag* in its second word (derived from
//!   its address, its class and a per-process secret) and the rest of it
//!   (up to [`POISON_MAX`] bytes) is filled with [`POISON`]. Freeing an
//!   object that carries its tag and intact poison is a double free.
//! - When an object that carries its tag is handed out again, its poison
//!   must be intact; otherwise freed memory was written (use after free).
//! - Free-list links (in batches moving through the central layer; thread
//!   caches keep stacks of pointers and read nothing from free objects) are
//!   encoded (`strata_base::link`), so a use-after-free write cannot redirect
//!   allocation.
//!
//! Objects of 8 bytes have no room for a tag, so this build serves every
//! request from 16-byte classes and up.

use strata_central::class_size_of;

use crate::bad_free::{report, BadFreeKind};

/// The byte freed memory is filled with.
pub(crate) const POISON: u8 = 0xDB;

/// At most this many bytes of an object are poisoned and checked.
pub(crate) const POISON_MAX: usize = 1024;

/// The smallest size served (room for a link and a tag).
pub(crate) const MIN_SIZE: usize = 16;

fn tag(p: *const u8, class: u8) -> usize {
    (p as usize).rotate_left(29)
        ^ (class as usize).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ strata_os::process_secret()
}

fn poison_range(p: *mut u8, class: u8) -> (*mut u8, usize) {
    let size = class_size_of(class).min(POISON_MAX);
    // SAFETY (for callers): objects are at least MIN_SIZE bytes.
    (p.wrapping_add(MIN_SIZE), size - MIN_SIZE)
}

/// Tags and poisons an object being freed; reports a double free (and
/// returns false) if it already carries its tag and intact poison.
///
/// # Safety
/// `p` is an object of `class` (validated by
/// [`crate::validate::valid_small_free`]).
pub(crate) unsafe fn on_free(p: *mut u8, class: u8) -> bool {
    let t = tag(p, class);
    let word = p.wrapping_add(8) as *mut usize;
    let (from, len) = poison_range(p, class);
    // SAFETY: the object has class_size_of(class) >= MIN_SIZE bytes.
    unsafe {
        if word.read() == t && poison_intact(from, len) {
            report(p, BadFreeKind::DoubleFree);
            return false;
        }
        word.write(t);
        from.write_bytes(POISON, len);
    }
    true
}

/// Checks an object being handed out: if it carries its free tag, its
/// poison must be intact. Clears the tag.
///
/// # Safety
/// `p` is an object of `class` just taken from a free list.
pub(crate) unsafe fn on_alloc(p: *mut u8, class: u8) {
    let word = p.wrapping_add(8) as *mut usize;
    // SAFETY: the object has at least MIN_SIZE bytes and is ours.
    unsafe {
        if word.read() != tag(p, class) {
            return; // never freed (fresh from a span)
        }
        let (from, len) = poison_range(p, class);
        if !poison_intact(from, len) {
            report(p, BadFreeKind::WriteAfterFree);
        }
        word.write(0);
    }
}

/// # Safety
/// `[from, from + len)` is readable.
unsafe fn poison_intact(from: *const u8, len: usize) -> bool {
    // SAFETY: caller's contract.
    unsafe { core::slice::from_raw_parts(from, len) }
        .iter()
        .all(|&b| b == POISON)
}
