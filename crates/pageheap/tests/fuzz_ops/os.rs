//! The OS layers the fuzz interpreters run over.
//!
//! [`FakeOs`] takes its memory from the system allocator, which zero-fills
//! every mapping by writing it: a page heap maps a 16 MiB pagemap node and
//! 2 MiB chunks, so just setting up a heap costs about 10 ms, and where its
//! mappings land (next to each other or not) depends on the allocator. The
//! fuzz targets run over [`ArenaOs`] instead: real anonymous mappings
//! (untouched pages cost nothing) placed one after another in an address
//! range reserved for the instance, so that the layout, and so every crash,
//! is the same on every run, and mappings are often adjacent (which the heap
//! must cope with). Every call is checked against the table of live
//! mappings, as `FakeOs` checks them, and the clock moves by hand. The
//! replay tests run every input over both.
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

/// Address space one [`ArenaOs`] reserves. Never reused within an instance.
const ARENA: usize = 16 << 30;
/// The arena starts at a multiple of this, so that the pagemap's leaves
/// (1 GiB of address space each) cut it the same way on every run.
const ARENA_ALIGN: usize = 1 << 30;
const OS_PAGE: usize = 4096;

/// Anonymous mappings at deterministic places, checked calls, a manual
/// clock. Madvise, zeroing and populating go through [`SystemOs`].
pub struct ArenaOs {
    sys: SystemOs,
    /// The whole reservation (unmapped on drop) and the aligned arena in it.
    raw: usize,
    base: usize,
    state: Mutex<Arena>,
    clock: AtomicU64,
}

struct Arena {
    /// Where the next mapping goes (at the earliest).
    next: usize,
    /// Live mappings: (start, len).
    live: Vec<(usize, usize)>,
}

/// Maps fresh zero pages (`rw`) or drops them, keeping the range reserved.
fn map_fixed(addr: usize, len: usize, rw: bool) -> bool {
    let prot = if rw {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_NONE
    };
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED;
    // SAFETY: callers pass a range inside this instance's reservation, which
    // nothing else maps.
    let p = unsafe { libc::mmap(addr as *mut libc::c_void, len, prot, flags, -1, 0) };
    p != libc::MAP_FAILED
}

impl ArenaOs {
    fn take(&self, ptr: NonNull<u8>, len: usize, what: &str) -> usize {
        let p = ptr.as_ptr() as usize;
        let mut st = self.state.lock().unwrap();
        let Some(i) = st.live.iter().position(|&m| m == (p, len)) else {
            panic!("ArenaOs: {what} of {p:#x}+{len:#x}, not a whole live mapping");
        };
        st.live.swap_remove(i);
        p
    }

    /// Checks that live mappings cover `[ptr, ptr + len)` (the heap merges
    /// spans across adjacent mappings, so one range may take several).
    fn covered(&self, ptr: NonNull<u8>, len: usize, what: &str) {
        let (p, end) = (ptr.as_ptr() as usize, ptr.as_ptr() as usize + len);
        let st = self.state.lock().unwrap();
        let mut at = p;
        while at < end {
            let Some(&(s, l)) = st.live.iter().find(|&&(s, l)| s <= at && at < s + l) else {
                panic!("ArenaOs: {what} of {p:#x}+{len:#x}: {at:#x} is not mapped");
            };
            at = s + l;
        }
    }
}

impl TestOs for ArenaOs {
    fn fresh() -> Self {
        let len = ARENA + ARENA_ALIGN;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a new reservation anywhere; the result is checked.
        let raw = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, flags, -1, 0) };
        assert!(raw != libc::MAP_FAILED, "ArenaOs: cannot reserve the arena");
        let base = (raw as usize).next_multiple_of(ARENA_ALIGN);
        ArenaOs {
            sys: SystemOs::new(),
            raw: raw as usize,
            base,
            state: Mutex::new(Arena {
                next: base,
                live: Vec::new(),
            }),
            clock: AtomicU64::new(0),
        }
    }
    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::Relaxed);
    }
    fn mapped(&self) -> usize {
        self.state.lock().unwrap().live.iter().map(|m| m.1).sum()
    }
}

impl Drop for ArenaOs {
    fn drop(&mut self) {
        // SAFETY: the whole reservation made in `fresh`; its user (the heap)
        // is gone, since the heap owns this OS layer.
        unsafe { libc::munmap(self.raw as *mut libc::c_void, ARENA + ARENA_ALIGN) };
    }
}

