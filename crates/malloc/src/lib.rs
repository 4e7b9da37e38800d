//! # strata-malloc: strata as the C allocator
//!
//! A shared library (and a static one) exporting the C allocation functions
//! with glibc's semantics, so that
//!
//! ```text
//! cargo build --release -p strata-malloc
//! LD_PRELOAD=target/release/libstrata_malloc.so some-program
//! ```
//!
//! runs `some-program` with every `malloc` served by strata, and
//!
//! ```text
//! cc program.c target/release/libstrata_malloc.a -lpthread -ldl -lm -lrt -lutil -lgcc_s
//! ```
//!
//! builds a program that carries strata inside it. Besides the `malloc`
//! family it answers glibc's `mallinfo2`, `mallinfo`, `malloc_info` and
//! `malloc_stats` from strata's statistics, and exports strata's own
//! functions, declared in `include/strata.h` (`strata_stats_json`,
//! `strata_set_option`, ...).
//!
//! # Where the functions live
//! Their bodies are `strata::c_api`'s; this crate only exports them, by
//! expanding [`strata::export_c_abi!`] once. The same list serves the
//! `override` feature of `strata`, which makes a Rust executable export
//! them itself (`strata::c_api` explains why the export is a macro and not
//! a feature this crate would turn on).
//!
//! See the crate's README for the full table of functions.

#![no_std]
#![warn(missing_docs)]

strata::export_c_abi!();

// Heap profiling from C (declared in include/strata.h).

// For `std::io::Result`, the profile calls' error type (no allocation).
extern crate std;

use core::ffi::{c_char, c_int, CStr};
use libc::EINVAL;

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() = e };
}

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
