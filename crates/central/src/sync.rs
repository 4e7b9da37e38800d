//! The one place that chooses between loom's atomics (under `--cfg loom`) and
//! core's. Nothing else in this crate names either directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};
