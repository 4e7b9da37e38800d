//! Loom models of the registry of thread caches. Run with
//! `RUSTFLAGS="--cfg strata_loom" cargo test --release --workspace loom` (see
//! docs/concurrency.md).
//!
//! What is modeled: the list of live caches (linked in when a thread's cache
//! is created, unlinked by its destructor) racing `stats()` walking it, and
//! the one-time creation of the pthread key. What is not: the slots and the
//! pthread key destructor themselves. A slot is a thread-local only its own
//! thread (and that thread's TLS destructors) ever touches, and the
//! sentinels are immutable statics, so neither is shared mutable state;
//! loom cannot drive real thread-locals or pthread destructors anyway (its
//! threads are coroutines on one OS thread).

use std::boxed::Box;

use loom::sync::Arc;
use loom::thread;

use crate::budget::Budget;
use crate::cache::ThreadCache;
use crate::fake::FakeBackend;
use crate::{Backend, ThreadCaches};
use strata_testkit::loom_model::{model, spawn_big};

/// What `create` does for a new thread, minus the slot and the pthread
/// value: a record from the pool, initialised, counting `objects` of class
/// 1 (none really there: the cache is dropped without a flush), linked
/// into the list.
fn new_cache(reg: &ThreadCaches<FakeBackend>, objects: u32) -> usize {
    // The budget pool is core's atomics (the caches hold its address), not
    // modeled: a static one serves every model run.
    static BUDGET: Budget = Budget::new(64 << 20, 1 << 20);
    let c = reg.records.alloc(reg.backend().os()).unwrap().as_ptr();
    // SAFETY: a fresh record of ours; then registered once.
    unsafe {
        assert!(ThreadCache::init(c, reg.backend(), &BUDGET));
        ThreadCache::pretend_held(c, 1, objects);
        reg.register(c);
    }
    c as usize
}

/// What the destructor does after flushing: unlink the cache, free its
/// record.
fn drop_cache(reg: &ThreadCaches<FakeBackend>, c: usize) {
    let c = c as *mut ThreadCache;
    // SAFETY: a cache registered by `new_cache`, no longer used.
    unsafe {
        reg.unregister(c);
        reg.records.free(core::ptr::NonNull::new(c).unwrap());
    }
}

/// Two threads create their caches (one also exits: its cache is unlinked
/// and the record freed) while the main thread walks the list for
/// `stats()`: every walk sees a consistent list (the counts and the bytes
/// of exactly the caches linked: 10 and 100 objects), and at the end one
/// cache is live, two were created, and the list holds exactly it. The
/// list's lock orders every section (checked by loom), and no walk ever
/// reaches a record already back in the pool (its bytes would be missing or
/// doubled).
#[test]
fn loom_registry_list_and_stats() {
    // The bytes of one object of class 1.
    const S: usize = crate::fake::SIZES[1];
    model(|| {
        let reg = Arc::new(ThreadCaches::new(FakeBackend::new()));
        let exiting = {
            let reg = reg.clone();
            spawn_big(move || {
                let c = new_cache(&reg, 100);
                let s = reg.stats();
                assert!(s.live_caches >= 1 && s.cached_bytes >= 100 * S, "{s:?}");
                drop_cache(&reg, c);
            })
        };
        let staying = {
            let reg = reg.clone();
            spawn_big(move || new_cache(&reg, 10))
        };
        let s = reg.stats();
        let expected: &[usize] = match s.live_caches {
            0 => &[0],
            1 => &[10 * S, 100 * S],
            2 => &[110 * S],
            n => panic!("{n} live caches"),
        };
        assert!(expected.contains(&s.cached_bytes), "{s:?}");
        assert!(s.created as usize >= s.live_caches);
        exiting.join().unwrap();
        let c = staying.join().unwrap();
        let s = reg.stats();
        assert_eq!((s.live_caches, s.created, s.cached_bytes), (1, 2, 10 * S));
        assert_eq!(reg.records.in_use(), 1);
        drop_cache(&reg, c);
        assert_eq!(reg.stats().live_caches, 0);
    });
}

/// Two threads ask for the registry's pthread key at once (double-checked
/// under `key_lock`): both get the same key, so it was created once.
#[test]
fn loom_registry_key_created_once() {
    model(|| {
        // `key` wants a 'static registry: one leaked per run (small).
        let reg: &'static ThreadCaches<FakeBackend> =
            Box::leak(Box::new(ThreadCaches::new(FakeBackend::new())));
        let other = thread::spawn(move || reg.key().unwrap());
        let mine = reg.key().unwrap();
        let theirs = other.join().unwrap();
        assert_eq!(mine, theirs, "the pthread key was created twice");
        assert_eq!(reg.key(), Some(mine));
        // SAFETY: a key of ours that no thread holds a value for.
        unsafe { libc::pthread_key_delete(mine) };
    });
}
