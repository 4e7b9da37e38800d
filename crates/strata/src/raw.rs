//! The unsized interface: free and resize a block knowing only its address,
//! as C's `free(p)` and `realloc(p, n)` must. The size class of a small
//! object comes from the pagemap (lock-free); a large block is found and
//! validated by the page heap.
//!
//! `strata-malloc` builds the C ABI on these functions.

use core::ptr;

use strata_central::{class_size_of, MAX_SMALL};

use crate::bad_free::BadFreeKind;
#[cfg(feature = "checked")]
use crate::global::alloc_small;
use crate::global::{
    alloc_large, class_of, free_large, free_small_known, large_size, pages, resize_large,
    size_class_of,
};
use crate::validate::small_object_at;

/// Allocates `size` bytes aligned to `align` (a power of two). Null when out
/// of memory or when the request cannot be met.
#[inline]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() || size > isize::MAX as usize - (align - 1) {
        return ptr::null_mut();
    }
    match class_of(size, align) {
        0 => alloc_large(size, align, false),
        class => alloc_object(class, crate::request::new(size, align)),
    }
}

/// An object of `class` for `request` ([`crate::request`]) as the C entry
/// points hand it out: in the default build with `free`'s mark cleared on
/// the object taken from the list (never on a sampled block, which is
/// sized to the request), in the checked build with its marks.
#[inline(always)]
fn alloc_object(class: u8, request: usize) -> *mut u8 {
    #[cfg(not(feature = "checked"))]
    return crate::freed_mark::alloc_cleared(class, request);
    #[cfg(feature = "checked")]
    alloc_small(class, request)
}

/// C's `malloc`: `size` bytes aligned to 8, and to 16 from 16 bytes up
/// (every class above 8 bytes is a multiple of 16). Null when out of memory
/// or when `size` is impossible.
///
/// The leanest path there is: a small request is a table lookup and a pop,
/// with nothing kept across a call (so nothing saved on the stack); the
/// size check that [`alloc`] makes first is left to the large path.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    if size > MAX_SMALL {
        return malloc_large(size);
    }
    // The size alone is the request's word (`crate::request`): malloc's
    // alignment is what the word means by default.
    #[cfg(not(feature = "checked"))]
    return alloc_object(strata_central::small_class(size), size);
    // The checked build's class has room for its marks, so a request just
    // under the largest class can need a large block.
    #[cfg(feature = "checked")]
    match class_of(size, 8) {
        0 => malloc_large(size),
        class => alloc_object(class, size),
    }
}

#[cold]
#[inline(never)]
fn malloc_large(size: usize) -> *mut u8 {
    alloc(size, 8)
}

/// The part of [`malloc`] that calls nothing: a small object from this
/// thread's cache, or null when [`malloc`] has more to do (a large request,
/// an empty list). A C `malloc` built as `malloc_cached`, then an
/// out-of-line call of [`malloc`] on null, keeps nothing on the stack.
#[inline(always)]
pub fn malloc_cached(size: usize) -> *mut u8 {
    // Class 0 (a large request) holds no objects: the pop fails.
    #[cfg(not(feature = "checked"))]
    return crate::freed_mark::alloc_cached(strata_central::small_class(size), size);
    // Every allocation of the checked build takes the full path.
    #[cfg(feature = "checked")]
    {
        let _ = size;
        ptr::null_mut()
    }
}

/// Like [`alloc`], and the block reads as zero. Large blocks are cleared only
/// where they may be dirty (see the crate docs).
#[inline]
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() || size > isize::MAX as usize - (align - 1) {
        return ptr::null_mut();
    }
    match class_of(size, align) {
        0 => alloc_large(size, align, true),
        class => {
            // Only the `size` bytes asked for are written: a sampled block
            // is sized to the request (a word written into one of 1-7
            // bytes would land in its guard, or in the checked build's
            // marks after it).
            let p = alloc_object(class, crate::request::new(size, align));
            if !p.is_null() {
                // SAFETY: a fresh object of at least `size` bytes.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            p
        }
    }
}

/// Frees a block given only its address. Null is ignored. A pointer strata
/// cannot take back (never allocated, interior to a block, a second free of
/// a large block, or of a small one still in a cache: `crate::freed_mark`)
/// stops the program with a message.
///
/// # Safety
/// `p` is null or a live block from this allocator that nobody uses any more.
// Always inlined: C's `free` is a shim over it, and left to the inliner
// (three call sites once the C functions moved to `c_api`) it became a
// call, 2 more instructions per malloc/free pair (callgrind, pair_loop.c).
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    // An object in the arena: its class and offset in its span from the
    // arena's flat map. Everything else (null included) takes the pagemap.
    let Some((class, offset)) = pages().arena_entry(p as usize) else {
        // SAFETY: forwarded contract.
        return unsafe { free_elsewhere(p) };
    };
    // One test sends out of line both pages of the arena in no small span
    // (class 0 has no object offsets) and pointers that are not an
    // object's start.
    if !strata_central::is_object_offset(class, offset) {
        // SAFETY: forwarded contract.
        return unsafe { free_not_object_start(p, class) };
    }
    // SAFETY: the map says p is where an object of an in-use span of this
    // class starts.
    unsafe { free_object(p, class) }
}

