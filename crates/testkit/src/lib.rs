//! # strata-testkit: what strata's tests share
//!
//! Never a dependency of an allocator crate, only a dev-dependency of those
//! (the stress suite and the benchmarks depend on it directly):
//! - [`smaps`]: what the kernel says about this process's mappings (the
//!   huge-page tests read the `hg` flag back);
//! - `loom_model` (under `--cfg strata_loom`): the model runner every
//!   crate's loom models use, with its default preemption bound, and model
//!   threads with stacks big enough for the allocator's structures;
//! - [`cargo`]: building more of the workspace from a test, with the
//!   running test's profile and target directory;
//! - [`pairs`]: the fast-path probe's allocate/free loop;
//! - [`pprof`]: a reader of the heap profiles strata writes, so that the
//!   profile tests check them without `go tool pprof`;
//! - [`rng`]: the one deterministic random-number generator (splitmix64)
//!   and the seed derivations of the tests, the stress suite and the
//!   benchmarks;
//! - [`xml`]: a check that `malloc_info`'s XML is well nested.

#![warn(missing_docs)]

pub mod cargo;
#[cfg(strata_loom)]
pub mod loom_model;
pub mod pairs;
pub mod pprof;
pub mod rng;
pub mod smaps;
pub mod xml;
