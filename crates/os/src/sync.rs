//! The one place that chooses between loom's atomics (under `--cfg loom`) and
//! core's. Nothing else in this crate names either directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Spin-wait hint; under loom, a yield so the model can make progress.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Declares a function `const` except under `--cfg loom`, where the atomics it
/// builds are loom's and cannot be created in a constant.
#[macro_export]
macro_rules! const_unless_loom {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$($gen:tt),*>)? ($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$meta])* $vis const fn $name $(<$($gen),*>)? ($($args)*) -> $ret $body
        #[cfg(loom)]
        $(#[$meta])* $vis fn $name $(<$($gen),*>)? ($($args)*) -> $ret $body
    };
}

/// Atomics for process-wide statics, which loom cannot model (its atomics
/// are not `const`): caches of constants, configuration, statistics and
/// one-time set-up. Always core's; never used for the synchronisation the
/// loom models check.
pub(crate) mod statics {
    pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};
}
