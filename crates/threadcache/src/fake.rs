//! A fake backend for the thread caches' tests: objects come from the
//! system allocator, and every object handed out is counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use strata_os::FakeOs;

use crate::Backend;

/// Object size of each class (class 0 unused).
pub(crate) const SIZES: [usize; 5] = [0, 16, 64, 256, 4096];

pub(crate) struct FakeBackend {
    os: FakeOs,
    /// Objects handed out and not yet returned.
    pub(crate) outstanding: AtomicIsize,
    /// Calls of `alloc_batch`.
    pub(crate) batch_calls: AtomicIsize,
}

impl FakeBackend {
    pub(crate) fn new() -> Self {
        FakeBackend {
            os: FakeOs::new(),
            outstanding: AtomicIsize::new(0),
            batch_calls: AtomicIsize::new(0),
        }
    }
}

// SAFETY: objects are distinct System allocations of the class size (>= 16).
unsafe impl Backend for FakeBackend {
    type Os = FakeOs;
    fn os(&self) -> &FakeOs {
        &self.os
    }
    fn num_classes(&self) -> usize {
        SIZES.len()
    }
    fn class_size(&self, class: u8) -> usize {
        SIZES[class as usize]
    }
    fn batch_size(&self, _class: u8) -> usize {
        8
    }
    fn alloc_batch(&self, class: u8, n: usize) -> (*mut u8, usize) {
        self.batch_calls.fetch_add(1, Ordering::Relaxed);
        let layout = Layout::from_size_align(SIZES[class as usize], 16).unwrap();
        let mut head = core::ptr::null_mut();
        for _ in 0..n {
            // SAFETY: non-zero layout.
            let p = unsafe { System.alloc(layout) };
            // SAFETY: fresh object, at least 16 bytes.
            unsafe { strata_os::link::write(p, head) };
            head = p;
        }
        self.outstanding.fetch_add(n as isize, Ordering::Relaxed);
        (head, n)
    }
    unsafe fn free_batch(&self, class: u8, head: *mut u8, n: usize) {
        let layout = Layout::from_size_align(SIZES[class as usize], 16).unwrap();
        let mut p = head;
        for _ in 0..n {
            // SAFETY: n linked objects we handed out.
            let next = unsafe { strata_os::link::read(p) };
            // SAFETY: allocated with this layout.
            unsafe { System.dealloc(p, layout) };
            p = next;
        }
        assert!(
            p.is_null(),
            "a list handed to the backend is not null-terminated"
        );
        self.outstanding.fetch_sub(n as isize, Ordering::Relaxed);
    }
}