// SAFETY: mappings are fresh anonymous memory (zero), aligned as asked, and
// stay until unmapped; release and zero go through `SystemOs`.
unsafe impl Os for ArenaOs {
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        if len == 0 || len % OS_PAGE != 0 || !align.is_power_of_two() {
            return Err(OsError::InvalidRequest);
        }
        let mut st = self.state.lock().unwrap();
        let start = st.next.next_multiple_of(align.max(OS_PAGE));
        let end = start.checked_add(len).ok_or(OsError::OutOfMemory)?;
        if end > self.base + ARENA || !map_fixed(start, len, true) {
            return Err(OsError::OutOfMemory);
        }
        st.next = end;
        st.live.push((start, len));
        NonNull::new(start as *mut u8).ok_or(OsError::OutOfMemory)
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        let p = self.take(ptr, len, "unmap");
        assert!(map_fixed(p, len, false), "ArenaOs: unmap failed");
    }

    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        self.covered(ptr, len, "release");
        // SAFETY: inside live mappings (checked); the caller's contract.
        unsafe { self.sys.release(ptr, len) }
    }

    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize {
        self.covered(ptr, len, "zero");
        // SAFETY: inside live mappings (checked); the caller's contract.
        unsafe { self.sys.zero(ptr, len) }
    }

    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        self.covered(ptr, len, "populate");
        // SAFETY: inside live mappings (checked).
        unsafe { self.sys.populate(ptr, len) }
    }

    /// In place when the alignment allows (shrinking, or growing the last
    /// mapping), else a new mapping with the contents copied.
    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
        prepare: &mut dyn FnMut(NonNull<u8>, usize) -> bool,
    ) -> Result<NonNull<u8>, OsError> {
        if new_len == 0 || new_len % OS_PAGE != 0 || !align.is_power_of_two() {
            return Err(OsError::InvalidRequest);
        }
        let p = self.take(ptr, old_len, "remap");
        if p % align == 0 && prepare(ptr, new_len) {
            let mut st = self.state.lock().unwrap();
            let in_place = if new_len <= old_len {
                new_len == old_len || map_fixed(p + new_len, old_len - new_len, false)
            } else {
                p + old_len == st.next
                    && p + new_len <= self.base + ARENA
                    && map_fixed(p + old_len, new_len - old_len, true)
            };
            if in_place {
                st.next = st.next.max(p + new_len);
                st.live.push((p, new_len));
                return Ok(ptr);
            }
        }
        let q = match self.map(new_len, align) {
            Ok(q) => q,
            Err(e) => {
                self.state.lock().unwrap().live.push((p, old_len));
                return Err(e);
            }
        };
        if !prepare(q, new_len) {
            let mut st = self.state.lock().unwrap();
            st.live.retain(|&m| m != (q.as_ptr() as usize, new_len));
            st.live.push((p, old_len));
            assert!(
                map_fixed(q.as_ptr() as usize, new_len, false),
                "ArenaOs: unmap failed"
            );
            return Err(OsError::OutOfMemory);
        }
        // Copy page by page, skipping pages that read as zero (the new
        // mapping already does): untouched pages of a huge block cost nothing.
        static ZERO: [u8; OS_PAGE] = [0; OS_PAGE];
        for off in (0..old_len.min(new_len)).step_by(OS_PAGE) {
            // SAFETY: both ranges are live mappings of at least `off + OS_PAGE`
            // bytes, and distinct.
            unsafe {
                let src = std::slice::from_raw_parts((p + off) as *const u8, OS_PAGE);
                if src != &ZERO[..] {
                    std::ptr::copy_nonoverlapping(src.as_ptr(), q.as_ptr().add(off), OS_PAGE);
                }
            }
        }
        assert!(map_fixed(p, old_len, false), "ArenaOs: unmap failed");
        Ok(q)
    }

    fn now_ms(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    unsafe fn hint_huge_pages(&self, ptr: NonNull<u8>, len: usize, huge: bool) {
        self.covered(ptr, len, "hint_huge_pages");
        // SAFETY: inside live mappings (checked).
        unsafe { self.sys.hint_huge_pages(ptr, len, huge) };
    }

    fn counters(&self) -> &OsCounters {
        self.sys.counters()
    }
}
