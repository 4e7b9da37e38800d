//! strata as the C allocator: the bodies of `malloc`, `free`, ... with
//! glibc's semantics ([`alloc`]), glibc's introspection functions
//! ([`introspect`]: `mallinfo2`, `malloc_info`, `malloc_stats`...) and
//! strata's own C functions ([`extension`]: `strata_stats_json`,
//! `strata_set_option`..., declared in `crates/malloc/include/strata.h`).
//!
//! # Who exports them
//! The functions here are ordinary Rust functions with the C calling
//! convention and **no** exported symbol. One list, [`export_c_abi!`](crate::export_c_abi),
//! defines the unprefixed `#[no_mangle]` symbols that forward to them, and
//! exactly two places expand it:
//!
//! ```text
//!   strata::c_api  (the bodies; exported by nobody)
//!        │
//!        ├── strata-malloc: export_c_abi!()  ─▶ libstrata_malloc.so (LD_PRELOAD)
//!        │                                      libstrata_malloc.a  (static C programs)
//!        └── strata, feature `override`:     ─▶ a Rust executable's own malloc/free,
//!                                               used by its C dependencies too
//! ```
//!
//! The symbols are not simply `#[no_mangle]` here behind a feature that
//! strata-malloc turns on: cargo unifies features across a workspace's
//! build, so every test and bench binary built with strata-malloc would
//! then export `malloc` too, and replace the C allocator it means to
//! measure or compare with. A crate exports the C functions only by asking:
//! with the macro, or with `features = ["override"]`.
//!
//! # Rules kept by every function
//! Nothing allocates through Rust's global allocator or panics; a failure
//! is a null pointer or -1 with `errno` set, as the function's C contract
//! says.

pub mod alloc;
pub mod extension;
pub mod introspect;

pub use alloc::*;
pub use extension::*;
pub use introspect::*;

/// The C stream type of `malloc_info`.
pub type FILE = libc::FILE;