/// [`free`] of a pointer the arena's map does not place at an object's
/// start: anything outside the arena's small spans (`class` 0), or an
/// interior pointer of a span of `class`.
///
/// # Safety
/// As [`free`].
#[cold]
#[inline(never)]
unsafe extern "C" fn free_not_object_start(p: *mut u8, class: u8) {
    if class != 0 {
        return report_interior(p);
    }
    // SAFETY: forwarded contract.
    unsafe { free_elsewhere(p) }
}

/// A free of a small object given its class and offset in its span (found
/// by the pagemap): the object-start test, the freed mark, the push. Every
/// call from here is a tail call (so `free` keeps nothing on the stack): the
/// out-of-line paths are `extern "C"`, which lets the compiler jump to them
/// from C's `free`.
///
/// # Safety
/// `p` lies in an in-use span of `class`, `offset` bytes from its start.
#[inline(always)]
unsafe fn free_small_at(p: *mut u8, class: u8, offset: usize) {
    if !strata_central::is_object_offset(class, offset) {
        return report_interior(p);
    }
    // SAFETY: p is where an object of an in-use span of this class starts.
    unsafe { free_object(p, class) }
}

/// The freed mark's test and the push, for `p` where an object of an
/// in-use span of `class` starts (tail calls only, as above).
///
/// # Safety
/// As said, and `p` is given up by the caller.
#[inline(always)]
unsafe fn free_object(p: *mut u8, class: u8) {
    // SAFETY (both): p is where an object of an in-use span of this class
    // starts.
    #[cfg(not(feature = "checked"))]
    unsafe {
        use crate::freed_mark;
        if freed_mark::is_marked(p) {
            return free_marked(p, class);
        }
        freed_mark::mark(p);
    }
    // SAFETY: as above.
    unsafe { free_small_known(p, class) }
}

/// [`free`] of anything the arena's map does not answer for: null, a
/// small object of a span outside the arena (or not yet in the map), a
/// large block, or a pointer that is not strata's.
///
/// # Safety
/// As [`free`].
#[cold]
#[inline(never)]
unsafe extern "C" fn free_elsewhere(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // A guarded block (outside the arena).
    if crate::guarded::owns(p) {
        // SAFETY: forwarded contract; a bad pointer is reported.
        return unsafe { crate::guarded::free(p) };
    }
    // A sampled block of the profiler's pool (outside the arena).
    if crate::profile::tracking(p) && crate::profile::release(p) {
        return;
    }
    let (class, at_start) = small_object_at(pages(), p as usize);
    if class != 0 {
        if !at_start {
            return report_interior(p);
        }
        // SAFETY: the pagemap says p is where an object of an in-use span
        // of this class starts (offset 0 is an object start of any class).
        unsafe { free_small_at(p, class, 0) }
    } else {
        // SAFETY: forwarded contract; validated by the page heap.
        unsafe { free_large(p) }
    }
}

#[cold]
#[inline(never)]
extern "C" fn report_interior(p: *mut u8) {
    crate::bad_free::report(p, BadFreeKind::Interior)
}

/// `free` of a small object that carries the freed mark: a double free if
/// a cache holds it, otherwise freed as usual. Out of line, and called last,
/// so that `free` keeps nothing across it.
///
/// # Safety
/// `p` is where an object of an in-use span of `class` starts.
#[cfg(not(feature = "checked"))]
#[cold]
#[inline(never)]
unsafe extern "C" fn free_marked(p: *mut u8, class: u8) {
    if crate::freed_mark::confirm(p, class) {
        // SAFETY: not free in any cache searched; the caller's contract.
        unsafe { free_small_known(p, class) }
    }
}

/// The number of bytes usable at `p` (at least what was asked for). Zero
/// for null.
///
/// # Safety
/// `p` is null or a live block from this allocator.
// The checked build returns early: the rest is the default build's.
#[cfg_attr(feature = "checked", allow(unreachable_code))]
pub unsafe fn usable_size(p: *const u8) -> usize {
    if p.is_null() {
        return 0;
    }
    if crate::guarded::owns(p) {
        return crate::guarded::size_of(p);
    }
    // SAFETY: forwarded contract; a bad pointer is reported.
    #[cfg(feature = "checked")]
    return unsafe { crate::checked::live_size(p.cast_mut()) }.unwrap_or(0);
    let class = size_class_of(p as usize);
    if class != 0 {
        return class_size_of(class);
    }
    if crate::profile::tracking(p) {
        if let Some(n) = crate::profile::pooled_size(p) {
            return pooled_usable(n);
        }
    }
    match large_size(p as usize) {
        Ok(n) => n,
        Err(why) => {
            crate::bad_free::report(p, why.into());
            0
        }
    }
}

/// The usable size of a block the profiler sampled, `asked` bytes asked
/// for: its slot holds the whole size class (see `profile::pool`), and a
/// `realloc` within the class keeps the block where it is, so the class's
/// size is what the program may use and what a later move copies.
fn pooled_usable(asked: usize) -> usize {
    match class_of(asked, 1) {
        0 => asked,
        class => class_size_of(class),
    }
}

