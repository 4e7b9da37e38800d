//! Single operations, for the criterion micro benches and the loops of the
//! main job.

use core::alloc::{GlobalAlloc, Layout};
use std::alloc::handle_alloc_error;
use std::hint::black_box;

use super::{fresh, fresh_zeroed, layout, poke};

/// One alloc + free of `l`, with byte 0 set to `v` in between.
#[inline]
pub fn alloc_free<A: GlobalAlloc + ?Sized>(a: &A, l: Layout, v: u8) {
    let p = fresh(a, l);
    // SAFETY: `p` is a live block of `l.size() >= 1` bytes from `a.alloc(l)`,
    // freed exactly once with that layout.
    unsafe {
        poke(p, 0, v);
        a.dealloc(p, l);
    }
}

/// `a.alloc(l)` in a function of its own, never inlined into the caller:
/// the shape of a Rust program's `__rust_alloc` call without cross-crate
/// inlining, or of a C program's call to malloc.
#[inline(never)]
pub fn alloc_call<A: GlobalAlloc + ?Sized>(a: &A, l: Layout) -> *mut u8 {
    assert!(l.size() != 0);
    // SAFETY: the layout has a non-zero size (checked above).
    unsafe { a.alloc(l) }
}

/// `a.dealloc(p, l)` in a function of its own (see [`alloc_call`]).
///
/// # Safety
/// As `GlobalAlloc::dealloc`: `p` is a live block from `a` with layout `l`.
#[inline(never)]
pub unsafe fn dealloc_call<A: GlobalAlloc + ?Sized>(a: &A, p: *mut u8, l: Layout) {
    // SAFETY: the caller's guarantee.
    unsafe { a.dealloc(p, l) }
}

/// As [`alloc_free`], with the alloc and the free each a call to a function
/// of its own ([`alloc_call`], [`dealloc_call`]).
#[inline]
pub fn alloc_free_calls<A: GlobalAlloc + ?Sized>(a: &A, l: Layout, v: u8) {
    let p = black_box(alloc_call(a, l));
    if p.is_null() {
        handle_alloc_error(l);
    }
    // SAFETY: `p` is a live block of `l.size() >= 1` bytes from `a`, freed
    // exactly once with its layout.
    unsafe {
        poke(p, 0, v);
        dealloc_call(a, p, l);
    }
}

/// One alloc_zeroed + free of `l`, untouched.
#[inline]
pub fn zeroed_free<A: GlobalAlloc + ?Sized>(a: &A, l: Layout) {
    let p = fresh_zeroed(a, l);
    // SAFETY: `p` came from `a.alloc_zeroed(l)` and is freed once.
    unsafe { a.dealloc(p, l) };
}

/// Alloc `from` bytes, write the last, realloc to `to` bytes, write the
/// last, free.
#[inline]
pub fn realloc_free<A: GlobalAlloc + ?Sized>(a: &A, from: usize, to: usize) {
    let p = fresh(a, layout(from));
    // SAFETY: `p` is a live block of `from` bytes; realloc gets its layout
    // and a non-zero new size; the result (checked non-null) is a live block
    // of `to` bytes, freed once with that size.
    unsafe {
        poke(p, from - 1, 1);
        let q = a.realloc(p, layout(from), to);
        if q.is_null() {
            handle_alloc_error(layout(to));
        }
        poke(black_box(q), to - 1, 2);
        a.dealloc(q, layout(to));
    }
}
