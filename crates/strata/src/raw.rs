//! The unsized interface: free and resize a block knowing only its address,
//! as C's `free(p)` and `realloc(p, n)` must. The size class of a small
//! object comes from the pagemap (lock-free); a large block is found and
//! validated by the page heap.
//!
//! `strata-malloc` builds the C ABI on these functions.

use core::ptr;

use strata_central::class_size_of;

use crate::bad_free::BadFreeKind;
use crate::global::{
    alloc_large, alloc_small, class_of, free_large, free_small_known, large_size, pages,
    resize_large, size_class_of,
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
        class => alloc_small(class, size),
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
            let p = alloc_small(class, size);
            if !p.is_null() {
                // SAFETY: a fresh block of at least `size` bytes.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            p
        }
    }
}

/// Frees a block given only its address. Null is ignored. A pointer strata
/// cannot take back (never allocated, interior to a large block, a second
/// free of a large block) stops the program with a message.
///
/// # Safety
/// `p` is null or a live block from this allocator that nobody uses any more.
#[inline]
pub unsafe fn free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    let (class, at_start) = small_object_at(pages(), p as usize);
    if class != 0 {
        if !at_start {
            return crate::bad_free::report(p, BadFreeKind::Interior);
        }
        // SAFETY: the pagemap says p lies in an in-use span of this class,
        // and it is aligned as every object is.
        unsafe { free_small_known(p, class) }
    } else {
        // SAFETY: forwarded contract; validated by the page heap.
        unsafe { free_large(p) }
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
    // SAFETY: forwarded contract; a bad pointer is reported.
    #[cfg(feature = "checked")]
    return unsafe { crate::checked::live_size(p.cast_mut()) }.unwrap_or(0);
    let class = size_class_of(p as usize);
    if class != 0 {
        return class_size_of(class);
    }
    match large_size(p as usize) {
        Ok(n) => n,
        Err(why) => {
            crate::bad_free::report(p, why.into());
            0
        }
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
#[cfg_attr(feature = "checked", allow(unreachable_code))]
pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    if p.is_null() {
        return alloc(new_size, align);
    }
    if !align.is_power_of_two() || new_size > isize::MAX as usize - (align - 1) {
        return ptr::null_mut();
    }
    // SAFETY: forwarded contract; the checked build always moves the block.
    #[cfg(feature = "checked")]
    return unsafe { crate::checked::realloc(p, new_size, align) };
    let class = size_class_of(p as usize);
    // SAFETY: p is a live block (or a bad pointer, reported by usable_size).
    let old_size = unsafe { usable_size(p) };
    if old_size == 0 {
        return ptr::null_mut();
    }
    let new_class = class_of(new_size, align);
    if class != 0 {
        // A small block stays put while the new size needs the same class.
        if new_class == class {
            return p;
        }
    } else if new_class == 0 {
        // SAFETY: p is a live large block of the caller's.
        if let Some(q) = unsafe { resize_large(p as usize, new_size, align) } {
            return q.as_ptr();
        }
    }
    let q = alloc(new_size, align);
    if !q.is_null() {
        // SAFETY: distinct live blocks; the copy fits both.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
            free(p);
        }
    }
    q
}
