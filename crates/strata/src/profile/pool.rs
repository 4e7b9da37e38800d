//! Where sampled small blocks live: slots of whole OS pages in the
//! profiler's own mappings, outside the heap's arena. So a sampled block
//! needs no mark on any fast path: the sized `dealloc` finds it outside the
//! arena, C's `free` finds no class for it in the arena's map, and both go
//! to cold paths that ask the profiler first.
//!
//! Slots come in power-of-two numbers of pages (bucket `b`: `2^b` pages),
//! so a slot is aligned to every alignment a small size class serves, and
//! holds the class's whole size (a `realloc` within the class keeps it).
//!
//! # Invariants
//! - A free slot's first word links it to the next free slot of its
//!   bucket; a slot in use belongs to exactly one live record.
//! - Chunks are never unmapped: a slot's address stays a pool address.

use core::ptr;

use super::store::map_zeroed;

/// Buckets of 1, 2, 4, ... 128 pages: 512 KiB with 4 KiB pages, more than
/// the largest small class.
pub(crate) const BUCKETS: usize = 8;

/// Bytes mapped at a time for a bucket's slots (at least four slots).
const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy)]
struct Bucket {
    free: *mut u8,
    /// Unused rest of the newest chunk.
    next: *mut u8,
    end: *mut u8,
}

/// The slots, by bucket.
pub(crate) struct Pool {
    buckets: [Bucket; BUCKETS],
    mapped: usize,
    in_use: usize,
}

// SAFETY: the pool's pointers are into its own mappings; it is used under
// the profiler's lock.
unsafe impl Send for Pool {}

/// The bucket whose slots hold `bytes`, if any.
pub(crate) fn bucket_for(bytes: usize) -> Option<usize> {
    let page = strata_os::os_page_size();
    let pages = bytes.max(1).div_ceil(page).next_power_of_two();
    let b = pages.trailing_zeros() as usize;
    (b < BUCKETS).then_some(b)
}

/// The bytes of a slot of bucket `b`.
pub(crate) fn slot_bytes(b: usize) -> usize {
    strata_os::os_page_size() << b
}

impl Pool {
    pub(crate) const fn new() -> Self {
        Pool {
            buckets: [Bucket {
                free: ptr::null_mut(),
                next: ptr::null_mut(),
                end: ptr::null_mut(),
            }; BUCKETS],
            mapped: 0,
            in_use: 0,
        }
    }

    /// Bytes mapped for slots.
    pub(crate) fn mapped(&self) -> usize {
        self.mapped
    }

    /// Bytes of the slots in use.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// A slot of bucket `b`, or null if the OS refused memory.
    pub(crate) fn take(&mut self, b: usize) -> *mut u8 {
        let size = slot_bytes(b);
        let k = &mut self.buckets[b];
        let p = if !k.free.is_null() {
            let p = k.free;
            // SAFETY: a free slot's first word is the next free slot.
            k.free = unsafe { (p as *mut *mut u8).read() };
            p
        } else {
            if k.next == k.end {
                let bytes = CHUNK.max(4 * size);
                let m = map_zeroed(bytes);
                if m.is_null() {
                    return ptr::null_mut();
                }
                self.mapped += bytes;
                k.next = m;
                // SAFETY: one past the end of the new mapping.
                k.end = unsafe { m.add(bytes) };
            }
            let p = k.next;
            // SAFETY: chunks are whole multiples of the slot size.
            k.next = unsafe { p.add(size) };
            p
        };
        self.in_use += size;
        p
    }

    /// Gives back slot `p` of bucket `b`.
    ///
    /// # Safety
    /// `p` came from [`Pool::take`] with `b` and is used by nobody.
    pub(crate) unsafe fn give(&mut self, p: *mut u8, b: usize) {
        let k = &mut self.buckets[b];
        // SAFETY: our slot, writable, at least a page.
        unsafe { (p as *mut *mut u8).write(k.free) };
        k.free = p;
        self.in_use -= slot_bytes(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_reused() {
        let mut pool = Pool::new();
        let page = strata_os::os_page_size();
        assert_eq!(bucket_for(1), Some(0));
        assert_eq!(bucket_for(page), Some(0));
        assert_eq!(bucket_for(page + 1), Some(1));
        assert_eq!(
            bucket_for(256 << 10).map(slot_bytes),
            Some((256usize << 10).max(page))
        );
        let a = pool.take(2);
        let b = pool.take(2);
        assert_ne!(a, b);
        assert_eq!(a as usize % page, 0);
        // SAFETY: slots of bucket 2 just taken.
        unsafe {
            a.write_bytes(0xAB, slot_bytes(2));
            pool.give(a, 2);
        }
        assert_eq!(pool.take(2), a);
        assert_eq!(pool.in_use(), 2 * slot_bytes(2));
    }
}
