//! The marks the `checked` build leaves in a live block past the bytes asked
//! for, shared by small objects and large blocks:
//!
//! ```text
//!   p                 p + size                    end           end + 8
//!   [ the caller's bytes | canary bytes ........ | size word ]
//! ```
//!
//! - Every byte between the size and the size word is a *canary*: byte `a`
//!   is byte `a % 8` of a per-process word whose bytes are all odd, so a
//!   stray zero (the commonest overrun, a string's terminator) is always
//!   caught, and any other byte value with a chance of 1 in 128 at worst.
//! - The *size word*'s first byte (its lowest) is a canary byte too; its
//!   other seven hold the size asked for (48 bits) and an 8-bit check of
//!   it, xor a mask of the block's address and the per-process secret:
//!   `free(p)` learns from it where the caller's bytes stop. A request of
//!   exactly 8 bytes less than its class has no canary before the size
//!   word, so an overrun's first byte lands on the word: it must meet a
//!   canary byte there, as anywhere else. (A word that was all size, xor
//!   its mask, let a 1-byte overrun through with a chance of 1 in 256:
//!   when the byte written made the word decode to the size stored.) The
//!   check is a bijection of the size's low 8 bits, xor a fold of its
//!   other bits: a word written over in its first two bytes only decodes
//!   only if both bytes were written with the values they held.
//!
//! # Invariants
//! - The block's start and `end` are 8-byte aligned (the size word and the
//!   canary are read and written a word at a time).
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

/// The largest size the size word holds (2^48 - 1: more than any block
/// the address space has room for).
pub(crate) const MAX_SIZE: usize = (1 << 48) - 1;

#[inline(always)]
fn size_mask(p: *const u8) -> usize {
    (p as usize).rotate_left(41) ^ process_secret().rotate_left(11) ^ 0x5EED_51CE_0F0B_10C5
}

/// The size word of the block at `p` for `size` (at most [`MAX_SIZE`]), as
/// a number whose little-endian bytes are the word in memory: the canary
/// byte, then the size and its check, masked.
#[inline(always)]
fn size_word(p: *const u8, size: usize) -> usize {
    let rest = size >> 8;
    let fold = rest ^ (rest >> 8) ^ (rest >> 16) ^ (rest >> 24) ^ (rest >> 32);
    let check = (size as u8).wrapping_mul(0x9D) ^ fold as u8;
    let payload = size | (check as usize) << 48;
    ((payload ^ size_mask(p)) << 8) | (canary_word() & 0xFF)
}

/// Writes the marks of a block at `p` whose caller asked for `size` bytes,
/// with the size word at `end`.
///
/// # Safety
/// `[p, end + 8)` is writable memory of the block, `p` and `end` 8-byte
/// aligned, `size <= end - p` and `size <= MAX_SIZE`.
pub(crate) unsafe fn write(p: *mut u8, size: usize, end: *mut u8) {
    // SAFETY: caller's contract.
    unsafe {
        fill_canary(p.add(size), end);
        (end as *mut usize).write(size_word(p, size).to_le());
    }
}

/// The size the caller of the block at `p` asked for, if the size word at
/// `end` and every canary byte are intact; `None` if bytes past the size
/// were written.
///
/// # Safety
/// `[p, end + 8)` is readable memory of the block, `p` and `end` 8-byte
/// aligned.
pub(crate) unsafe fn read(p: *const u8, end: *const u8) -> Option<usize> {
    // SAFETY: caller's contract.
    let word = usize::from_le(unsafe { (end as *const usize).read() });
    let size = ((word >> 8) ^ size_mask(p)) & MAX_SIZE;
    let room = end as usize - p as usize;
    // SAFETY: size <= room, so the canary lies in the caller's range.
    (size <= room && word == size_word(p, size) && unsafe { canary_intact(p.add(size), end) })
        .then_some(size)
}

/// The canary is written and checked a word at a time: the first, partial
/// word through a mask (the bytes below `from` in it belong to the block and
/// are written back unchanged). Words are handled as little-endian, so byte
/// `a % 8` of the canary word lands at address `a` on any machine.
///
/// # Safety
/// `[from & !7, to)` is writable memory of one block; `to` is 8-byte aligned.
unsafe fn fill_canary(from: *mut u8, to: *mut u8) {
    let w = canary_word().to_le();
    let mut a = from.wrapping_sub(from as usize % 8) as *mut usize;
    // SAFETY: every word written lies in [from & !7, to).
    unsafe {
        if from < to && from as usize % 8 != 0 {
            let keep = below(from);
            a.write((a.read() & keep) | (w & !keep));
            a = a.add(1);
        }
        while (a as *mut u8) < to {
            a.write(w);
            a = a.add(1);
        }
    }
}

/// # Safety
/// `[from & !7, to)` is readable memory of one block; `to` is 8-byte
/// aligned.
unsafe fn canary_intact(from: *const u8, to: *const u8) -> bool {
    let w = canary_word().to_le();
    let mut a = from.wrapping_sub(from as usize % 8) as *const usize;
    let mut wrong = 0;
    // SAFETY: every word read lies in [from & !7, to).
    unsafe {
        if from < to && from as usize % 8 != 0 {
            let keep = below(from);
            wrong |= (a.read() ^ w) & !keep;
            a = a.add(1);
        }
        while (a as *const u8) < to {
            wrong |= a.read() ^ w;
            a = a.add(1);
        }
    }
    wrong == 0
}

/// The bytes of the word holding `a` that lie below `a`, as a mask (`a` not
/// 8-byte aligned).
fn below(a: *const u8) -> usize {
    (usize::MAX >> (usize::BITS as usize - 8 * (a as usize % 8))).to_le()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes whose size word follows the caller's bytes directly: a 1-byte
    /// or a 2-byte overrun lands on the word, and is found whatever it
    /// writes, unless it writes the very bytes that were there.
    #[test]
    fn an_overrun_into_the_size_word_is_found() {
        let mut block = [0usize; 4];
        let p = block.as_mut_ptr() as *mut u8;
        for size in [0usize, 8, 16, 24] {
            let end = p.wrapping_add(size);
            for b in 0..=255u8 {
                // SAFETY: [p, end + 8) lies in `block`, 8-byte aligned.
                unsafe {
                    write(p, size, end);
                    assert_eq!(read(p, end), Some(size));
                    let (first, second) = (end.read(), end.add(1).read());
                    assert_eq!(first % 2, 1, "the first byte is a canary byte");
                    end.write(b);
                    assert_eq!(read(p, end).is_some(), b == first, "{size}: {b:#x}");
                    end.write(first);
                    end.add(1).write(b);
                    assert_eq!(read(p, end).is_some(), b == second, "{size}: {b:#x}");
                }
            }
        }
    }
}
