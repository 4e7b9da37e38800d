//! A span's free objects as a bitmap, a bit per object, kept beside the
//! span rather than in its objects.
//!
//! Objects freed back to a span set their bit; a refill takes set bits,
//! lowest first. Neither touches the objects: a refill of a batch does not
//! wait on a cache miss for each object (a list linked through the objects
//! must read each object to find the next), a free does not write a line
//! the program may still have in another core's cache, and a second free of
//! an object already back in its span finds its bit set.
//!
//! Every class's bitmaps come from one [`BitmapPool`], under a lock of its
//! own (taken alone when a span joins its class, inside the class's lock
//! when it leaves): bitmaps are carved from chunks mapped a page at a
//! time ([`crate::PageSource::map_table`]) and kept, by length, for the
//! next span. Classes share the chunks, so a program using a few objects of
//! many classes pays for one page of bitmaps, not one a class. What the
//! pool holds is bounded by the most spans there ever were at once, at a
//! bit per object (one bit in at least 8 bytes, for the smallest class).
//!
//! # Invariants
//! - A bitmap handed out is all zero; a spare one is all zero but its first
//!   word, which links it to the next spare.
//! - A span's set bits are exactly its objects that were carved, handed
//!   out, and freed back to it: `carved - allocated` of them.

use core::ptr::{self, NonNull};

/// Words mapped at a time for bitmaps (4 KiB), unless one bitmap needs
/// more.
const CHUNK_WORDS: usize = 512;

/// The longest bitmap kept for reuse: a span of 64 KiB (one OS page of the
/// largest size strata runs on) of 8-byte objects. Longer ones (no class
/// has them) are mapped and never reused.
const MAX_WORDS: usize = 128;

/// The words a bitmap of `objects` bits takes.
#[inline]
pub(crate) const fn words_for(objects: u32) -> usize {
    (objects as usize).div_ceil(64)
}

/// The spans' bitmaps, of every length.
pub(crate) struct BitmapPool {
    /// Spare bitmaps of each length in words, linked through their first
    /// word.
    spare: [*mut u64; MAX_WORDS + 1],
    /// The unused rest of the last chunk mapped.
    next: *mut u64,
    left: usize,
}

// SAFETY: the pointers are the pool's own memory, used only under its lock.
unsafe impl Send for BitmapPool {}

impl BitmapPool {
    pub(crate) const fn new() -> Self {
        BitmapPool {
            spare: [ptr::null_mut(); MAX_WORDS + 1],
            next: ptr::null_mut(),
            left: 0,
        }
    }

    /// A zeroed bitmap of `words` words; null if `map` (zeroed memory of
    /// the bytes asked, kept for good) has none.
    pub(crate) fn alloc(
        &mut self,
        words: usize,
        map: impl FnOnce(usize) -> Option<NonNull<u8>>,
    ) -> *mut u64 {
        if let Some(&b) = self.spare.get(words) {
            if !b.is_null() {
                // SAFETY: a spare bitmap of `words` words, all zero but its
                // first word, the link.
                unsafe {
                    self.spare[words] = b.read() as *mut u64;
                    b.write(0);
                }
                return b;
            }
        }
        if self.left < words {
            let chunk = words.max(CHUNK_WORDS);
            let Some(mem) = map(chunk * 8) else {
                return ptr::null_mut();
            };
            self.next = mem.as_ptr().cast();
            self.left = chunk;
        }
        let b = self.next;
        // SAFETY: `words` of the chunk's remaining words (zero, never handed
        // out), so the result stays inside it.
        self.next = unsafe { b.add(words) };
        self.left -= words;
        b
    }

    /// Takes back a bitmap of `words` words from [`BitmapPool::alloc`].
    ///
    /// # Safety
    /// `b` came from this pool's `alloc` with `words`, and nobody uses it
    /// any more.
    pub(crate) unsafe fn release(&mut self, b: *mut u64, words: usize) {
        // SAFETY: caller's contract: the bitmap's words are ours.
        unsafe { ptr::write_bytes(b, 0, words) };
        if let Some(head) = self.spare.get_mut(words) {
            // SAFETY: as above.
            unsafe { b.write(*head as u64) };
            *head = b;
        }
    }
}

