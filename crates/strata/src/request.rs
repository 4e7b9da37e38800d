//! The word a small allocation passes down the thread cache to its sampler
//! (`strata_threadcache::Sampler::offer`, which the cache hands it as is):
//! the bytes asked for and, when the caller asked for more than C's
//! `malloc` gives anyway, the alignment. A block the sampler serves instead
//! of a size-class object is placed by it: a guarded block against its
//! guard page, as close as the alignment allows (`crate::guarded`).
//!
//! # Encoding
//! - Bits 0-31: the size (a small request is far below 4 GiB).
//! - Bits 32-63: the alignment if above 8, else 0. A request aligned to 8
//!   or less is the size alone: C's `malloc` pays nothing to say it, and a
//!   Rust layout whose alignment is known at compile time nothing more
//!   than a constant.
//!
//! # Invariants
//! - [`align`] is at least the alignment the caller asked for, and at least
//!   what C's `malloc` promises for the size (8, and 16 from 16 bytes up),
//!   so a block placed by it is a valid `malloc` result too.
//! - The word 0 says nothing (a caller that did not tell): [`align`] is
//!   then 0, and the sampler must use the class's own alignment.

/// The largest alignment C's `malloc` gives a small request (from 16 bytes
/// up; 8 below).
const MALLOC_MAX_ALIGN: usize = 16;

/// The word for `size` bytes aligned to `align` (a power of two), for a
/// request a size class serves (so both are far below 2^32: at most 256 KiB
/// and a page).
#[inline(always)]
pub(crate) fn new(size: usize, align: usize) -> usize {
    if align > 8 {
        size | align << 32
    } else {
        size
    }
}

/// The bytes asked for.
#[inline(always)]
pub(crate) fn size(word: usize) -> usize {
    word & u32::MAX as usize
}

/// The alignment a block for the request must have: the caller's, and at
/// least C's `malloc`'s for the size; 0 for the word 0 (not known).
#[inline]
pub(crate) fn align(word: usize) -> usize {
    if word == 0 {
        return 0;
    }
    let malloc = if size(word) >= MALLOC_MAX_ALIGN {
        MALLOC_MAX_ALIGN
    } else {
        8
    };
    (word >> 32).max(malloc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_says_size_and_alignment() {
        for (s, a, want) in [
            (1, 1, 8),
            (8, 8, 8),
            (15, 8, 8),
            (16, 8, 16),
            (48, 8, 16),
            (48, 16, 16),
            (1, 16, 16),
            (48, 64, 64),
            (1, 4096, 4096),
            (100_000, 8, 16),
        ] {
            let w = new(s, a);
            assert_eq!((size(w), align(w)), (s, want), "{s} aligned to {a}");
        }
        assert_eq!(new(40, 8), 40, "malloc's alignment costs nothing");
        assert_eq!(align(0), 0);
    }
}
