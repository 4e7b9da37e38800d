//! # strata-testkit: what strata's tests share
//!
//! Never a dependency of an allocator crate, only a dev-dependency:
//! - [`smaps`]: what the kernel says about this process's mappings (the
//!   huge-page tests read the `hg` flag back);
//! - [`loom_model`] (under `--cfg strata_loom`): the model runner every
//!   crate's loom models use, with its default preemption bound, and model
//!   threads with stacks big enough for the allocator's structures.

#![warn(missing_docs)]

#[cfg(strata_loom)]
pub mod loom_model;
pub mod smaps;
