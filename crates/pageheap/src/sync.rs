//! The one place that chooses between loom's atomics (under `--cfg strata_loom`) and
//! core's. Nothing else in this crate names either directly.
//!
//! - The modeled family (`AtomicU64`, `AtomicUsize`) is loom's under
//!   `--cfg strata_loom`: the decay clock, the heap's growth counters and its
//!   memory limit, which live in the `PageHeap` value itself.
//! - [`memory`] is always core's: the pagemap's slots. Its mid and leaf
//!   nodes are memory mapped from the OS, zero-filled, and read as arrays of
//!   atomics, which is valid for core's atomics (all-zero is null / 0) and
//!   never for loom's (they are handles into loom's model state). The root
//!   uses the same type so that one publication function serves every level.
//!   Not modeled directly: the publication protocol itself
//!   ([`crate::pagemap`]'s `publish` and `published`) is generic over
//!   [`PtrSlot`] and is modeled on a loom slot (`loom_tests.rs`).
//!
//! The default build gets exactly core's atomics.

#[cfg(strata_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(strata_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Atomics inside memory mapped from the OS and reinterpreted (the
/// pagemap's nodes): always core's. **Not modeled** (see the module docs).
pub(crate) mod memory {
    pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU16, AtomicU32};
}

/// A pointer slot a pagemap node can be published in: core's `AtomicPtr`
/// (every pagemap slot) and, under loom, loom's (the models' slots), so the
/// one publication protocol runs in the heap and in the loom models.
pub(crate) trait PtrSlot<T> {
    fn load(&self, order: Ordering) -> *mut T;
    fn compare_exchange(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T>;
}

impl<T> PtrSlot<T> for memory::AtomicPtr<T> {
    #[inline(always)]
    fn load(&self, order: Ordering) -> *mut T {
        memory::AtomicPtr::load(self, order)
    }
    #[inline(always)]
    fn compare_exchange(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        memory::AtomicPtr::compare_exchange(self, current, new, success, failure)
    }
}

#[cfg(strata_loom)]
impl<T> PtrSlot<T> for loom::sync::atomic::AtomicPtr<T> {
    fn load(&self, order: Ordering) -> *mut T {
        loom::sync::atomic::AtomicPtr::load(self, order)
    }
    fn compare_exchange(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        loom::sync::atomic::AtomicPtr::compare_exchange(self, current, new, success, failure)
    }
}
