//! The two interfaces a workload reaches an allocator through, and the
//! adapter that lets every workload run on both.
//!
//! A Rust program calls its allocator through [`GlobalAlloc`]: every free
//! names the block's layout, so an allocator can find the size class from
//! the size instead of from the address. A C program calls `malloc` and
//! `free(p)`: the allocator must find everything from `p`. The workloads are
//! written once, over `GlobalAlloc`; [`Unsized`] turns an allocator's C
//! interface ([`CMalloc`]) into a `GlobalAlloc` that forgets the layout on
//! free, so the same workload measures the C path ([`Api::Unsized`]) beside
//! the Rust one ([`Api::Sized`]).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

/// Which interface a run called the allocator through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// `GlobalAlloc`: sized `dealloc`, `realloc` with the old layout.
    Sized,
    /// C's `malloc`, `calloc`, `realloc(p, n)` and `free(p)`, each a call.
    Unsized,
}

impl Api {
    /// Both, in report order.
    pub const ALL: [Api; 2] = [Api::Sized, Api::Unsized];

    /// Short label for tables, file names and the CSV.
    pub fn label(self) -> &'static str {
        match self {
            Api::Sized => "rust",
            Api::Unsized => "c",
        }
    }

    /// What the view is, in words, for headings.
    pub fn title(self) -> &'static str {
        match self {
            Api::Sized => "Rust view: GlobalAlloc (sized dealloc)",
            Api::Unsized => "C view: malloc/calloc/realloc/free (unsized free, every call a call)",
        }
    }
}

/// The largest alignment C's `malloc` guarantees on x86-64 Linux (glibc,
/// and every peer here) for blocks of at least that size.
pub const MALLOC_ALIGN: usize = 16;

/// An allocator's C interface, as a program linked against it calls it.
///
/// # Safety
/// Implementations behave as C's functions of the same names: a non-null
/// result is a fresh block of at least the size asked for, aligned to
/// [`MALLOC_ALIGN`] when the size is at least that (to `align` for
/// [`CMalloc::memalign`]), that overlaps no other live block; `calloc`'s
/// block reads as zero; `realloc` keeps the contents up to the smaller size.
pub unsafe trait CMalloc: Sync {
    /// `malloc(size)`.
    fn malloc(&self, size: usize) -> *mut u8;
    /// `calloc(1, size)`.
    fn calloc(&self, size: usize) -> *mut u8;
    /// `memalign(align, size)`, `align` a power of two.
    fn memalign(&self, align: usize, size: usize) -> *mut u8;
    /// `realloc(p, size)`.
    ///
    /// # Safety
    /// `p` is a live block of this allocator, not used again if the result
    /// is not null; `size` is not zero.
    unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8;
    /// `free(p)`.
    ///
    /// # Safety
    /// `p` is null or a live block of this allocator, not used again.
    unsafe fn free(&self, p: *mut u8);
}

/// True when `malloc` alone meets `l`'s alignment.
#[inline(always)]
fn malloc_aligns(l: Layout) -> bool {
    l.align() <= MALLOC_ALIGN && l.align() <= l.size()
}

/// An allocator seen through its C interface: `dealloc` forgets the
/// layout, `realloc` the old size.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unsized<C>(pub C);

// SAFETY: every method forwards to the C function that gives what
// `GlobalAlloc` asks for (`CMalloc`'s contract); alignments malloc does not
// guarantee go to memalign, and their realloc moves the block by hand.
unsafe impl<C: CMalloc> GlobalAlloc for Unsized<C> {
    #[inline(always)]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if malloc_aligns(l) {
            self.0.malloc(l.size())
        } else {
            self.0.memalign(l.align(), l.size())
        }
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if malloc_aligns(l) {
            return self.0.calloc(l.size());
        }
        let p = self.0.memalign(l.align(), l.size());
        if !p.is_null() {
            // SAFETY: a fresh block of `l.size()` bytes.
            unsafe { ptr::write_bytes(p, 0, l.size()) };
        }
        p
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: the caller's block, from this allocator.
        unsafe { self.0.free(p) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if malloc_aligns(l) && l.align() <= new_size {
            // SAFETY: the caller's live block; GlobalAlloc's new size is
            // not zero.
            return unsafe { self.0.realloc(p, new_size) };
        }
        // SAFETY: the new layout is valid (GlobalAlloc's contract); the old
        // block is live, the copy fits both, and it is freed once.
        unsafe {
            let q = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                self.0.free(p);
            }
            q
        }
    }
}

/// glibc's `malloc` family, as any C program on the machine calls it.
#[derive(Clone, Copy, Debug, Default)]
pub struct LibcMalloc;

// SAFETY: glibc's own functions.
unsafe impl CMalloc for LibcMalloc {
    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        // SAFETY: malloc accepts any size.
        unsafe { libc::malloc(size).cast() }
    }
    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        // SAFETY: calloc accepts any sizes.
        unsafe { libc::calloc(1, size).cast() }
    }
    #[inline(always)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        // SAFETY: memalign accepts any power-of-two alignment.
        unsafe { libc::memalign(align, size).cast() }
    }
    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: the caller's live block from glibc.
        unsafe { libc::realloc(p.cast(), size).cast() }
    }
    #[inline(always)]
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's block from glibc.
        unsafe { libc::free(p.cast()) }
    }
}

/// strata's unsized interface (`strata::raw`), the one `libstrata_malloc.so`
/// exports as C's functions. Each function is a call of its own, as a C
/// program's call into the library is (the peers' are calls into C code);
/// what it cannot show is the shared library's cost of reaching its
/// thread-local state (`benches/real/run.sh` measures that).
#[derive(Clone, Copy, Debug, Default)]
pub struct StrataMalloc;

// SAFETY: strata::raw's functions meet C's contract with alignment
// MALLOC_ALIGN (as libstrata_malloc.so uses them).
unsafe impl CMalloc for StrataMalloc {
    #[inline(never)]
    fn malloc(&self, size: usize) -> *mut u8 {
        strata::raw::malloc(size)
    }
    #[inline(never)]
    fn calloc(&self, size: usize) -> *mut u8 {
        strata::raw::alloc_zeroed(size, MALLOC_ALIGN)
    }
    #[inline(never)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        strata::raw::alloc(size, align.max(MALLOC_ALIGN))
    }
    #[inline(never)]
    unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: the caller's live block from strata.
        unsafe { strata::raw::realloc(p, size, MALLOC_ALIGN) }
    }
    #[inline(never)]
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's block from strata.
        unsafe { strata::raw::free(p) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Deadline;
    use crate::workloads;

    fn exercise<C: CMalloc>(c: C) {
        let a = Unsized(c);
        for (size, align) in [(1, 1), (24, 8), (100, 16), (64, 64), (5000, 4096)] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero layouts; each block is checked, written
            // within its size and freed once.
            unsafe {
                let p = a.alloc(l);
                assert!(!p.is_null() && p as usize % align == 0);
                p.write_bytes(7, size);
                let q = a.realloc(p, l, size * 3);
                assert!(!q.is_null() && q as usize % align == 0);
                assert_eq!(*q.add(size - 1), 7);
                a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                let z = a.alloc_zeroed(l);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                a.dealloc(z, l);
            }
        }
        let dl = Deadline::never();
        assert_eq!(workloads::small_pairs(&a, 100, true, dl).ops, 300);
        assert_eq!(workloads::larson(&a, 2, 10, 100, 2, dl).ops, 400);
    }

    #[test]
    fn unsized_views_hold_layouts() {
        exercise(LibcMalloc);
        exercise(StrataMalloc);
    }
}
