//! A pool of fixed-size metadata records (spans, pagemap nodes' owners, thread
//! caches) carved from memory mapped straight from the OS.
//!
//! The allocator may never allocate its own bookkeeping through the global
//! allocator, and it must not make a system call under the page heap's lock.
//! A [`MetaPool`] is therefore its own small allocator: records are bumped out
//! of chunks mapped with [`Os::map`] and recycled through an intrusive free
//! list. [`MetaPool::reserve`] lets a caller map ahead of time, outside its
//! own locks, so that `alloc` under a lock almost never maps.
//!
//! # Invariants
//! - Every record is aligned for `T` and lies in a chunk that is never unmapped
//!   (metadata is small and reused; returning it would risk dangling readers).
//! - A record on the free list is not in use; its first word holds the link.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use strata_os::{align_up, Os};

use crate::lock::Lock;
use crate::sync::{AtomicUsize, Ordering};

/// Records are carved from chunks of at least this size.
const CHUNK: usize = 64 * 1024;

struct PoolState {
    free: *mut u8,
    bump: usize,
    end: usize,
    free_count: usize,
    in_use: usize,
    mapped: usize,
}

// SAFETY: the raw pointers point into memory owned by the pool; the state is
// only reached under the pool's lock.
unsafe impl Send for PoolState {}

/// A pool of `T`-sized, `T`-aligned records backed by OS memory.
pub struct MetaPool<T> {
    state: Lock<PoolState>,
    /// Records that can be handed out without mapping, as of the last change
    /// under the lock: lets `reserve` skip the lock when there are plenty.
    available: AtomicUsize,
    _marker: PhantomData<*mut T>,
}

// SAFETY: all shared state is behind the lock; records are handed out as raw
// pointers whose use is the caller's responsibility.
unsafe impl<T> Sync for MetaPool<T> {}
// SAFETY: as above.
unsafe impl<T> Send for MetaPool<T> {}

impl<T> MetaPool<T> {
    const SLOT: usize = {
        let s = if size_of::<T>() < size_of::<usize>() {
            size_of::<usize>()
        } else {
            size_of::<T>()
        };
        let a = if align_of::<T>() < align_of::<usize>() {
            align_of::<usize>()
        } else {
            align_of::<T>()
        };
        (s + a - 1) & !(a - 1)
    };

    crate::const_unless_loom! {
        /// An empty pool; it maps nothing until first used.
        pub fn new() -> Self {
            MetaPool {
                state: Lock::new(PoolState {
                    free: core::ptr::null_mut(),
                    bump: 0,
                    end: 0,
                    free_count: 0,
                    in_use: 0,
                    mapped: 0,
                }),
                available: AtomicUsize::new(0),
                _marker: PhantomData,
            }
        }
    }

    /// Makes sure at least `n` records can be handed out without mapping.
    /// Call it before taking a lock under which [`MetaPool::alloc`] will run.
    /// Returns false if the OS refused the memory (they cannot be had).
    pub fn reserve<O: Os + ?Sized>(&self, os: &O, n: usize) -> bool {
        if self.available() >= n {
            return true;
        }
        let available = {
            let s = self.state.lock();
            s.free_count + (s.end - s.bump) / Self::SLOT
        };
        if available >= n {
            return true;
        }
        let len = chunk_len(Self::SLOT * n, os.page_size());
        // Map outside the lock, then donate the chunk.
        let Ok(chunk) = os.map(len, 1) else {
            return false;
        };
        let mut s = self.state.lock();
        Self::donate(&mut s, chunk, len);
        self.publish(&s);
        true
    }

    /// Records that can be handed out without mapping, as of the last
    /// change. Exact for a caller that serialises every `alloc` of this
    /// pool under a lock of its own and reads it under that lock: only
    /// `reserve` can change it meanwhile, and only upwards.
    #[inline]
    pub fn available(&self) -> usize {
        self.available.load(Ordering::Relaxed)
    }

