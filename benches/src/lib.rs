//! Benchmark library for strata: allocator workloads, measurement and
//! reporting.
//!
//! Nothing here depends on the allocators being compared: every workload
//! takes the allocator as a parameter (`&A where A: GlobalAlloc`), so the
//! side-by-side main job (`benches/compare.rs`, run with
//! `cargo bench -p strata-benches --bench compare`) and future criterion
//! benches can share the same code. The peers (mimalloc, jemalloc) are
//! dev-dependencies of this crate only.
//!
//! The memory-behaviour bench (`benches/memory.rs`, run with
//! `cargo bench -p strata-benches --bench memory`) runs the scenarios of
//! [`memory`] with each allocator in a child process of its own
//! ([`child`]).

pub mod child;
pub mod measure;
pub mod memory;
pub mod report;
pub mod suite;
pub mod workloads;
