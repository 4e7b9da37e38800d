//! strata's own C functions, declared in `crates/malloc/include/strata.h`:
//! statistics as JSON, releasing free memory, populating a block, and
//! settings by name. Each is the C face of a function of the `strata`
//! crate.
//!
//! # Conventions
//! - Text goes into a caller's buffer `snprintf`-style: at most `len - 1`
//!   bytes and a NUL (nothing when `len` is 0), and the return value is
//!   the length of the whole text, so a return of `len` or more says it
//!   was cut.
//! - Failures return -1 with `errno` set (see each function).
//! - Nothing here allocates through Rust's global allocator.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr::NonNull;

use super::alloc::set_errno;
use crate::text::SliceWriter;

/// A writer over the caller's `buf` of `len` bytes (`buf` may be null
/// when `len` is 0).
///
/// # Safety
/// `buf` is valid for `len` bytes of writes, or `len` is 0.
unsafe fn c_buffer<'a>(buf: *mut c_char, len: usize) -> SliceWriter<'a> {
    let slice: &mut [u8] = if buf.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) }
    };
    SliceWriter::for_c_string(slice)
}

/// `size_t strata_stats_json(char *buf, size_t len)`: writes
/// [`crate::write_stats_json`]'s document into `buf`, `snprintf`-style
/// (the module docs), and returns its length. The figures change between
/// two calls: when asking for the length first, leave room to spare.
///
/// # Safety
/// `buf` is valid for `len` bytes of writes, or `len` is 0.
pub unsafe extern "C" fn strata_stats_json(buf: *mut c_char, len: usize) -> usize {
    // SAFETY: forwarded contract.
    let mut w = unsafe { c_buffer(buf, len) };
    // The writer never fails; a document cut short is still counted whole.
    let _ = crate::write_stats_json(&mut w);
    w.finish_c()
}

/// `size_t strata_release_free_memory(void)`: [`crate::release_free_memory`];
/// returns the bytes released.
pub extern "C" fn strata_release_free_memory() -> usize {
    crate::release_free_memory()
}

/// `int strata_populate(void *ptr, size_t len)`: makes `[ptr, ptr + len)`
/// resident now ([`crate::populate`]), so that writing it later takes no
/// page fault. Returns 0, or -1 with `errno` `ENOMEM` when the kernel
/// refused, `EINVAL` for a null `ptr` with a non-zero `len`.
///
/// # Safety
/// The range lies inside one live block from this allocator.
pub unsafe extern "C" fn strata_populate(ptr: *mut c_void, len: usize) -> c_int {
    if len == 0 {
        return 0;
    }
    let Some(p) = NonNull::new(ptr.cast::<u8>()) else {
        set_errno(libc::EINVAL);
        return -1;
    };
    // SAFETY: forwarded contract.
    if unsafe { crate::populate(p, len) } {
        0
    } else {
        set_errno(libc::ENOMEM);
        -1
    }
}

/// The bytes of a C string, or `None` for null.
///
/// # Safety
/// `s` is null or a NUL-terminated string.
unsafe fn c_bytes<'a>(s: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_bytes())
}

/// `int strata_set_option(const char *name, const char *value)`:
/// [`crate::set_option`]. Returns 0, or -1 with `errno`: `EINVAL` for an
/// unknown name, a malformed value or a null argument, `EPERM` for a
/// setting read at start-up only, `EAGAIN` when it could not be applied.
///
/// # Safety
/// `name` and `value` are null or NUL-terminated strings.
pub unsafe extern "C" fn strata_set_option(name: *const c_char, value: *const c_char) -> c_int {
    // SAFETY: forwarded contract.
    let (Some(name), Some(value)) = (unsafe { c_bytes(name) }, unsafe { c_bytes(value) }) else {
        set_errno(libc::EINVAL);
        return -1;
    };
    match crate::options::set(name, value) {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e.errno());
            -1
        }
    }
}

/// `ssize_t strata_get_option(const char *name, char *buf, size_t len)`:
/// writes the setting's value as [`crate::get_option`] reads it back into
/// `buf`, `snprintf`-style, and returns its length; -1 with `errno`
/// `EINVAL` for an unknown name or a null `name`.
///
/// # Safety
/// `name` is null or a NUL-terminated string; `buf` is valid for `len`
/// bytes of writes, or `len` is 0.
pub unsafe extern "C" fn strata_get_option(
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> isize {
    // SAFETY: forwarded contract.
    let value = unsafe { c_bytes(name) }
        .ok_or(crate::OptionError::Unknown)
        .and_then(crate::options::get);
    match value {
        Ok(v) => {
            // SAFETY: forwarded contract.
            let mut w = unsafe { c_buffer(buf, len) };
            let _ = core::fmt::Write::write_fmt(&mut w, format_args!("{v}"));
            w.finish_c() as isize
        }
        Err(e) => {
            set_errno(e.errno());
            -1
        }
    }
}
