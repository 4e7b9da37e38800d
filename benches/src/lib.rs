//! Benchmark library for strata: allocator workloads, measurement,
//! targets and reporting, shared by the bench binaries.
//!
//! Nothing here depends on the peers being compared: every workload
//! takes the allocator as a parameter (`&A where A: GlobalAlloc`), so the
//! side-by-side main job (`benches/compare.rs`, run with
//! `cargo bench -p strata-benches --bench compare`), the memory-behaviour
//! bench (`benches/memory.rs`, `--bench memory`) and the criterion micro
//! benches (`benches/micro.rs`) share the same code. The peers (mimalloc,
//! jemalloc) are dev-dependencies of this crate only; tcmalloc is opened at
//! run time ([`tcmalloc`]), when the system has it.
//!
//! Every workload runs through two interfaces ([`api`]): Rust's
//! `GlobalAlloc`, and C's malloc/free seen as a `GlobalAlloc` that forgets
//! the layout on free ([`api::Unsized`]).
//!
//! - what runs: the main job's rows in [`suite`] (over [`workloads`]), the
//!   memory scenarios in [`memory`]; how big a run is, [`mode`];
//! - how it runs: timing and resource usage in [`measure`]; every run in a
//!   child process of its own goes through [`child`] (the main job's peak
//!   RSS, [`rss`], and every memory scenario);
//! - what came out: [`results`]; the targets as data in [`targets`],
//!   checked by [`judge`]; every table, CSV and SUMMARY in [`report`], the
//!   main job's plot in [`plot`]; the shared command line in [`cli`].
//!
//! See `README.md` for the layout and how to change a target.

pub mod api;
pub mod child;
pub mod cli;
pub mod judge;
pub mod measure;
pub mod memory;
pub mod mode;
pub mod plot;
pub mod report;
pub mod results;
pub mod rss;
pub mod suite;
pub mod targets;
pub mod tcmalloc;
pub mod units;
pub mod workloads;
