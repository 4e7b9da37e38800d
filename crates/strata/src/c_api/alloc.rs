//! The C allocation functions, with glibc's semantics (the crate's README
//! of `strata-malloc` has the table). Each is a thin shim over
//! [`crate::raw`]: the size classes, thread caches and page heap are
//! strata's.
//!
//! # Rules kept by every function
//! - Nothing allocates through Rust's global allocator, panics, or formats.
//!   All arithmetic on sizes is checked or wrapping.
//! - Every failure that returns a null pointer sets `errno` to `ENOMEM`
//!   (`EINVAL` for an impossible alignment), and leaves any block passed in
//!   intact.
//! - `malloc` alignment: 16 for every request above 8 bytes, 8 for requests
//!   of at most 8 bytes (their class is 8 bytes, and no C object of at most
//!   8 bytes needs more). Class sizes above 8 are multiples of 16, so the
//!   cheap 8-byte-alignment lookup already gives 16-byte alignment.

use core::ffi::{c_int, c_void};
use core::ptr;

use libc::{EINVAL, ENOMEM};

/// The alignment `malloc` asks strata for (see the crate docs).
const MALLOC_ALIGN: usize = 8;

#[inline(always)]
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() = e };
}

/// Sets `errno` to `ENOMEM` if `p` is null; returns `p`.
#[inline(always)]
fn enomem_if_null(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p.cast()
}

/// `size` bytes aligned to `align` (a power of two, at least 1), or null
/// with `ENOMEM`.
#[inline]
fn alloc_aligned(size: usize, align: usize) -> *mut c_void {
    enomem_if_null(crate::raw::alloc(size, align.max(MALLOC_ALIGN)))
}

/// Allocates `size` bytes, aligned to 16 (8 for `size <= 8`). `malloc(0)`
/// returns a unique pointer. Null with `ENOMEM` on failure.
#[inline]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // A cache hit calls nothing (so nothing is saved on the stack); the
    // rest, errno included, is one tail call (`extern "C"`: the compiler
    // turns a call of the same convention into a jump).
    let p = crate::raw::malloc_cached(size);
    if !p.is_null() {
        return p.cast();
    }
    malloc_slow(size)
}

#[cold]
#[inline(never)]
extern "C" fn malloc_slow(size: usize) -> *mut c_void {
    enomem_if_null(crate::raw::malloc(size))
}

/// Frees a block; null is ignored.
///
/// # Safety
/// `p` is null or a live block from this allocator, not used afterwards.
#[inline]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded contract; strata stops the program over a pointer it
    // cannot take back rather than corrupting the heap.
    unsafe { crate::raw::free(p.cast()) }
}

/// The old SunOS name of `free`.
///
/// # Safety
/// As [`free`].
#[inline]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// C23 `free_sized`: the size is not needed (strata looks the block up), so
/// this is `free`, and a wrong size does no harm.
///
/// # Safety
/// As [`free`].
#[inline]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// C23 `free_aligned_sized`: `free`, as for [`free_sized`].
///
/// # Safety
/// As [`free`].
#[inline]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// `n * size` zeroed bytes. Null with `ENOMEM` if the product overflows or
/// memory runs out. Large blocks are cleared only where they may be dirty.
#[inline]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    // glibc's pthread_create allocates the new thread's TLS vector here,
    // `calloc(n, sizeof(dtv_t))` (16 bytes on 64-bit targets), after
    // marking the process multi-threaded: the fork handlers are in place
    // before the new thread exists (crate::global). Only elements of that
    // size are looked at: every other calloc pays one compare, where the
    // look itself (three loads and a test) costs 5% of a calloc/free pair.
    // The registration is out of line, so that the common path keeps no
    // argument across a call.
    if size == 2 * core::mem::size_of::<usize>() && crate::global::fork_handlers_due() {
        return calloc_registering(n, size);
    }
    calloc_now(n, size)
}

#[cold]
#[inline(never)]
fn calloc_registering(n: usize, size: usize) -> *mut c_void {
    crate::global::register_fork_handlers_now();
    calloc_now(n, size)
}

#[inline(always)]
fn calloc_now(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => enomem_if_null(crate::raw::alloc_zeroed(total, MALLOC_ALIGN)),
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// Resizes a block, glibc style:
/// - `realloc(NULL, n)` is `malloc(n)`;
/// - `realloc(p, 0)` with `p` non-null frees `p` and returns null (errno
///   untouched), as glibc does (`REALLOC_ZERO_BYTES_FREES`);
/// - on failure returns null with `ENOMEM`, and `p` stays valid and intact.
///
/// # Safety
/// `p` is null or a live block from this allocator.
#[inline]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 && !p.is_null() {
        // SAFETY: forwarded contract.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    // SAFETY: forwarded contract. A block from memalign may be more aligned
    // than MALLOC_ALIGN; crate::raw::realloc only uses the alignment for the
    // new block, and C's realloc promises malloc's alignment only.
    enomem_if_null(unsafe { crate::raw::realloc(p.cast(), size, MALLOC_ALIGN) })
}

/// `realloc(p, n * size)`, or null with `ENOMEM` (and `p` intact) if the
/// product overflows.
///
/// # Safety
/// As [`realloc`].
#[inline]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// Stores in `*memptr` a block of `size` bytes aligned to `align`. Returns
/// `EINVAL` if `align` is not a power of two multiple of `sizeof(void *)`,
/// `ENOMEM` (also set in `errno`, as glibc does) if memory runs out; on
/// failure `*memptr` is not touched.
///
/// # Safety
/// `memptr` is valid for a pointer write.
#[inline]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    if !align.is_power_of_two() || align < core::mem::size_of::<*mut c_void>() {
        return EINVAL;
    }
    let p = alloc_aligned(size, align);
    if p.is_null() {
        return ENOMEM;
    }
    // SAFETY: the caller passes a writable pointer slot.
    unsafe { memptr.write(p) };
    0
}

/// C11 `aligned_alloc`. An alignment that is not a power of two (0
/// included) fails with `EINVAL`, as C17 asks and glibc 2.38 and later do
/// (glibc 2.36 rounded it up). Any size is accepted.
#[inline]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return ptr::null_mut();
    }
    alloc_aligned(size, align)
}

/// glibc's `memalign`: an alignment that is not a power of two is rounded
/// up to the next power of two (0 and 1 mean `malloc`'s); one above
/// `SIZE_MAX / 2 + 1` fails with `EINVAL`.
#[inline]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    if align <= MALLOC_ALIGN {
        return malloc(size);
    }
    match align.checked_next_power_of_two() {
        Some(a) => alloc_aligned(size, a),
        None => {
            set_errno(EINVAL);
            ptr::null_mut()
        }
    }
}

/// The name glibc's dynamic loader once used for `memalign`.
#[inline]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign(align, size)
}

/// `size` bytes aligned to the page size.
#[inline]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc_aligned(size, strata_os::os_page_size())
}

/// `size` rounded up to a whole number of pages (at least one), aligned to
/// the page size. Null with `ENOMEM` if the rounding overflows.
#[inline]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = strata_os::os_page_size();
    match size.max(1).checked_next_multiple_of(page) {
        Some(rounded) => alloc_aligned(rounded, page),
        None => enomem_if_null(ptr::null_mut()),
    }
}

/// The bytes usable at `p`: at least what was asked for, all writable.
/// Zero for null.
///
/// # Safety
/// `p` is null or a live block from this allocator.
#[inline]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { crate::raw::usable_size(p.cast_const().cast()) }
}
