//! The facade's atomics. It holds nothing but process-wide statics: its
//! one-time set-up word, the configuration, the bad-free hook and the
//! background thread's flag. They are core's always: the loom models run in
//! the layer crates, each under `--cfg strata_loom` on its own, and never
//! build the facade (docs/concurrency.md).

/// Atomics in process-wide statics.
pub(crate) mod statics {
    pub(crate) use core::sync::atomic::{
        AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}
