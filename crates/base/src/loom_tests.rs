//! Loom models of the lock and the metadata pool. Run with
//! `RUSTFLAGS="--cfg strata_loom" cargo test --release --workspace loom` (see
//! docs/concurrency.md).

use std::vec::Vec;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

use strata_os::FakeOs;
use strata_testkit::loom_model::model;

use crate::{Lock, MetaPool};

/// Three threads increment a counter under the lock: no increment is lost,
/// and every critical section is ordered after the previous one (checked by
/// loom through the lock's `LockCheck`). Covers the uncontended path, the
/// spin, and the contended path (word `2`, wait, wake).
#[test]
fn loom_lock_counts() {
    model(|| {
        let lock = Arc::new(Lock::new(0u32));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || *lock.lock() += 1)
            })
            .collect();
        *lock.lock() += 1;
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 3);
        assert!(!lock.is_locked());
    });
}

/// `try_lock` never succeeds while another thread is inside, and a
/// successful `try_lock` sees what the previous holder wrote.
#[test]
fn loom_lock_try_lock() {
    model(|| {
        let lock = Arc::new(Lock::new(0u32));
        let inside = Arc::new(AtomicBool::new(false));
        let holder = {
            let (lock, inside) = (lock.clone(), inside.clone());
            thread::spawn(move || {
                let mut g = lock.lock();
                inside.store(true, Ordering::Relaxed);
                *g += 1;
                inside.store(false, Ordering::Relaxed);
            })
        };
        let got = match lock.try_lock() {
            Some(mut g) => {
                assert!(
                    !inside.load(Ordering::Relaxed),
                    "try_lock let a second thread in"
                );
                *g += 10;
                true
            }
            None => false,
        };
        holder.join().unwrap();
        assert_eq!(*lock.lock(), if got { 11 } else { 1 });
        assert!(!lock.is_locked());
    });
}

/// A record of the pool: big enough that a reused record is noticed.
struct Rec {
    owner: usize,
    serial: usize,
}

/// Two threads allocate and free records concurrently (one of them mapping
/// the chunk, the other maybe reserving): every record handed out is
/// distinct from every other live one, keeps what its owner wrote, and the
/// counts add up. FakeOs's internal std mutex is never held across a loom
/// operation (it guards plain bookkeeping only), so it cannot block a model
/// thread.
#[test]
fn loom_meta_pool_alloc_free() {
    model(|| {
        let os = Arc::new(FakeOs::new());
        let pool: Arc<MetaPool<Rec>> = Arc::new(MetaPool::new());
        let work = |owner: usize, pool: &MetaPool<Rec>, os: &FakeOs| {
            if owner == 1 {
                pool.reserve(os, 2);
            }
            let a = pool.alloc(os).unwrap();
            // SAFETY: a fresh record of ours.
            unsafe { a.as_ptr().write(Rec { owner, serial: 0 }) };
            let b = pool.alloc(os).unwrap();
            // SAFETY: a fresh record of ours.
            unsafe { b.as_ptr().write(Rec { owner, serial: 1 }) };
            // SAFETY: records of ours, written above.
            unsafe {
                assert_eq!((a.as_ref().owner, a.as_ref().serial), (owner, 0));
                pool.free(a);
                assert_eq!((b.as_ref().owner, b.as_ref().serial), (owner, 1));
            }
            b.as_ptr() as usize
        };
        let other = {
            let (pool, os) = (pool.clone(), os.clone());
            thread::spawn(move || work(1, &pool, &os))
        };
        let mine = work(0, &pool, &os);
        let theirs = other.join().unwrap();
        assert_ne!(mine, theirs, "one record handed out twice");
        assert_eq!(pool.in_use(), 2);
        for r in [mine, theirs] {
            // SAFETY: live records of this pool, no longer used.
            unsafe { pool.free(core::ptr::NonNull::new(r as *mut Rec).unwrap()) };
        }
        assert_eq!(pool.in_use(), 0);
        // Reserving and the fallback map never leave two chunks where one
        // was asked for at a time: at most one chunk per thread.
        assert!(os.live_mappings() <= 2);
    });
}
