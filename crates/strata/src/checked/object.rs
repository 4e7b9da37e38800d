//! A small object's two states in the `checked` build, and the checks that
//! tell them apart:
//!
//! ```text
//!   live:  [ zeroed bytes asked for | canary ... | size word ]
//!   free:  [ link | free tag | poison 0xDB ...          | poison ]
//!          0      8          16          (up to 1 KiB)   C - 8    C
//! ```
//!
//! - *Live*: handed out with the bytes asked for zeroed and the marks of
//!   [`super::marks`] after them, the size word in the object's last 8 bytes
//!   (every class is served for 8 bytes more than asked, so there is room).
//! - *Free*: the second word holds a *free tag* (derived from the address,
//!   the class and the per-process secret), the bytes from 16 up to
//!   [`POISON_MAX`] and the last word hold [`POISON`]. The first word is
//!   left to the free-list link of the central layer.
//!
//! # Invariants
//! - An object carrying its free tag is free: a live object's second word is
//!   zero, a canary or the caller's data, and none equals the tag but by a
//!   chance of 2^-64. A fresh object carved from a span has its second word
//!   cleared (`strata_central`), so a stale tag is never taken for a free one.
//! - A free object's poison is intact unless the program wrote freed memory.

use strata_central::class_size_of;

use super::marks::{self, SIZE_WORD};
use crate::bad_free::{report, BadFreeKind};

/// The byte freed memory is filled with.
pub(crate) const POISON: u8 = 0xDB;

/// At most this many bytes of an object are poisoned and checked (and its
/// last word).
pub(crate) const POISON_MAX: usize = 1024;

/// The smallest object used (room for a link and a free tag).
pub(crate) const MIN_SIZE: usize = 16;

const POISON_WORD: usize = usize::from_ne_bytes([POISON; 8]);

fn tag(p: *const u8, class: u8) -> usize {
    (p as usize).rotate_left(29)
        ^ (class as usize).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ strata_os::process_secret()
}

/// Where the size word of a live object of `class` at `p` is.
fn end(p: *mut u8, class: u8) -> *mut u8 {
    p.wrapping_add(class_size_of(class) - SIZE_WORD)
}

/// Readies an object just taken from a free list (or carved) to be handed
/// out for `size` bytes: reports a write after free if it comes back free
/// with its poison broken, then zeroes the bytes asked for and marks the
/// rest.
///
/// # Safety
/// `p` is a free object of `class`, now the caller's; `size + SIZE_WORD`
/// fits the class.
pub(crate) unsafe fn hand_out(p: *mut u8, class: u8, size: usize) {
    // SAFETY: the object is the caller's, class_size_of(class) bytes, at
    // least MIN_SIZE; size + SIZE_WORD <= its size.
    unsafe {
        if is_tagged(p, class) && !poison_intact(p, class) {
            report(p, BadFreeKind::WriteAfterFree);
        }
        p.write_bytes(0, size);
        marks::write(p, size, end(p, class));
    }
}

/// The size asked for of the object of `class` at `p`, or why it cannot be
/// freed: already free (poison intact, or not), or written past its size.
///
/// # Safety
/// `p` is the start of an object of `class` in an in-use span.
pub(crate) unsafe fn live_size(p: *mut u8, class: u8) -> Result<usize, BadFreeKind> {
    // SAFETY: the object lies in an in-use span: all its bytes are readable.
    unsafe {
        if is_tagged(p, class) {
            return Err(if poison_intact(p, class) {
                BadFreeKind::DoubleFree
            } else {
                BadFreeKind::WriteAfterFree
            });
        }
        let end = end(p, class);
        // A freed object whose tag was written over still has its last word
        // poisoned (for the 16-byte class that word is the tag's).
        if class_size_of(class) > MIN_SIZE && (end as *const usize).read() == POISON_WORD {
            return Err(BadFreeKind::WriteAfterFree);
        }
        marks::read(p, end).ok_or(BadFreeKind::HeapOverflow)
    }
}

/// Marks a live object free: its tag and poison.
///
/// # Safety
/// `p` is a live object of `class` being freed by its owner.
pub(crate) unsafe fn retire(p: *mut u8, class: u8) {
    let size = class_size_of(class);
    // SAFETY: the object has `size` >= MIN_SIZE bytes, all the caller's.
    unsafe {
        p.add(MIN_SIZE)
            .write_bytes(POISON, size.min(POISON_MAX) - MIN_SIZE);
        (end(p, class) as *mut usize).write(POISON_WORD);
        (p.add(8) as *mut usize).write(tag(p, class));
    }
}

/// Whether a free object is as [`retire`] left it (nothing wrote it since).
///
/// # Safety
/// `p` is an object of `class` in an in-use span.
pub(crate) unsafe fn still_retired(p: *mut u8, class: u8) -> bool {
    // SAFETY: caller's contract.
    unsafe { is_tagged(p, class) && poison_intact(p, class) }
}

/// # Safety
/// `p` is an object of `class` (at least MIN_SIZE bytes readable).
unsafe fn is_tagged(p: *mut u8, class: u8) -> bool {
    // SAFETY: caller's contract.
    unsafe { (p.add(8) as *const usize).read() == tag(p, class) }
}

/// Read a word at a time: objects are 16-byte aligned and every class
/// size, like POISON_MAX, is a multiple of 16.
///
/// # Safety
/// `p` is an object of `class` (all of it readable).
unsafe fn poison_intact(p: *mut u8, class: u8) -> bool {
    let size = class_size_of(class);
    let words = (size.min(POISON_MAX) - MIN_SIZE) / 8;
    // SAFETY: caller's contract; MIN_SIZE + 8 * words <= size, aligned.
    let poison = unsafe { core::slice::from_raw_parts(p.add(MIN_SIZE) as *const usize, words) };
    // SAFETY: the last word of the object.
    let last = unsafe { (end(p, class) as *const usize).read() };
    let wrong = poison.iter().fold(0, |acc, &w| acc | (w ^ POISON_WORD));
    wrong == 0 && (size == MIN_SIZE || last == POISON_WORD)
}
