//! A fake OS for the tests of the layers above: memory comes from the system
//! allocator, "release" and "zero" write zeros, and every call is counted.
//! Its page size is chosen at construction (4 KiB by default; 16 and 64 KiB
//! stand for the arm64 and ppc64le kernels that use them), and it holds its
//! callers to it as the kernel does: lengths of maps and remaps, and whole
//! ranges of releases, must be multiples of it.
//!
//! It keeps a table of live mappings so that tests can assert nothing leaked
//! and that unmaps match maps exactly.

use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::vec::Vec;

use crate::counters::OsCounters;
use crate::{Os, OsError};

/// An [`Os`] backed by `std::alloc::System`, for tests only.
pub struct FakeOs {
    counters: OsCounters,
    live: Mutex<Vec<(usize, usize, usize)>>, // (start, len, align)
    limit: usize,
    page: usize,
    clock_ms: std::sync::atomic::AtomicU64,
}

impl FakeOs {
    /// A fake OS that will map at most `limit` bytes in total (to test
    /// out-of-memory handling).
    pub fn with_limit(limit: usize) -> Self {
        FakeOs {
            counters: OsCounters::new(),
            live: Mutex::new(Vec::new()),
            limit,
            page: 4096,
            clock_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A fake OS whose pages are `page` bytes (a power of two from 4 KiB to
    /// [`crate::MAX_OS_PAGE`]).
    pub fn with_page_size(page: usize) -> Self {
        assert!(page.is_power_of_two() && (4096..=crate::MAX_OS_PAGE).contains(&page));
        let mut os = Self::new();
        os.page = page;
        os
    }

    /// A fake OS with no practical limit.
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// Moves the fake clock forward (it starts at 0 and never moves alone).
    pub fn advance_ms(&self, ms: u64) {
        self.clock_ms
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes currently mapped.
    pub fn mapped_bytes(&self) -> usize {
        self.live.lock().unwrap().iter().map(|m| m.1).sum()
    }

    /// Number of live mappings.
    pub fn live_mappings(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    fn find(&self, ptr: usize, len: usize) -> Option<(usize, usize, usize)> {
        self.live
            .lock()
            .unwrap()
            .iter()
            .copied()
            .find(|&(s, l, _)| ptr >= s && ptr + len <= s + l)
    }
}

impl Default for FakeOs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FakeOs {
    fn drop(&mut self) {
        for (s, l, a) in self.live.get_mut().unwrap().drain(..) {
            // SAFETY: each entry was allocated by System with this layout.
            unsafe { System.dealloc(s as *mut u8, Layout::from_size_align_unchecked(l, a)) };
        }
    }
}

unsafe impl Os for FakeOs {
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        if len == 0 || len % self.page != 0 || !align.is_power_of_two() {
            return Err(OsError::InvalidRequest);
        }
        if self.mapped_bytes().saturating_add(len) > self.limit {
            return Err(OsError::OutOfMemory);
        }
        let align = align.max(self.page);
        let layout = Layout::from_size_align(len, align).map_err(|_| OsError::OutOfMemory)?;
        // SAFETY: non-zero size.
        let p = unsafe { System.alloc_zeroed(layout) };
        let p = NonNull::new(p).ok_or(OsError::OutOfMemory)?;
        self.live
            .lock()
            .unwrap()
            .push((p.as_ptr() as usize, len, align));
        self.counters.on_map(len);
        Ok(p)
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        let mut live = self.live.lock().unwrap();
        let i = live
            .iter()
            .position(|&(s, l, _)| s == ptr.as_ptr() as usize && l == len)
            .expect("FakeOs: unmap of a range that is not a whole live mapping");
        let (s, l, a) = live.swap_remove(i);
        // SAFETY: allocated by System with this layout.
        unsafe { System.dealloc(s as *mut u8, Layout::from_size_align_unchecked(l, a)) };
        self.counters.on_unmap(len);
    }

    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        assert!(
            self.find(ptr.as_ptr() as usize, len).is_some(),
            "FakeOs: release outside a mapping"
        );
        if ptr.as_ptr() as usize % self.page != 0 || len % self.page != 0 {
            return Err(OsError::InvalidRequest);
        }
        // SAFETY: inside a live mapping (checked above).
        unsafe { ptr.as_ptr().write_bytes(0, len) };
        self.counters.on_release(len);
        Ok(())
    }

    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize {
        assert!(
            self.find(ptr.as_ptr() as usize, len).is_some(),
            "FakeOs: zero outside a mapping"
        );
        // SAFETY: inside a live mapping.
        unsafe { ptr.as_ptr().write_bytes(0, len) };
        self.counters.on_zero_written(len);
        len
    }

    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        assert!(
            self.find(ptr.as_ptr() as usize, len).is_some(),
            "FakeOs: populate outside a mapping"
        );
        self.counters.on_populate();
        Ok(())
    }

    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
        prepare: &mut dyn FnMut(NonNull<u8>, usize) -> bool,
    ) -> Result<NonNull<u8>, OsError> {
        self.find(ptr.as_ptr() as usize, old_len)
            .ok_or(OsError::InvalidRequest)?;
        if old_len % self.page != 0 || new_len % self.page != 0 {
            return Err(OsError::InvalidRequest);
        }
        let q = self.map(new_len, align)?;
        if !prepare(q, new_len) {
            // SAFETY: just mapped, unused.
            unsafe { self.unmap(q, new_len) };
            return Err(OsError::OutOfMemory);
        }
        // SAFETY: both ranges are live and distinct.
        unsafe {
            core::ptr::copy_nonoverlapping(ptr.as_ptr(), q.as_ptr(), old_len.min(new_len));
            self.unmap(ptr, old_len);
        }
        self.counters.on_remap(0, 0);
        Ok(q)
    }

    fn now_ms(&self) -> u64 {
        self.clock_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn counters(&self) -> &OsCounters {
        &self.counters
    }

    fn page_size(&self) -> usize {
        self.page
    }
}
