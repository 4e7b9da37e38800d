//! Benchmark library for strata: allocator workloads, measurement and
//! reporting.
//!
//! Nothing here depends on the allocators being compared: every workload
//! takes the allocator as a parameter (`&A where A: GlobalAlloc`), so the
//! side-by-side main job (`benches/compare.rs`, run with
//! `cargo bench -p strata-benches --bench compare`) and the criterion micro
//! benches (`benches/micro.rs`) share the same code. The peers (mimalloc,
//! jemalloc) are dev-dependencies of this crate only. The main job's rows
//! are in [`suite`], its peak-RSS child runs in [`rss`], what they produced
//! in [`results`], its tables in [`report`] and [`summary`], its plot in
//! [`plot`]; see `README.md`.
//!
//! The memory-behaviour bench (`benches/memory.rs`, run with
//! `cargo bench -p strata-benches --bench memory`) runs the scenarios of
//! [`memory`] with each allocator in a child process of its own
//! ([`child`]). Both take the command line of [`cli`] and the run sizes of
//! [`mode`].

pub mod child;
pub mod cli;
pub mod measure;
pub mod memory;
pub mod mode;
pub mod plot;
pub mod report;
pub mod results;
pub mod rss;
pub mod suite;
pub mod summary;
pub mod units;
pub mod workloads;
