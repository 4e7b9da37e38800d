//! The one place that chooses between loom's atomics (under `--cfg strata_loom`) and
//! core's. Nothing else in this crate names either directly.
//!
//! - The modeled family (`AtomicUsize`) is loom's under `--cfg strata_loom`: the
//!   registry's own words (its pthread key, the cache budget), in the
//!   `ThreadCaches` value.
//! - [`statics`] is always core's: a cache's list lengths, which its
//!   thread stores atomically so that statistics can read them from any
//!   thread, and which live in every cache, including the process-wide
//!   `static` sentinels (which must be constants, and loom's atomics are
//!   not). **Not modeled**: only ever read by others for statistics.
//!
//! The default build gets exactly core's atomics.

#[cfg(strata_loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

#[cfg(not(strata_loom))]
pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};

/// Atomics in process-wide statics and statistics: always core's, not
/// modeled (see the module docs).
pub(crate) mod statics {
    pub(crate) use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicUsize, Ordering};
}
