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
