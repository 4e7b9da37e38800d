//! The marks the `checked` build leaves in a live block past the bytes asked
//! for, shared by small objects and large blocks:
//!
//! ```text
//!   p                 p + size                    end           end + 8
//!   [ the caller's bytes | canary bytes ........ | size word ]
//! ```
//!
//! - The *size word* holds the size asked for, xor a mask of the block's
//!   address and the per-process secret: `free(p)` learns from it where the
//!   caller's bytes stop, and a word written over decodes to a size past
//!   `end` (a chance of about `end / 2^64` that it does not).
//! - Every byte between the size and the size word is a *canary*: byte `a`
//!   is byte `a % 8` of a per-process word whose bytes are all odd, so a
//!   stray zero (the commonest overrun, a string's terminator) is always
//!   caught, and any other byte value with a chance of 1 in 128 at worst.
//!
//! # Invariants
//! - `end` is 8-byte aligned (the size word is read and written whole).
//! - The marks are written when the block is handed out and checked when it
//!   is freed, resized or asked its size; in between they belong to nobody.

use strata_os::process_secret;

/// The bytes the size word takes at the end of a block.
pub(crate) const SIZE_WORD: usize = 8;

/// The word whose bytes the canary repeats (every byte odd).
#[inline(always)]
fn canary_word() -> usize {
    (process_secret().rotate_left(23) ^ 0xA5C3_5A3C_96E1_69E1) | 0x0101_0101_0101_0101
}

#[inline(always)]
fn size_mask(p: *const u8) -> usize {
    (p as usize).rotate_left(41) ^ process_secret().rotate_left(11) ^ 0x5EED_51CE_0F0B_10C5
}

/// Writes the marks of a block at `p` whose caller asked for `size` bytes,
/// with the size word at `end`.
///
/// # Safety
/// `[p + size, end + 8)` is writable memory of the block; `size <= end - p`,
/// `end` 8-byte aligned.
pub(crate) unsafe fn write(p: *mut u8, size: usize, end: *mut u8) {
    // SAFETY: caller's contract.
    unsafe {
        fill_canary(p.add(size), end);
        (end as *mut usize).write(size ^ size_mask(p));
    }
}

/// The size the caller of the block at `p` asked for, if the size word at
/// `end` and every canary byte are intact; `None` if bytes past the size
/// were written.
///
/// # Safety
/// `[p, end + 8)` is readable memory of the block, `end` 8-byte aligned.
pub(crate) unsafe fn read(p: *const u8, end: *const u8) -> Option<usize> {
    // SAFETY: caller's contract.
    let size = unsafe { (end as *const usize).read() } ^ size_mask(p);
    let room = end as usize - p as usize;
    // SAFETY: size <= room, so the canary lies in the caller's range.
    (size <= room && unsafe { canary_intact(p.add(size), end) }).then_some(size)
}

/// # Safety
/// `[from, to)` is writable; `to` is 8-byte aligned.
unsafe fn fill_canary(from: *mut u8, to: *mut u8) {
    let w = canary_word().to_ne_bytes();
    let mut a = from;
    // SAFETY (all three loops): every address written is in [from, to).
    unsafe {
        while a < to && a as usize % 8 != 0 {
            a.write(w[a as usize % 8]);
            a = a.add(1);
        }
        let w = canary_word();
        while a < to {
            (a as *mut usize).write(w);
            a = a.add(8);
        }
    }
}

/// # Safety
/// `[from, to)` is readable; `to` is 8-byte aligned.
unsafe fn canary_intact(from: *const u8, to: *const u8) -> bool {
    let w = canary_word().to_ne_bytes();
    let mut a = from;
    // SAFETY (both loops): every address read is in [from, to).
    unsafe {
        while a < to && a as usize % 8 != 0 {
            if a.read() != w[a as usize % 8] {
                return false;
            }
            a = a.add(1);
        }
        let w = canary_word();
        while a < to {
            if (a as *const usize).read() != w {
                return false;
            }
            a = a.add(8);
        }
    }
    true
}
