//! The OS layers the fuzz interpreters run over.
//!
//! [`FakeOs`] takes its memory from the system allocator, which zero-fills
//! every mapping by writing it: a page heap maps a 16 MiB pagemap node and
//! 2 MiB chunks, so just setting up a heap costs about 10 ms, and a huge
//! block far more. The fuzz targets therefore run over [`CheckedOs`]: the
//! real [`SystemOs`] (`mmap`, `madvise`, `mremap`: untouched pages cost
//! nothing) behind a table of live mappings that every call is checked
//! against, as `FakeOs` checks them, with a clock the test moves by hand.
//! The replay tests run every input over both.
//!
//! Also included by the central layer's interpreter (`#[path]`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use strata_os::{FakeOs, Os, OsCounters, OsError, SystemOs};

/// What the interpreters need from an OS layer besides [`Os`].
pub trait TestOs: Os + Sized {
    /// A fresh instance.
    fn fresh() -> Self;
    /// Moves the clock that [`Os::now_ms`] reads forward by `ms`.
    fn advance(&self, ms: u64);
    /// Bytes currently mapped (heap memory and metadata).
    fn mapped(&self) -> usize;
}

impl TestOs for FakeOs {
    fn fresh() -> Self {
        FakeOs::new()
    }
    fn advance(&self, ms: u64) {
        self.advance_ms(ms);
    }
    fn mapped(&self) -> usize {
        self.mapped_bytes()
    }
}

/// [`SystemOs`] with checked calls and a manual clock. Unmaps whatever is
/// still mapped when dropped (a page heap never unmaps its own memory).
pub struct CheckedOs {
    sys: SystemOs,
    /// Live mappings: (start, len).
    live: Mutex<Vec<(usize, usize)>>,
    clock: AtomicU64,
}

impl CheckedOs {
    /// Checks that live mappings cover `[ptr, ptr + len)` (the heap merges
    /// spans across adjacent mappings, so one range may take several).
    fn covered(&self, ptr: NonNull<u8>, len: usize, what: &str) {
        let (p, end) = (ptr.as_ptr() as usize, ptr.as_ptr() as usize + len);
        let live = self.live.lock().unwrap();
        let mut at = p;
        while at < end {
            let Some(&(s, l)) = live.iter().find(|&&(s, l)| s <= at && at < s + l) else {
                panic!("CheckedOs: {what} of {p:#x}+{len:#x}: {at:#x} is not mapped");
            };
            at = s + l;
        }
    }

    fn forget(&self, ptr: NonNull<u8>, len: usize, what: &str) {
        let p = ptr.as_ptr() as usize;
        let mut live = self.live.lock().unwrap();
        let Some(i) = live.iter().position(|&m| m == (p, len)) else {
            panic!("CheckedOs: {what} of {p:#x}+{len:#x}, not a whole live mapping");
        };
        live.swap_remove(i);
    }
}

impl TestOs for CheckedOs {
    fn fresh() -> Self {
        CheckedOs {
            sys: SystemOs::new(),
            live: Mutex::new(Vec::new()),
            clock: AtomicU64::new(0),
        }
    }
    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::Relaxed);
    }
    fn mapped(&self) -> usize {
        self.live.lock().unwrap().iter().map(|m| m.1).sum()
    }
}

impl Drop for CheckedOs {
    fn drop(&mut self) {
        for (s, l) in self.live.get_mut().unwrap().drain(..) {
            // SAFETY: a whole mapping made by `sys`; its owner (the heap) is
            // gone, since the heap owns this OS layer.
            unsafe { self.sys.unmap(NonNull::new(s as *mut u8).unwrap(), l) };
        }
    }
}

// SAFETY: every call is forwarded to `SystemOs`, which keeps the promises;
// the table only adds checks.
unsafe impl Os for CheckedOs {
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        let p = self.sys.map(len, align)?;
        assert_eq!(p.as_ptr() as usize % align, 0, "CheckedOs: misaligned map");
        self.live.lock().unwrap().push((p.as_ptr() as usize, len));
        Ok(p)
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        self.forget(ptr, len, "unmap");
        // SAFETY: a whole live mapping (checked), given up by the caller.
        unsafe { self.sys.unmap(ptr, len) };
    }

    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        self.covered(ptr, len, "release");
        // SAFETY: inside a live mapping (checked); the caller's contract.
        unsafe { self.sys.release(ptr, len) }
    }

    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize {
        self.covered(ptr, len, "zero");
        // SAFETY: inside a live mapping (checked); the caller's contract.
        unsafe { self.sys.zero(ptr, len) }
    }

    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        self.covered(ptr, len, "populate");
        // SAFETY: inside a live mapping (checked).
        unsafe { self.sys.populate(ptr, len) }
    }

    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
    ) -> Result<NonNull<u8>, OsError> {
        self.forget(ptr, old_len, "remap");
        // SAFETY: a whole live mapping (checked); the caller's contract.
        let r = unsafe { self.sys.remap(ptr, old_len, new_len, align) };
        let (at, len) = match r {
            Ok(q) => (q.as_ptr() as usize, new_len),
            Err(_) => (ptr.as_ptr() as usize, old_len),
        };
        self.live.lock().unwrap().push((at, len));
        r
    }

    fn now_ms(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    unsafe fn hint_huge_pages(&self, ptr: NonNull<u8>, len: usize, huge: bool) {
        self.covered(ptr, len, "hint_huge_pages");
        // SAFETY: inside a live mapping (checked).
        unsafe { self.sys.hint_huge_pages(ptr, len, huge) };
    }

    fn counters(&self) -> &OsCounters {
        self.sys.counters()
    }
}
