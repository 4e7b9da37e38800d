//! The one place in this crate that chooses between loom's types (under
//! `--cfg strata_loom`, the loom models' own cfg) and core's. Nothing else
//! here names either directly.
//!
//! The modeled family (`AtomicU32`, `AtomicUsize`, [`LockCheck`]) is loom's
//! under `--cfg strata_loom`, so the models in `loom_tests.rs` explore every
//! interleaving of the lock and the metadata pool. The default build gets
//! exactly core's atomics and zero-sized stand-ins for the loom-only checks:
//! nothing here costs anything outside the models.

#[cfg(strata_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

#[cfg(not(strata_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Spins a contended lock tries before it sleeps. Under loom, one: the spin
/// phase and the sleeping phase are both explored, and a model does not
/// spend its branches on a hundred identical spins.
pub(crate) const LOCK_SPINS: u32 = if cfg!(strata_loom) { 1 } else { 100 };

/// Spin-wait hint; under loom, a yield so the model can make progress.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(strata_loom)]
    loom::thread::yield_now();
    #[cfg(not(strata_loom))]
    core::hint::spin_loop();
}

/// Sleeping on a lock word until another thread wakes it: the futex
/// ([`strata_os::futex`]); zero-sized. Under loom, loom's mutex and condition variable with the
/// futex's semantics (a waiter sleeps only if the word still holds the
/// expected value, checked under the mutex a waker takes), so a model never
/// spins: a spinning waiter would let loom starve the holder forever.
#[cfg(not(strata_loom))]
pub(crate) struct Parking;

#[cfg(not(strata_loom))]
impl Parking {
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        Parking
    }

    /// Sleeps while `word` holds `expected` (may return spuriously).
    pub(crate) fn wait(&self, word: &AtomicU32, expected: u32) {
        strata_os::futex::wait(word, expected);
    }

    /// Wakes one thread sleeping on `word`.
    pub(crate) fn wake_one(&self, word: &AtomicU32) {
        strata_os::futex::wake_one(word);
    }
}

#[cfg(strata_loom)]
pub(crate) struct Parking {
    mutex: loom::sync::Mutex<()>,
    wakeups: loom::sync::Condvar,
}

#[cfg(strata_loom)]
impl Parking {
    pub(crate) fn new() -> Self {
        Parking {
            mutex: loom::sync::Mutex::new(()),
            wakeups: loom::sync::Condvar::new(),
        }
    }

    /// Sleeps while `word` holds `expected`, like `FUTEX_WAIT`: the check
    /// and the sleep are atomic with respect to [`Parking::wake_one`].
    pub(crate) fn wait(&self, word: &AtomicU32, expected: u32) {
        let g = self.mutex.lock().unwrap();
        if word.load(Ordering::Relaxed) == expected {
            drop(self.wakeups.wait(g).unwrap());
        }
    }

    /// Wakes one thread sleeping on `word`, like `FUTEX_WAKE`.
    pub(crate) fn wake_one(&self, _word: &AtomicU32) {
        let _g = self.mutex.lock().unwrap();
        self.wakeups.notify_one();
    }
}

/// Under loom, a cell that loom checks every critical section of a
/// [`crate::Lock`] against: a section that is not ordered after the previous
/// one (a lock that lets two threads in, or one whose orderings are too weak
/// to publish the data) makes the model fail with a causality violation.
/// Otherwise nothing: a zero-sized type whose methods do nothing.
#[cfg(strata_loom)]
pub(crate) struct LockCheck(loom::cell::UnsafeCell<()>);

/// A critical section in progress, as seen by [`LockCheck`]; ended by
/// [`LockSection::end`] before the lock is released.
#[cfg(strata_loom)]
pub(crate) struct LockSection(Option<loom::cell::MutPtr<()>>);

#[cfg(strata_loom)]
impl LockCheck {
    pub(crate) fn new() -> Self {
        LockCheck(loom::cell::UnsafeCell::new(()))
    }

    /// Starts a critical section (the lock was just taken).
    pub(crate) fn begin(&self) -> LockSection {
        LockSection(Some(self.0.get_mut()))
    }
}

#[cfg(strata_loom)]
impl LockSection {
    /// Ends the critical section (the lock is about to be released).
    pub(crate) fn end(&mut self) {
        self.0 = None;
    }
}

#[cfg(not(strata_loom))]
pub(crate) struct LockCheck;

#[cfg(not(strata_loom))]
pub(crate) struct LockSection;

#[cfg(not(strata_loom))]
impl LockCheck {
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        LockCheck
    }

    #[inline(always)]
    pub(crate) fn begin(&self) -> LockSection {
        LockSection
    }
}

#[cfg(not(strata_loom))]
impl LockSection {
    #[inline(always)]
    pub(crate) fn end(&mut self) {}
}

/// Declares a function `const` except under `--cfg strata_loom`, where the atomics it
/// builds are loom's and cannot be created in a constant.
#[macro_export]
macro_rules! const_unless_loom {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$($gen:tt),*>)? ($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(strata_loom))]
        $(#[$meta])* $vis const fn $name $(<$($gen),*>)? ($($args)*) -> $ret $body
        #[cfg(strata_loom)]
        $(#[$meta])* $vis fn $name $(<$($gen),*>)? ($($args)*) -> $ret $body
    };
}

/// An array of `$n` copies of `$value`: `[const { $value }; $n]`, except
/// under `--cfg strata_loom`, where `$value` holds loom's atomics, which are not
/// constants, and each element is built in turn (`core::array::from_fn`).
/// For the bodies of [`const_unless_loom`] functions.
#[macro_export]
macro_rules! array_unless_loom {
    ($value:expr; $n:expr) => {{
        #[cfg(not(strata_loom))]
        let a = [const { $value }; $n];
        #[cfg(strata_loom)]
        let a = ::core::array::from_fn(|_| $value);
        a
    }};
}