    fn donate(s: &mut PoolState, chunk: NonNull<u8>, len: usize) {
        // Whatever remained of the old bump region goes on the free list.
        while s.end - s.bump >= Self::SLOT {
            let rec = s.bump as *mut u8;
            // SAFETY: rec is an unused, aligned slot of a live chunk.
            unsafe { (rec as *mut *mut u8).write(s.free) };
            s.free = rec;
            s.free_count += 1;
            s.bump += Self::SLOT;
        }
        let start = chunk.as_ptr() as usize;
        s.bump = align_up(start, Self::SLOT.min(4096).next_power_of_two()).unwrap_or(start);
        s.end = start + len;
        s.mapped += len;
    }

    /// Hands out one record, uninitialised (in fact zero or stale bytes).
    /// Returns `None` only when the OS refuses memory.
    pub fn alloc<O: Os + ?Sized>(&self, os: &O) -> Option<NonNull<T>> {
        let mut s = self.state.lock();
        if !s.free.is_null() {
            let rec = s.free;
            // SAFETY: records on the free list hold the next link in their
            // first word.
            s.free = unsafe { (rec as *mut *mut u8).read() };
            s.free_count -= 1;
            s.in_use += 1;
            self.publish(&s);
            return NonNull::new(rec.cast());
        }
        if s.end - s.bump < Self::SLOT {
            let len = chunk_len(Self::SLOT, os.page_size());
            // Rare: a caller did not reserve. Correct, only slower.
            let chunk = os.map(len, 1).ok()?;
            Self::donate(&mut s, chunk, len);
        }
        let rec = s.bump as *mut T;
        s.bump += Self::SLOT;
        s.in_use += 1;
        self.publish(&s);
        NonNull::new(rec)
    }

    /// Returns a record to the pool.
    ///
    /// # Safety
    /// `rec` came from this pool's `alloc` and is no longer used.
    pub unsafe fn free(&self, rec: NonNull<T>) {
        let mut s = self.state.lock();
        let p = rec.as_ptr().cast::<*mut u8>();
        // SAFETY: the record is ours again and big enough for a pointer.
        unsafe { p.write(s.free) };
        s.free = p.cast();
        s.free_count += 1;
        s.in_use -= 1;
        self.publish(&s);
    }

    fn publish(&self, s: &PoolState) {
        self.available.store(
            s.free_count + (s.end - s.bump) / Self::SLOT,
            Ordering::Relaxed,
        );
    }

    /// Records handed out and not yet returned.
    pub fn in_use(&self) -> usize {
        self.state.lock().in_use
    }

    /// Bytes of OS memory this pool holds.
    pub fn mapped_bytes(&self) -> usize {
        self.state.lock().mapped
    }

    /// The pool's lock, for `fork` handling.
    pub fn lock_for_fork(&self) -> &impl crate::ForkLock {
        &self.state
    }
}

impl<T> Default for MetaPool<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn chunk_len(min: usize, page: usize) -> usize {
    align_up(min.max(CHUNK), page).unwrap_or(CHUNK)
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use strata_os::FakeOs;

    #[repr(align(64))]
    struct Rec([u8; 100]);

    #[test]
    fn records_are_aligned_disjoint_and_recycled() {
        let os = FakeOs::new();
        let pool: MetaPool<Rec> = MetaPool::new();
        pool.reserve(&os, 10);
        let mut seen = HashSet::new();
        let mut live = Vec::new();
        for _ in 0..2000 {
            let r = pool.alloc(&os).unwrap();
            assert_eq!(r.as_ptr() as usize % 64, 0);
            assert!(seen.insert(r.as_ptr() as usize), "record handed out twice");
            // SAFETY: the record is ours.
            unsafe { (*r.as_ptr()).0 = [7; 100] };
            live.push(r);
        }
        for w in live.iter() {
            // SAFETY: live records.
            assert_eq!(unsafe { (*w.as_ptr()).0[99] }, 7);
        }
        assert_eq!(pool.in_use(), 2000);
        let mapped = pool.mapped_bytes();
        for r in live.drain(..) {
            // SAFETY: from this pool, no longer used.
            unsafe { pool.free(r) };
        }
        assert_eq!(pool.in_use(), 0);
        for _ in 0..2000 {
            live.push(pool.alloc(&os).unwrap());
        }
        assert_eq!(pool.mapped_bytes(), mapped, "freed records were not reused");
    }
}
