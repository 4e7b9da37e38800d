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
    /// Calls of `alloc_batch` (and of `alloc_batch_apart`).
    pub(crate) batch_calls: AtomicIsize,
    /// Calls of `alloc_batch_apart`.
    pub(crate) apart_calls: AtomicIsize,
}

impl FakeBackend {
    pub(crate) fn new() -> Self {
        FakeBackend {
            os: FakeOs::new(),
            outstanding: AtomicIsize::new(0),
            batch_calls: AtomicIsize::new(0),
            apart_calls: AtomicIsize::new(0),
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
    fn alloc_batch_apart(&self, class: u8, out: &mut [*mut u8]) -> usize {
        self.apart_calls.fetch_add(1, Ordering::Relaxed);
        self.alloc_batch(class, out)
    }
    fn alloc_batch(&self, class: u8, out: &mut [*mut u8]) -> usize {
        self.batch_calls.fetch_add(1, Ordering::Relaxed);
        let layout = Layout::from_size_align(SIZES[class as usize], 16).unwrap();
        for o in out.iter_mut() {
            // SAFETY: non-zero layout.
            *o = unsafe { System.alloc(layout) };
            assert!(!o.is_null());
        }
        self.outstanding
            .fetch_add(out.len() as isize, Ordering::Relaxed);
        out.len()
    }
    unsafe fn free_batch(&self, class: u8, objs: &[*mut u8]) {
        let layout = Layout::from_size_align(SIZES[class as usize], 16).unwrap();
        for &p in objs {
            assert!(!p.is_null(), "a null pointer handed to the backend");
            // SAFETY: an object we handed out, allocated with this layout.
            unsafe { System.dealloc(p, layout) };
        }
        self.outstanding
            .fetch_sub(objs.len() as isize, Ordering::Relaxed);
    }
}
