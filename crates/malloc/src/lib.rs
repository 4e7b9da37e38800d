//! # strata-malloc: strata as the C allocator
//!
//! A shared library exporting the C allocation functions with glibc's
//! semantics, so that
//!
//! ```text
//! cargo build --release -p strata-malloc
//! LD_PRELOAD=target/release/libstrata_malloc.so some-program
//! ```
//!
//! runs `some-program` with every `malloc` served by strata. Every function
//! here is a thin shim over [`strata::raw`]: the size classes, thread caches
//! and page heap are strata's.
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
//!
//! See the crate's README for the full table of functions.

#![no_std]
#![warn(missing_docs)]

// For `std::io::Result`, the profile calls' error type (no allocation).
extern crate std;

use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use libc::{EINVAL, ENOMEM};

/// The alignment `malloc` asks strata for (see the crate docs).
const MALLOC_ALIGN: usize = 8;

#[inline(always)]
fn set_errno(e: c_int) {
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

/// The system page size (`valloc`, `pvalloc`), read once.
fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions and does not allocate.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let v = if v > 0 && (v as usize).is_power_of_two() {
        v as usize
    } else {
        4096
    };
    PAGE.store(v, Ordering::Relaxed);
    v
}

/// `size` bytes aligned to `align` (a power of two, at least 1), or null
/// with `ENOMEM`.
#[inline]
fn alloc_aligned(size: usize, align: usize) -> *mut c_void {
    enomem_if_null(strata::raw::alloc(size, align.max(MALLOC_ALIGN)))
}

/// Allocates `size` bytes, aligned to 16 (8 for `size <= 8`). `malloc(0)`
/// returns a unique pointer. Null with `ENOMEM` on failure.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // A cache hit calls nothing (so nothing is saved on the stack); the
    // rest, errno included, is one tail call.
    let p = strata::raw::malloc_cached(size);
    if !p.is_null() {
        return p.cast();
    }
    malloc_slow(size)
}

#[cold]
#[inline(never)]
extern "C" fn malloc_slow(size: usize) -> *mut c_void {
    enomem_if_null(strata::raw::malloc(size))
}

/// Frees a block; null is ignored.
///
/// # Safety
/// `p` is null or a live block from this allocator, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded contract; strata stops the program over a pointer it
    // cannot take back rather than corrupting the heap.
    unsafe { strata::raw::free(p.cast()) }
}

/// The old SunOS name of `free`.
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// C23 `free_sized`: the size is not needed (strata looks the block up), so
/// this is `free`, and a wrong size does no harm.
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// C23 `free_aligned_sized`: `free`, as for [`free_sized`].
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// `n * size` zeroed bytes. Null with `ENOMEM` if the product overflows or
/// memory runs out. Large blocks are cleared only where they may be dirty.
#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => enomem_if_null(strata::raw::alloc_zeroed(total, MALLOC_ALIGN)),
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
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 && !p.is_null() {
        // SAFETY: forwarded contract.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    // SAFETY: forwarded contract. A block from memalign may be more aligned
    // than MALLOC_ALIGN; strata::raw::realloc only uses the alignment for the
    // new block, and C's realloc promises malloc's alignment only.
    enomem_if_null(unsafe { strata::raw::realloc(p.cast(), size, MALLOC_ALIGN) })
}

/// `realloc(p, n * size)`, or null with `ENOMEM` (and `p` intact) if the
/// product overflows.
///
/// # Safety
/// As [`realloc`].
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign(align, size)
}

/// `size` bytes aligned to the page size.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc_aligned(size, page_size())
}

/// `size` rounded up to a whole number of pages (at least one), aligned to
/// the page size. Null with `ENOMEM` if the rounding overflows.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
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
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { strata::raw::usable_size(p.cast_const().cast()) }
}

/// Flushes the calling thread's cache and returns every free page strata
/// holds to the OS. Returns 1 if any memory was released, else 0. `pad` is
/// ignored.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    c_int::from(strata::release_free_memory() > 0)
}

/// glibc's `malloc_stats`: prints strata's statistics (the same report as
/// `STRATA_SHOW_STATS=1` at exit) to stderr.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    strata::stats().write_to_stderr();
}

// ---- heap profiling (strata::profile, docs/profiling.md) -------------------

/// The result of a profile call: 0, or an `errno` value (also stored in
/// `errno`).
fn profile_result(r: std::io::Result<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => {
            let code = e.raw_os_error().unwrap_or(libc::EIO);
            set_errno(code);
            code
        }
    }
}

/// Writes the heap profile, pprof's `profile.proto` gzipped, to `path`
/// (`go tool pprof -top path`). Returns 0, or an `errno` value.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn strata_profile_dump(path: *const c_char) -> c_int {
    if path.is_null() {
        set_errno(EINVAL);
        return EINVAL;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    profile_result(strata::profile::dump_cstr(unsafe { CStr::from_ptr(path) }))
}

/// Writes one profile as collapsed stacks (`frame;frame;frame bytes` per
/// line) to `path`: `kind` 0 live now, 1 allocated since the start, 2 live
/// at the peak. Returns 0, or an `errno` value.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn strata_profile_dump_collapsed(path: *const c_char, kind: c_int) -> c_int {
    let kind = match kind {
        0 => strata::profile::Kind::InUse,
        1 => strata::profile::Kind::Alloc,
        2 => strata::profile::Kind::Peak,
        _ => {
            set_errno(EINVAL);
            return EINVAL;
        }
    };
    if path.is_null() {
        set_errno(EINVAL);
        return EINVAL;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    profile_result(strata::profile::dump_collapsed_cstr(
        unsafe { CStr::from_ptr(path) },
        kind,
    ))
}

/// Starts heap profiling, sampling one allocation per `interval` bytes on
/// average (0: the interval in force, 2 MiB unless set).
#[no_mangle]
pub extern "C" fn strata_profile_start(interval: usize) {
    if interval != 0 {
        strata::profile::set_interval(interval);
    }
    strata::profile::start();
}

/// Stops heap profiling (the records of live sampled blocks stay).
#[no_mangle]
pub extern "C" fn strata_profile_stop() {
    strata::profile::stop();
}
