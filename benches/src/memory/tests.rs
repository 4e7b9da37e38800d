//! Every scenario runs on the system allocator, and fails, rather than
//! posting a figure, on allocators that are broken in the ways it checks.

use core::alloc::{GlobalAlloc, Layout};
use std::alloc::System;
use std::sync::Mutex;

use super::*;
use crate::mode::Mode;

fn smoke(id: &str) -> Spec {
    specs(Mode::Smoke).into_iter().find(|s| s.id == id).unwrap()
}

/// Keeps the last freed block and hands it out again, for `alloc_zeroed`
/// too, without clearing it.
#[derive(Default)]
struct NoZero(Mutex<Option<(usize, usize)>>);

// SAFETY: (test allocator) blocks come from System with the caller's layout;
// a kept block is handed out only for the same layout.
unsafe impl GlobalAlloc for NoZero {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        match self.0.lock().unwrap().take() {
            Some((p, size)) if size == l.size() => p as *mut u8,
            Some((p, size)) => {
                // SAFETY: a kept System block of `size` bytes.
                unsafe { System.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
                // SAFETY: forwarded contract.
                unsafe { System.alloc(l) }
            }
            // SAFETY: forwarded contract.
            None => unsafe { System.alloc(l) },
        }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract (the bug: nothing is cleared).
        unsafe { self.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if let Some((q, size)) = self.0.lock().unwrap().replace((p as usize, l.size())) {
            // SAFETY: a kept System block of `size` bytes.
            unsafe { System.dealloc(q as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
        }
    }
}

/// Hands out the same block for every request up to 1 MiB.
struct Overlap(Mutex<usize>);

// SAFETY: (test allocator) deliberately broken: blocks overlap.
unsafe impl GlobalAlloc for Overlap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > 1 << 20 {
            // SAFETY: forwarded contract.
            return unsafe { System.alloc(l) };
        }
        let mut b = self.0.lock().unwrap();
        if *b == 0 {
            // SAFETY: a valid non-zero layout.
            *b = unsafe { System.alloc(Layout::from_size_align_unchecked(1 << 20, 4096)) } as usize;
        }
        *b as *mut u8
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if l.size() > 1 << 20 {
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(p, l) };
        }
    }
}

/// `realloc` that does not copy.
struct NoCopy;

// SAFETY: (test allocator) deliberately broken realloc; the rest is System.
unsafe impl GlobalAlloc for NoCopy {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded contract; the old contents are dropped (the bug).
        unsafe {
            let q = System.alloc_zeroed(Layout::from_size_align_unchecked(new, l.align()));
            System.dealloc(p, l);
            q
        }
    }
}

#[test]
fn every_scenario_runs_on_system_with_its_columns() {
    let hooks = Hooks {
        release: Some(|| {
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }),
        populate: None,
        background: None,
    };
    for spec in specs(Mode::Smoke) {
        let v = spec.run(&System, &hooks).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.len(), spec.cols().len(), "{}", spec.id);
        if let Some(planned) = spec.planned() {
            assert_eq!(*v.last().unwrap(), planned as f64, "{}", spec.id);
        }
    }
}

#[test]
fn broken_allocators_fail_instead_of_posting_figures() {
    let h = Hooks::default();
    for id in ["T1", "T2", "T4"] {
        let e = smoke(id).run(&NoZero::default(), &h).unwrap_err();
        assert!(e.contains("not 0"), "{id}: {e}");
    }
    for id in ["T5", "T6"] {
        let e = smoke(id).run(&Overlap(Mutex::new(0)), &h).unwrap_err();
        assert!(e.contains("overlap"), "{id}: {e}");
    }
    let e = smoke("T8").run(&NoCopy, &h).unwrap_err();
    assert!(e.contains("pattern lost"), "{e}");
}
