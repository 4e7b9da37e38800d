//! Content-checked blocks for the mimalloc-bench-style workloads.
//!
//! A [`Block`] is allocated with its first and last word stamped: the first
//! holds its size mixed with its address, the last a check word derived from
//! both. Freeing it checks the stamps first, so an allocator that hands out
//! overlapping blocks, or reuses a block that is still live, is caught with a
//! message naming the block instead of being timed. The size can be read back
//! from the address alone ([`Block::from_addr`]), so workloads pass plain
//! addresses between threads. Stamping costs two stores and checking two
//! loads per block.

use core::alloc::GlobalAlloc;

use strata_testkit::rng::Rng;

use super::{fresh, layout};

/// Smallest block that can hold both stamps without them overlapping.
pub const MIN_BLOCK: usize = 16;

/// Largest block a workload may use (a bad size read back is caught by it).
const MAX_BLOCK: usize = 1 << 20;

fn head_word(addr: usize, size: usize) -> u64 {
    (addr as u64).rotate_left(29) ^ size as u64
}

fn tail_word(addr: usize, size: usize) -> u64 {
    ((addr as u64) ^ 0x5EED_0000_0000_0000 ^ (size as u64).rotate_left(40))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A live, stamped block of `size` bytes.
#[derive(Clone, Copy, Debug)]
pub struct Block {
    p: *mut u8,
    size: usize,
}

// SAFETY: a Block is an owned allocation, like a Box: whoever holds it may
// free it, from any thread (the allocators compared are all Sync).
unsafe impl Send for Block {}

impl Block {
    /// Allocates `size >= MIN_BLOCK` bytes from `a` and stamps them.
    #[inline]
    pub fn new<A: GlobalAlloc + ?Sized>(a: &A, size: usize) -> Block {
        assert!(
            (MIN_BLOCK..=MAX_BLOCK).contains(&size),
            "block size {size} out of range"
        );
        let p = fresh(a, layout(size));
        let addr = p as usize;
        // SAFETY: `p` is a fresh block of `size >= 16` bytes, so both
        // unaligned 8-byte stores are inside it and do not overlap.
        unsafe {
            p.cast::<u64>().write_unaligned(head_word(addr, size));
            p.add(size - 8)
                .cast::<u64>()
                .write_unaligned(tail_word(addr, size));
        }
        Block { p, size }
    }

    /// The block's address, to hand to another thread.
    #[inline]
    pub fn addr(self) -> usize {
        self.p as usize
    }

    /// The block's size in bytes.
    #[inline]
    pub fn size(self) -> usize {
        self.size
    }

    /// The block at `addr`, its size read back from its first word.
    ///
    /// # Safety
    /// `addr` must be the address of a live [`Block`] (its first word intact,
    /// or the check in [`Block::free`] reports it).
    #[inline]
    pub unsafe fn from_addr(addr: usize) -> Block {
        let p = addr as *mut u8;
        // SAFETY: the caller guarantees a live block of at least 16 bytes.
        let head = unsafe { p.cast::<u64>().read_unaligned() };
        let size = (head ^ head_word(addr, 0)) as usize;
        if !(MIN_BLOCK..=MAX_BLOCK).contains(&size) {
            panic!("block {p:p}: first word {head:#x} was overwritten (size reads {size})");
        }
        Block { p, size }
    }

    /// Checks both stamps; panics naming the block if either was overwritten.
    #[inline]
    pub fn check(self) {
        let addr = self.addr();
        // SAFETY: `self` is a live block of `size >= 16` bytes (type invariant).
        let (head, tail) = unsafe {
            (
                self.p.cast::<u64>().read_unaligned(),
                self.p.add(self.size - 8).cast::<u64>().read_unaligned(),
            )
        };
        if head != head_word(addr, self.size) || tail != tail_word(addr, self.size) {
            panic!(
                "block {:p} of {} B was overwritten while live (first word {head:#x}, \
                 last word {tail:#x}): the allocator handed out overlapping memory",
                self.p, self.size
            );
        }
    }

    /// Checks the stamps and frees the block.
    ///
    /// # Safety
    /// The block must be live, allocated from `a`, and not freed again.
    #[inline]
    pub unsafe fn free<A: GlobalAlloc + ?Sized>(self, a: &A) {
        self.check();
        // SAFETY: the caller guarantees `p` is live and came from `a` with
        // `layout(size)` (every Block is allocated that way in `new`).
        unsafe { a.dealloc(self.p, layout(self.size)) };
    }
}

/// [`TABLE`] values (sizes, lifetimes) drawn by `draw` from a generator
/// seeded with `seed`, to index with the low bits of a random number: a draw
/// in the timed loop is then one load, whatever the distribution.
pub fn table(seed: u64, draw: impl FnMut(&mut Rng) -> usize) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut draw = draw;
    (0..TABLE).map(|_| draw(&mut rng)).collect()
}

/// Length of a [`table`] (a power of two).
pub const TABLE: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn stamps_round_trip() {
        for size in [16, 17, 100, 4096, 70_000] {
            let b = Block::new(&System, size);
            // SAFETY: `b` is live and stamped.
            let back = unsafe { Block::from_addr(b.addr()) };
            assert_eq!(back.size(), size);
            // SAFETY: freed once, allocated from System.
            unsafe { back.free(&System) };
        }
    }

    #[test]
    #[should_panic(expected = "overwritten")]
    fn overwrite_is_caught() {
        let b = Block::new(&System, 64);
        // SAFETY: byte 60 is inside the live 64-byte block (in its last word).
        unsafe { b.p.add(60).write(0xAA) };
        b.check();
    }
}
