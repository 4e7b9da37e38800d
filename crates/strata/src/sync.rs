//! The one place that chooses between loom's atomics (under `--cfg loom`) and
//! core's. Nothing else in this crate names either directly.
//!
//! The facade holds nothing but process-wide statics: its one-time set-up
//! word, the configuration, the bad-free hook and the background thread's
//! flag. Loom's atomics are not `const` and exist only inside one model run,
//! so these are always core's ([`statics`]). **Not modeled**: under
//! `--cfg loom` the facade is not the allocator (see `global_loom.rs`); the
//! structures the layers share between threads are modeled in their own
//! crates.

/// Atomics in process-wide statics: always core's, not modeled.
pub(crate) mod statics {
    pub(crate) use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
}
