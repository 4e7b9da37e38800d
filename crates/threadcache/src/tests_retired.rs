//! Thread caches left by exited threads: kept, adopted by the next thread,
//! and given back, over the fake backend.

use std::boxed::Box;
use std::sync::atomic::Ordering;
use std::vec::Vec;

use crate::fake::SIZES;
use crate::tests::{cached, registry};
use crate::{Backend, Slot};

/// A thread that exits holding a little leaves its cache to the next
/// thread, objects and all: the next thread's first allocation of a class
/// is the object the exited thread freed last, without a call to the
/// backend. At most `MAX_RETIRED` caches are kept, and one that no thread
/// took within the idle interval goes back.
#[test]
fn an_exited_threads_small_cache_goes_to_the_next_thread() {
    use crate::retired::MAX_RETIRED;
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    // Allocates `n` objects of class 2, frees them, and returns the last
    // freed and the object the next allocation gets before any free.
    let churn = move |n: usize| {
        std::thread::spawn(move || {
            SLOT.with(|slot| {
                let first = reg.alloc(slot, 2, 0) as usize;
                let objs: Vec<usize> = (0..n).map(|_| reg.alloc(slot, 2, 0) as usize).collect();
                for &p in [first].iter().chain(&objs) {
                    // SAFETY: live objects given up once.
                    unsafe { reg.free(slot, p as *mut u8, 2) };
                }
                (objs.last().copied().unwrap_or(first), first)
            })
        })
        .join()
        .unwrap()
    };
    let (last_freed, _) = churn(5);
    let held = reg.backend().outstanding.load(Ordering::Relaxed);
    assert!(held > 0, "the exited thread's cache was flushed");
    assert_eq!(reg.stats().cached_bytes, held as usize * SIZES[2]);
    let calls = reg.backend().batch_calls.load(Ordering::Relaxed);
    let (_, first) = churn(0);
    assert_eq!(first, last_freed, "the next thread did not get the cache");
    assert_eq!(
        reg.backend().batch_calls.load(Ordering::Relaxed),
        calls,
        "an adopted list holding objects went to the backend"
    );
    // Threads that overlap keep one cache each, up to the bound.
    let barrier: &'static _ = Box::leak(Box::new(std::sync::Barrier::new(MAX_RETIRED + 2)));
    let threads: Vec<_> = (0..MAX_RETIRED + 2)
        .map(|_| {
            std::thread::spawn(move || {
                SLOT.with(|slot| {
                    let p = reg.alloc(slot, 3, 0);
                    barrier.wait();
                    // SAFETY: a live object given up once.
                    unsafe { reg.free(slot, p, 3) };
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(reg.list.lock().retired.len(), MAX_RETIRED);
    // Past the idle interval, the next exit gives the kept caches back.
    reg.backend().os().advance_ms(1_000);
    churn(0);
    assert_eq!(reg.list.lock().retired.len(), 1);
    assert_eq!(reg.release_retired(), 1);
    assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
    assert_eq!(reg.stats().cached_bytes, 0);
}

/// An adopted list's first free overflows and gives the list back, and
/// the refill after it starts out apart, so that a thread that frees an
/// object another thread handed it, then allocates, does not get that
/// object back (passive false sharing, as in the cache-scratch benchmark).
#[test]
fn an_adopted_list_does_not_hand_back_a_foreign_object() {
    adopted_list_goes_back_whole(1);
}

/// The same with several objects in the adopted list: all of them go back
/// too (a list below its batch that overflows keeps half its maximum
/// otherwise, and the allocation after it would be served from those: the
/// previous thread's objects, as close to other threads' as it left them).
#[test]
fn an_adopted_list_of_several_objects_goes_back_whole() {
    adopted_list_goes_back_whole(6);
}

/// A thread exits holding `held` objects of one class in its list; the
/// thread that adopts its cache frees an object from elsewhere, then
/// allocates.
fn adopted_list_goes_back_whole(held: usize) {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    // An object from elsewhere (the main thread's, say), to hand over.
    let foreign = SLOT.with(|slot| reg.alloc(slot, 2, 0)) as usize;
    // A thread that exits holding `held` objects of the class in its list
    // and one more it keeps.
    let kept = std::thread::spawn(move || {
        SLOT.with(|slot| {
            let objs: Vec<usize> = (0..=held).map(|_| reg.alloc(slot, 2, 0) as usize).collect();
            for &p in &objs[1..] {
                // SAFETY: live, given up once.
                unsafe { reg.free(slot, p as *mut u8, 2) };
            }
            objs[0]
        })
    })
    .join()
    .unwrap();
    assert_eq!(reg.list.lock().retired.len(), 1, "the cache was not kept");
    let apart = reg.backend().apart_calls.load(Ordering::Relaxed);
    let calls = reg.backend().batch_calls.load(Ordering::Relaxed);
    let cached_after_free = std::thread::spawn(move || {
        SLOT.with(|slot| {
            // SAFETY: the handed object, given up once.
            unsafe { reg.free(slot, foreign as *mut u8, 2) };
            // Allocates (and frees) until the backend is asked.
            cached(reg, slot, 2)
        })
    })
    .join()
    .unwrap();
    // The free overflowed the adopted list (full at what it held) and gave
    // it back whole: the next allocation went to the backend, and that
    // refill started out apart. (The fake backend's objects come from the
    // system allocator, which may hand the foreign object out again
    // whatever the refill: the refill's kind is what tells.)
    assert_eq!(
        cached_after_free, 0,
        "the adopted list kept objects after its first free"
    );
    assert_eq!(reg.backend().batch_calls.load(Ordering::Relaxed), calls + 1);
    assert_eq!(
        reg.backend().apart_calls.load(Ordering::Relaxed),
        apart + 1,
        "the refill after the adopted list's first free did not start out apart"
    );
    SLOT.with(|slot| {
        // SAFETY: the first thread's object, live, given up once.
        unsafe { reg.free(slot, kept as *mut u8, 2) };
    });
    SLOT.with(|slot| reg.flush_current(slot));
    reg.release_retired();
    assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
}