/// Defines every C function of [`crate::c_api`] as an unprefixed,
/// exported (`#[no_mangle]`) symbol of the crate that expands it: `malloc`,
/// `free`, ..., `mallinfo2`, `malloc_info`, `strata_stats_json`... Expand it
/// once, at the top level of a library or binary that is to replace the C
/// allocator (strata-malloc does; so does strata's `override` feature).
///
/// ```ignore
/// strata::export_c_abi!();
/// ```
#[macro_export]
macro_rules! export_c_abi {
    () => {
        $crate::export_c_abi! {
            safe malloc(size: usize) -> *mut ::core::ffi::c_void;
            unsafe free(p: *mut ::core::ffi::c_void) -> ();
            safe calloc(n: usize, size: usize) -> *mut ::core::ffi::c_void;
            unsafe realloc(p: *mut ::core::ffi::c_void, size: usize) -> *mut ::core::ffi::c_void;
            unsafe reallocarray(p: *mut ::core::ffi::c_void, n: usize, size: usize)
                -> *mut ::core::ffi::c_void;
            unsafe posix_memalign(out: *mut *mut ::core::ffi::c_void, align: usize, size: usize)
                -> ::core::ffi::c_int;
            safe aligned_alloc(align: usize, size: usize) -> *mut ::core::ffi::c_void;
            safe memalign(align: usize, size: usize) -> *mut ::core::ffi::c_void;
            safe __libc_memalign(align: usize, size: usize) -> *mut ::core::ffi::c_void;
            safe valloc(size: usize) -> *mut ::core::ffi::c_void;
            safe pvalloc(size: usize) -> *mut ::core::ffi::c_void;
            unsafe malloc_usable_size(p: *mut ::core::ffi::c_void) -> usize;
            safe malloc_trim(pad: usize) -> ::core::ffi::c_int;
            safe malloc_stats() -> ();
            safe mallinfo() -> $crate::c_api::MallInfoInt;
            safe mallinfo2() -> $crate::MallInfo;
            unsafe malloc_info(options: ::core::ffi::c_int, fp: *mut $crate::c_api::FILE)
                -> ::core::ffi::c_int;
            unsafe strata_stats_json(buf: *mut ::core::ffi::c_char, len: usize) -> usize;
            safe strata_release_free_memory() -> usize;
            unsafe strata_populate(p: *mut ::core::ffi::c_void, len: usize) -> ::core::ffi::c_int;
            unsafe strata_set_option(name: *const ::core::ffi::c_char,
                value: *const ::core::ffi::c_char) -> ::core::ffi::c_int;
            unsafe strata_get_option(name: *const ::core::ffi::c_char,
                buf: *mut ::core::ffi::c_char, len: usize) -> isize;
        }
        // Other names of `free`: they call the `free` defined above, so
        // that its body (strata's whole free path) is inlined there once,
        // not once per name.
        $crate::export_c_abi!(@alias free: cfree(p: *mut ::core::ffi::c_void));
        $crate::export_c_abi!(@alias free: free_sized(p: *mut ::core::ffi::c_void, _size: usize));
        $crate::export_c_abi!(@alias free:
            free_aligned_sized(p: *mut ::core::ffi::c_void, _align: usize, _size: usize));
        // glibc's own names of its allocation functions, which a few programs
        // and libraries call directly (to reach "the real malloc" under a
        // wrapper of their own): the same functions, so a block from one
        // name may go to any other.
        $crate::export_c_abi!(@alias free: __libc_free(p: *mut ::core::ffi::c_void));
        $crate::export_c_abi!(@same safe malloc: __libc_malloc(size: usize)
            -> *mut ::core::ffi::c_void);
        $crate::export_c_abi!(@same safe calloc: __libc_calloc(n: usize, size: usize)
            -> *mut ::core::ffi::c_void);
        $crate::export_c_abi!(@same unsafe realloc:
            __libc_realloc(p: *mut ::core::ffi::c_void, size: usize) -> *mut ::core::ffi::c_void);
        $crate::export_c_abi!(@same safe valloc: __libc_valloc(size: usize)
            -> *mut ::core::ffi::c_void);
        $crate::export_c_abi!(@same safe pvalloc: __libc_pvalloc(size: usize)
            -> *mut ::core::ffi::c_void);
    };
    (@same safe $target:ident: $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[doc = concat!("glibc's name `", stringify!($name), "`: strata's `", stringify!($target), "`.")]
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> $ret {
            $target($($arg),*)
        }
    };
    (@same unsafe $target:ident: $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[doc = concat!("glibc's name `", stringify!($name), "`: strata's `", stringify!($target), "`.")]
        ///
        /// # Safety
        #[doc = concat!("As for `", stringify!($target), "`.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the caller keeps the same contract.
            unsafe { $target($($arg),*) }
        }
    };
    (@alias $target:ident: $name:ident($p:ident: $pty:ty $(, $arg:ident: $ty:ty)*)) => {
        #[doc = concat!("strata's `", stringify!($name), "`: `", stringify!($target), "`.")]
        ///
        /// # Safety
        /// As for `free`.
        #[no_mangle]
        pub unsafe extern "C" fn $name($p: $pty $(, $arg: $ty)*) {
            // SAFETY: the caller keeps `free`'s contract.
            unsafe { $target($p) }
        }
    };
    ($($kind:tt $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $($crate::export_c_abi!(@one $kind $name($($arg: $ty),*) -> $ret);)*
    };
    (@one safe $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[doc = concat!("strata's `", stringify!($name), "` (`strata::c_api::", stringify!($name), "`).")]
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> $ret {
            $crate::c_api::$name($($arg),*)
        }
    };
    (@one unsafe $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[doc = concat!("strata's `", stringify!($name), "` (`strata::c_api::", stringify!($name), "`).")]
        ///
        /// # Safety
        /// The C contract of the function (see `strata::c_api`).
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the caller keeps the same contract.
            unsafe { $crate::c_api::$name($($arg),*) }
        }
    };
}
