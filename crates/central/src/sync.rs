//! The one place that chooses between loom's atomics (under `--cfg strata_loom`) and
//! core's. Nothing else in this crate names either directly.
//!
//! The central layer's locks are strata-os's (loom's under `--cfg strata_loom`);
//! its own atomic is the shared transfer-cache budget. Under loom a
//! transfer cache also holds fewer batches, so that the models reach its
//! limit in a few steps.

#[cfg(strata_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

#[cfg(not(strata_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Most batches a transfer cache holds: 256, or 2 under loom, so that a
/// model fills a class's transfer cache with two batches and the third goes
/// to the spans (every class's capacity is at least 2 anyway).
pub(crate) const TRANSFER_SLOTS: usize = if cfg!(strata_loom) { 2 } else { 256 };

/// Core's atomics in every build, for statics shared by every central
/// layer of the process (a loom atomic cannot live in a static).
pub(crate) mod statics {
    pub(crate) use core::sync::atomic::{AtomicU64, Ordering};
}