/// Sets bit `i` of `bits`; returns false, changing nothing, if it was set.
///
/// # Safety
/// `bits` has at least `i / 64 + 1` words.
#[inline]
pub(crate) unsafe fn set(bits: *mut u64, i: usize) -> bool {
    let mask = 1u64 << (i % 64);
    // SAFETY: caller's contract.
    unsafe {
        let w = bits.add(i / 64);
        let v = w.read();
        if v & mask != 0 {
            return false;
        }
        w.write(v | mask);
    }
    true
}

/// Whether bit `i` of `bits` is set.
///
/// # Safety
/// `bits` has at least `i / 64 + 1` words.
#[inline]
pub(crate) unsafe fn is_set(bits: *const u64, i: usize) -> bool {
    // SAFETY: caller's contract.
    unsafe { bits.add(i / 64).read() & (1u64 << (i % 64)) != 0 }
}

/// Clears and returns the lowest set bit at or after word `*from`, moving
/// `*from` to that bit's word.
///
/// # Safety
/// `bits` has a set bit at or after word `*from`, within its words.
#[inline]
pub(crate) unsafe fn take_lowest(bits: *mut u64, from: &mut u32) -> usize {
    let mut w = *from as usize;
    loop {
        // SAFETY: caller's contract: a set bit lies ahead, inside the bitmap.
        let v = unsafe { bits.add(w).read() };
        if v != 0 {
            // SAFETY: as above.
            unsafe { bits.add(w).write(v & (v - 1)) };
            *from = w as u32;
            return w * 64 + v.trailing_zeros() as usize;
        }
        w += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn bits_come_back_lowest_first_and_a_second_set_is_refused() {
        let mut words = [0u64; 3];
        let bits = words.as_mut_ptr();
        let mut from = 0;
        // SAFETY: indices below 192, inside the three words.
        unsafe {
            for i in [130, 5, 64, 191, 6] {
                assert!(set(bits, i));
            }
            assert!(!set(bits, 64), "a bit set twice");
            let got: Vec<usize> = (0..5).map(|_| take_lowest(bits, &mut from)).collect();
            assert_eq!(got, [5, 6, 64, 130, 191]);
        }
        assert_eq!(words, [0, 0, 0]);
        assert_eq!(from, 2);
    }

    #[test]
    fn a_pool_hands_out_zeroed_disjoint_bitmaps_and_reuses_them() {
        let mut chunks: Vec<Vec<u64>> = Vec::new();
        let mut map = |bytes: usize| {
            let mut v = std::vec![0u64; bytes / 8];
            let p = NonNull::new(v.as_mut_ptr().cast::<u8>());
            chunks.push(v);
            p
        };
        let mut pool = BitmapPool::new();
        let words = words_for(1024);
        assert_eq!(words, 16);
        let a = pool.alloc(words, &mut map);
        let b = pool.alloc(words, &mut map);
        assert!(!a.is_null() && !b.is_null());
        assert!(a as usize + words * 8 <= b as usize || b as usize + words * 8 <= a as usize);
        // SAFETY: both are bitmaps of `words` words from the pool.
        unsafe {
            a.add(words - 1).write(u64::MAX);
            a.write(7);
            pool.release(a, words);
            let c = pool.alloc(words, &mut map);
            assert_eq!(c, a, "a released bitmap is reused");
            assert!(
                (0..words).all(|i| c.add(i).read() == 0),
                "a reused bitmap is zero"
            );
        }
        let chunks_before = chunks.len();
        assert_eq!(chunks_before, 1);
        let none = |_: usize| None;
        let mut pool2 = BitmapPool::new();
        assert!(pool2.alloc(words, none).is_null());
    }
}