/// Resizes the block at `p` to `new_size` bytes, keeping `align`, in place
/// when the size class or the span allows, otherwise by moving it. With a
/// null `p` it allocates. On failure it returns null and the old block is
/// untouched.
///
/// # Safety
/// `p` is null or a live block from this allocator allocated with this
/// same `align` (as with `GlobalAlloc::realloc`: resizing in place keeps the
/// block where it is, so a stronger alignment than the block's is not
/// obtained that way).
// The checked build returns early: the rest is the default build's.
#[inline(always)]
pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    // The common case inline: a small block of the arena (its class and
    // offset from the flat map, one load, as in `free`) whose class still
    // suits the new size: it fits, and uses at least half of it (a block
    // may have been given room to grow, below).
    #[cfg(not(feature = "checked"))]
    if align.is_power_of_two() {
        let (class, offset) = pages().arena_object(p as usize);
        if class != 0 {
            let size = class_size_of(class);
            if new_size <= size
                && new_size >= size / 2
                && strata_central::is_object_offset(class, offset)
            {
                return p;
            }
        } else {
            // SAFETY: forwarded contract.
            return unsafe { realloc_outside_arena(p, new_size, align) };
        }
    }
    // SAFETY: forwarded contract.
    unsafe { realloc_slow(p, new_size, align) }
}

/// [`realloc`] of a block the arena's map has no class for: a large block
/// that keeps its pages (a step of a block grown a little at a time) in
/// one lookup and no more, everything else through [`realloc_slow`].
/// Guarded blocks and sampled ones (whose record keeps their size) go the
/// whole way.
///
/// # Safety
/// As [`realloc`].
#[cfg(not(feature = "checked"))]
#[inline(never)]
unsafe fn realloc_outside_arena(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    // SAFETY: p is the caller's live block, or a bad pointer that
    // `realloc_slow` reports after the `false`.
    if !p.is_null() && unsafe { crate::global::large_keeps_pages(p as usize, new_size) } {
        return p;
    }
    // SAFETY: forwarded contract.
    unsafe { realloc_slow(p, new_size, align) }
}

/// The rest of [`realloc`]: null, large and sampled blocks, a small block
/// that changes class, and the checks on bad input.
///
/// # Safety
/// As [`realloc`].
// The checked build returns early: the rest is the default build's.
#[cfg_attr(feature = "checked", allow(unreachable_code))]
#[inline(never)]
unsafe fn realloc_slow(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    if p.is_null() {
        return alloc(new_size, align);
    }
    if !align.is_power_of_two() || new_size > isize::MAX as usize - (align - 1) {
        return ptr::null_mut();
    }
    if crate::guarded::owns(p) {
        // SAFETY: forwarded contract.
        return unsafe { crate::guarded::realloc(p, new_size, align) };
    }
    // SAFETY: forwarded contract; the checked build always moves the block.
    #[cfg(feature = "checked")]
    return unsafe { crate::checked::realloc(p, new_size, align) };
    // Most small blocks: class and offset from the arena's flat map, one
    // load, as in `free`; an interior pointer is refused, not resized.
    #[allow(unreachable_code)]
    let (class, offset) = pages().arena_object(p as usize);
    let class = if class != 0 {
        if !strata_central::is_object_offset(class, offset) {
            report_interior(p);
            return ptr::null_mut();
        }
        class
    } else {
        size_class_of(p as usize)
    };
    let (class, old_size) = if class != 0 {
        (class, class_size_of(class))
    } else {
        // SAFETY: p is a live block (or a bad pointer, reported by
        // usable_size).
        let n = unsafe { usable_size(p) };
        if n == 0 {
            return ptr::null_mut();
        }
        // A sampled small block keeps its pool slot, which holds the whole
        // class, while the new size needs the same class; what it holds is
        // its usable size, the class's.
        let pooled = crate::profile::tracking(p) && crate::profile::pooled_size(p).is_some();
        (if pooled { class_of(n, align) } else { 0 }, n)
    };
    let new_class = class_of(new_size, align);
    let mut want = new_size;
    if class != 0 {
        // A small block stays put while the new size needs its class, or
        // fits and uses at least half of it (it may have been given room
        // to grow, below).
        if new_class == class || (new_size <= old_size && new_size >= old_size / 2) {
            return p;
        }
        // A small block that grows out of its class moves to room for a
        // quarter more than it had, so that a block grown in small steps
        // is copied once per quarter, not at every class boundary (about
        // eight per doubling). Unsized frees and `usable_size` read the
        // class from the map, so the larger class is the block's own.
        let roomy = old_size + old_size / 4;
        if new_size > old_size && new_size < roomy && class_of(roomy, align) != 0 {
            want = roomy;
        }
    } else if new_class == 0 {
        // SAFETY: p is a live large block of the caller's.
        if let Some(q) = unsafe { resize_large(p as usize, new_size, align) } {
            return q.as_ptr();
        }
    }
    let q = alloc(want, align);
    if !q.is_null() {
        // SAFETY: distinct live blocks; the copy fits both.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
            free(p);
        }
    }
    q
}
