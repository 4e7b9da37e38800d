//! A mutual-exclusion lock that never allocates and can be taken and released
//! around `fork`.
//!
//! `std::sync::Mutex` would serve for locking, but an allocator must also be
//! able to take every lock before `fork` and release them in the child without
//! holding a guard (`pthread_atfork` hands us three bare callbacks), and under
//! loom it must use loom's atomics. This lock is a classic three-state futex
//! word:
//!
//! - `0`: unlocked; `1`: locked, no waiter; `2`: locked, maybe waiters.
//!
//! A contended acquirer spins briefly (critical sections in the allocator are
//! short), then marks the word `2` and sleeps in `FUTEX_WAIT`. The releaser
//! wakes one sleeper only when the word was `2`, so the uncontended path is one
//! compare-exchange to lock and one swap to unlock, with no system call.
//!
//! # Invariants
//! - The data is only reachable through a [`LockGuard`] or between
//!   [`Lock::raw_lock`] and [`Lock::raw_unlock`].
//! - Nothing here allocates, panics or formats.
//!
//! Under `--cfg strata_loom` the futex becomes loom's mutex and condition variable
//! (`sync::Parking`, same semantics: sleep only while the word still holds
//! the expected value), and every guard's critical section is checked by
//! loom (`sync::LockCheck`): the models fail if two sections are not ordered
//! one after the other.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

use crate::sync::{spin_hint, AtomicU32, LockCheck, LockSection, Ordering, Parking, LOCK_SPINS};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A futex-based lock protecting a `T`.
pub struct Lock<T> {
    state: AtomicU32,
    data: UnsafeCell<T>,
    /// Sleeping and waking on `state` (zero-sized outside loom).
    parking: Parking,
    /// Zero-sized outside loom.
    check: LockCheck,
}

// SAFETY: the lock hands out access to `data` to one thread at a time, so it is
// `Sync` whenever `T` may be sent between threads.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: moving the lock moves the `T`.
unsafe impl<T: Send> Send for Lock<T> {}

impl<T> Lock<T> {
    crate::const_unless_loom! {
        /// A new unlocked lock.
        pub fn new(data: T) -> Self {
            Lock {
                state: AtomicU32::new(UNLOCKED),
                data: UnsafeCell::new(data),
                parking: Parking::new(),
                check: LockCheck::new(),
            }
        }
    }

    /// Takes the lock, waiting as long as needed.
    #[inline]
    pub fn lock(&self) -> LockGuard<'_, T> {
        self.raw_lock();
        LockGuard {
            lock: self,
            section: self.check.begin(),
        }
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| LockGuard {
                lock: self,
                section: self.check.begin(),
            })
    }

    /// Takes the lock without a guard: for `pthread_atfork`'s prepare handler.
    /// Release it with [`Lock::raw_unlock`].
    #[inline]
    pub fn raw_lock(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..LOCK_SPINS {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            spin_hint();
        }
        // From here on we may sleep, so the word must say "maybe waiters".
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            self.parking.wait(&self.state, CONTENDED);
        }
    }

    /// Releases a lock taken with [`Lock::raw_lock`].
    ///
    /// # Safety
    /// The calling context must hold the lock (taken by `raw_lock`, or the
    /// child side of a `fork` whose parent held it), and no guard may exist.
    #[inline]
    pub unsafe fn raw_unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.parking.wake_one(&self.state);
        }
    }

    /// Resets the lock to unlocked without waking anyone: for the child of a
    /// `fork`, where the waiters of the parent do not exist.
    ///
    /// # Safety
    /// Only in a single-threaded child process after `fork`, for a lock the
    /// parent held across the fork.
    pub unsafe fn reset_in_child(&self) {
        self.state.store(UNLOCKED, Ordering::Release);
    }

    /// Whether someone holds the lock now (a racy snapshot, for assertions).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }

    /// Mutable access without locking, through exclusive ownership.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Proof that the lock is held; gives access to the data.
pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
    /// Zero-sized outside loom.
    section: LockSection,
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held, so no other
        // reference to the data is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.section.end();
        // SAFETY: the guard was created by taking the lock.
        unsafe { self.lock.raw_unlock() }
    }
}

/// The operations a `fork` handler needs from a lock.
pub trait ForkLock {
    /// Takes the lock (prepare handler).
    fn fork_prepare(&self);
    /// Releases it in the parent.
    ///
    /// # Safety
    /// After `fork_prepare` in this thread.
    unsafe fn fork_parent(&self);
    /// Resets it in the child.
    ///
    /// # Safety
    /// In the child of a fork whose parent called `fork_prepare`.
    unsafe fn fork_child(&self);
}

impl<T> ForkLock for Lock<T> {
    fn fork_prepare(&self) {
        self.raw_lock();
    }
    unsafe fn fork_parent(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.raw_unlock() }
    }
    unsafe fn fork_child(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.reset_in_child() }
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_survive_contention() {
        let lock = Arc::new(Lock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 80_000);
        assert!(!lock.is_locked());
    }

    #[test]
    fn try_lock_fails_while_held() {
        let lock = Lock::new(());
        let g = lock.lock();
        assert!(lock.try_lock().is_none());
        drop(g);
        assert!(lock.try_lock().is_some());
    }

    #[test]
    fn raw_lock_pairs_with_raw_unlock() {
        let lock = Lock::new(5);
        lock.raw_lock();
        assert!(lock.is_locked());
        // SAFETY: taken just above, no guard exists.
        unsafe { lock.raw_unlock() };
        assert_eq!(*lock.lock(), 5);
    }
}
