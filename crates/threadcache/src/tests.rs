//! Thread caches over a fake backend that counts every object it hands out.

use std::boxed::Box;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::vec::Vec;

use crate::fake::{FakeBackend, SIZES};
use crate::{Backend, Slot, ThreadCaches};

pub(crate) fn registry() -> &'static ThreadCaches<FakeBackend> {
    Box::leak(Box::new(ThreadCaches::new(FakeBackend::new())))
}

#[test]
fn objects_are_distinct_and_come_back_on_flush() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    SLOT.with(|slot| {
        let mut live = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..10_000usize {
            let class = 1 + (i % 4) as u8;
            let p = reg.alloc(slot, class, 0);
            assert!(!p.is_null());
            assert!(
                seen.insert(p as usize),
                "object handed out twice while live"
            );
            // SAFETY: a live object of the class size.
            unsafe { core::ptr::write_bytes(p, class, SIZES[class as usize]) };
            live.push((p, class));
            if i % 3 == 0 {
                let (q, c) = live.swap_remove(i % live.len());
                // SAFETY: live object.
                assert!(unsafe { std::slice::from_raw_parts(q, SIZES[c as usize]) }
                    .iter()
                    .all(|&b| b == c));
                seen.remove(&(q as usize));
                // SAFETY: live object given up.
                unsafe { reg.free(slot, q, c) };
            }
        }
        let outstanding = reg.backend().outstanding.load(Ordering::Relaxed);
        assert!(outstanding >= live.len() as isize);
        for (p, c) in live.drain(..) {
            // SAFETY: live objects given up.
            unsafe { reg.free(slot, p, c) };
        }
        reg.flush_current(slot);
        assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn the_fast_path_moves_batches_not_objects() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    SLOT.with(|slot| {
        for _ in 0..100_000 {
            let p = reg.alloc(slot, 1, 0);
            // SAFETY: live object given up.
            unsafe { reg.free(slot, p, 1) };
        }
        let mut v: Vec<_> = (0..1000).map(|_| reg.alloc(slot, 2, 0)).collect();
        for p in v.drain(..) {
            // SAFETY: live objects given up.
            unsafe { reg.free(slot, p, 2) };
        }
        // 100k pairs need one refill; 1000 allocations about 1000/8 + slow start.
        assert!(reg.backend().batch_calls.load(Ordering::Relaxed) < 250);
    });
}

#[test]
fn caches_stay_within_their_budget() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    reg.set_max_cache_bytes(256 << 10);
    SLOT.with(|slot| {
        let v: Vec<_> = (0..2000).map(|_| reg.alloc(slot, 4, 0)).collect();
        for p in v {
            // SAFETY: live objects given up.
            unsafe { reg.free(slot, p, 4) };
        }
        let c = slot.cache().unwrap();
        // SAFETY: this thread's cache.
        let size = unsafe { c.as_ref().size() };
        assert!(size <= 256 << 10, "cache holds {size} bytes");
    });
}

#[test]
fn thread_exit_returns_everything_and_cross_thread_frees_work() {
    let reg = registry();
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let (tx, rx) = std::sync::mpsc::channel::<Vec<(usize, u8)>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                SLOT.with(|slot| {
                    for round in 0..50 {
                        let mut out = Vec::new();
                        for i in 0..200usize {
                            let class = 1 + ((i + t) % 4) as u8;
                            let p = reg.alloc(slot, class, 0);
                            // SAFETY: a live object of at least 16 bytes.
                            unsafe { (p as *mut usize).add(1).write(round * 1000 + i) };
                            out.push((p as usize, class));
                        }
                        tx.send(out).unwrap();
                    }
                })
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        SLOT.with(|slot| {
            let mut n = 0;
            for batch in rx {
                for (p, c) in batch {
                    // SAFETY: objects sent to us, live.
                    unsafe {
                        assert!((p as *const usize).add(1).read() % 1000 < 200);
                        reg.free(slot, p as *mut u8, c);
                    }
                    n += 1;
                }
            }
            n
        })
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 4 * 50 * 200);
    // Every thread has exited: its destructor flushed its cache or kept
    // it for the next thread, and the kept ones give back what they hold.
    reg.release_retired();
    assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
    assert_eq!(reg.stats().live_caches, 0);
    assert_eq!(reg.stats().created, 5);
}

#[test]
fn a_thread_after_its_cache_is_destroyed_is_served_centrally() {
    let reg = registry();
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    struct AllocOnDrop(&'static ThreadCaches<FakeBackend>);
    impl Drop for AllocOnDrop {
        fn drop(&mut self) {
            SLOT.with(|slot| {
                let p = self.0.alloc(slot, 3, 0);
                assert!(!p.is_null());
                // SAFETY: live object given up.
                unsafe { self.0.free(slot, p, 3) };
            });
        }
    }
    std::thread_local! { static LATE: std::cell::RefCell<Option<AllocOnDrop>> = const { std::cell::RefCell::new(None) }; }
    std::thread::spawn(move || {
        SLOT.with(|slot| {
            let p = reg.alloc(slot, 1, 0);
            // SAFETY: live object given up.
            unsafe { reg.free(slot, p, 1) };
        });
        LATE.with(|l| *l.borrow_mut() = Some(AllocOnDrop(reg)));
    })
    .join()
    .unwrap();
    reg.release_retired();
    assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
}

/// The stacks: objects pop in the reverse order of their frees (the most
/// recently freed, still in the CPU's caches, first); a list freed far past
/// the longest a stack holds gives the rest back, losing nothing; and the
/// next thread's cache reuses the stacks' mapping instead of mapping anew.
#[test]
fn stacks_pop_last_freed_first_give_back_overflow_and_are_reused() {
    use crate::Backend;
    use strata_os::Os;
    let reg = registry();
    reg.set_max_cache_bytes(64 << 20);
    let run = move || {
        std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
        SLOT.with(|slot| {
            // Far more than a stack's room (8192 + 64) of one class.
            let objs: Vec<usize> = (0..20_000)
                .map(|_| reg.alloc(slot, 1, 0) as usize)
                .collect();
            assert_eq!(objs.iter().collect::<HashSet<_>>().len(), objs.len());
            for &p in &objs {
                // SAFETY: live objects given up once.
                unsafe { reg.free(slot, p as *mut u8, 1) };
            }
            // LIFO: the last object freed is the first handed out again.
            let again: Vec<usize> = (0..3).map(|_| reg.alloc(slot, 1, 0) as usize).collect();
            assert_eq!(again, [objs[19_999], objs[19_998], objs[19_997]]);
            for &p in &again {
                // SAFETY: live objects given up once.
                unsafe { reg.free(slot, p as *mut u8, 1) };
            }
        });
        reg.backend().outstanding.load(Ordering::Relaxed)
    };
    let held = std::thread::spawn(run)
        .join()
        .expect("first thread panicked");
    assert!(held > 0, "the thread's cache held objects before exit");
    // Everything the thread cached came back at its exit, or with the
    // cache kept for the next thread when that is given back.
    reg.release_retired();
    assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
    let maps = reg.backend().os().counters().snapshot().maps;
    std::thread::spawn(run)
        .join()
        .expect("second thread panicked");
    reg.release_retired();
    assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
    assert_eq!(
        reg.backend().os().counters().snapshot().maps,
        maps,
        "the second cache mapped memory instead of reusing the first's record and stacks"
    );
}

/// Lists start on small stacks packed side by side (a thread using many
/// classes a little touches a few pages, not a page per class); a list
/// whose maximum outgrows its small stack moves to a middle stack, packed
/// the same way in the order lists need them (whatever their classes),
/// and past that to its own, keeping its objects.
#[test]
fn small_lists_share_pages_and_a_growing_list_moves_to_its_own_stack() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    reg.set_max_cache_bytes(64 << 20);
    SLOT.with(|slot| {
        for class in 1..=4u8 {
            let p = reg.alloc(slot, class, 0);
            // SAFETY: a live object given up once.
            unsafe { reg.free(slot, p, class) };
        }
        // SAFETY: this thread's live cache.
        let cache = unsafe { slot.cache().expect("a cache").as_ref() };
        let (first, cap) = cache.stack_of(1);
        let (fourth, _) = cache.stack_of(4);
        let bytes = cap as usize * std::mem::size_of::<*mut u8>();
        assert!(
            bytes < 4096,
            "a new list starts on a stack smaller than a page"
        );
        assert_eq!(
            fourth - first,
            3 * bytes,
            "small stacks are packed side by side: {first:#x} {fourth:#x}"
        );
        // Grown past a small stack but not far, classes 3 and 1 move to
        // middle stacks, packed side by side too, in that order.
        for class in [3u8, 1] {
            let objs: Vec<usize> = (0..160)
                .map(|_| reg.alloc(slot, class, 0) as usize)
                .collect();
            for &p in &objs {
                // SAFETY: live objects given up once.
                unsafe { reg.free(slot, p as *mut u8, class) };
            }
        }
        // SAFETY: as above.
        let cache = unsafe { slot.cache().expect("a cache").as_ref() };
        let ((mid1, cap1), (mid3, cap3)) = (cache.stack_of(1), cache.stack_of(3));
        assert_eq!((cap1, cap3), (256, 256), "middle stacks");
        assert_eq!(
            mid1.wrapping_sub(mid3),
            256 * std::mem::size_of::<*mut u8>(),
            "middle stacks are packed too, in the order lists moved"
        );
        // Grow class 1 far past a small stack, then check every object.
        let objs: Vec<usize> = (0..5_000).map(|_| reg.alloc(slot, 1, 0) as usize).collect();
        for &p in &objs {
            // SAFETY: live objects given up once.
            unsafe { reg.free(slot, p as *mut u8, 1) };
        }
        // SAFETY: as above.
        let cache = unsafe { slot.cache().expect("a cache").as_ref() };
        let (moved, big) = cache.stack_of(1);
        assert!(
            big > 1024 && moved != first,
            "the list moved to its own stack"
        );
        let again: Vec<usize> = (0..5_000).map(|_| reg.alloc(slot, 1, 0) as usize).collect();
        assert_eq!(again[..3], [objs[4_999], objs[4_998], objs[4_997]], "LIFO");
        assert_eq!(again.iter().collect::<HashSet<_>>().len(), again.len());
        for p in again {
            // SAFETY: live objects given up once.
            unsafe { reg.free(slot, p as *mut u8, 1) };
        }
        reg.flush_current(slot);
    });
}

#[test]
fn a_list_starts_with_two_cache_lines_and_hands_out_the_last() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    SLOT.with(|slot| {
        // Class 1 (16 B): 128 bytes are 8 objects, the fake's batch.
        let p = reg.alloc(slot, 1, 0);
        assert!(!p.is_null());
        assert_eq!(reg.backend().batch_calls.load(Ordering::Relaxed), 1);
        // SAFETY: this thread's live cache, read on its thread.
        let held = unsafe { slot.cache().unwrap().as_ref() }.len(1);
        assert_eq!(held, 7);
        // The other seven come from the list, with no other backend call.
        let mut rest: Vec<_> = (0..7).map(|_| reg.alloc(slot, 1, 0)).collect();
        assert_eq!(reg.backend().batch_calls.load(Ordering::Relaxed), 1);
        assert!(rest.iter().all(|&q| q != p));
        // Only the first refill asked for objects apart from other
        // threads'; the next is an ordinary batch.
        assert_eq!(reg.backend().apart_calls.load(Ordering::Relaxed), 1);
        rest.push(reg.alloc(slot, 1, 0));
        assert_eq!(reg.backend().batch_calls.load(Ordering::Relaxed), 2);
        assert_eq!(reg.backend().apart_calls.load(Ordering::Relaxed), 1);
        // SAFETY: live objects given up.
        unsafe {
            reg.free(slot, p, 1);
            for q in rest {
                reg.free(slot, q, 1);
            }
        }
        reg.flush_current(slot);
        assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
    });
}

/// Allocates and frees `n` objects of `class`, leaving them in the cache
/// (and what overflows with the backend).
fn fill(reg: &'static ThreadCaches<FakeBackend>, slot: &Slot, class: u8, n: usize) {
    let v: Vec<_> = (0..n).map(|_| reg.alloc(slot, class, 0)).collect();
    free_all(reg, slot, class, v);
}

/// Frees `objs`, live objects of `class` from this thread.
fn free_all(reg: &'static ThreadCaches<FakeBackend>, slot: &Slot, class: u8, objs: Vec<*mut u8>) {
    for p in objs {
        assert!(!p.is_null());
        // SAFETY: live objects given up once.
        unsafe { reg.free(slot, p, class) };
    }
}

/// A thread whose every allocation is a cache hit still gives back what
/// it stopped using: the periodic check on the allocation path releases
/// lists left unused over an idle interval.
#[test]
fn cache_hits_alone_give_back_lists_left_idle() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    SLOT.with(|slot| {
        for _ in 0..4 {
            fill(reg, slot, 3, 2000);
        }
        let held = reg.backend().outstanding.load(Ordering::Relaxed);
        assert!(held > 500, "the cache kept a working set ({held})");
        for _ in 0..3 {
            reg.backend().os().advance_ms(300);
            for _ in 0..2 * crate::EVENT_EVERY {
                let p = reg.alloc(slot, 1, 0);
                // SAFETY: live object given up.
                unsafe { reg.free(slot, p, 1) };
            }
        }
        let left = reg.backend().outstanding.load(Ordering::Relaxed);
        assert!(left <= 16, "{left} objects still cached");
        reg.flush_current(slot);
    });
}

/// Each cache fits itself to its share of the total as threads arrive: a
/// cache filled while it was alone shrinks to a quarter when three more
/// threads have caches.
#[test]
fn caches_refit_to_their_share_as_threads_arrive() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    reg.set_max_cache_bytes(2 << 20);
    reg.set_total_cache_bytes(2 << 20);
    SLOT.with(|slot| {
        for _ in 0..8 {
            fill(reg, slot, 4, 400);
        }
        let alone = reg.backend().outstanding.load(Ordering::Relaxed) as usize * 4096;
        assert!(alone > 1 << 20, "{alone} bytes cached alone");
        let go = std::sync::Barrier::new(4);
        let done = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    SLOT.with(|slot| {
                        // SAFETY: a live object given up at once.
                        unsafe { reg.free(slot, reg.alloc(slot, 1, 0), 1) };
                        go.wait();
                        done.wait();
                        reg.flush_current(slot);
                    });
                });
            }
            go.wait();
            assert_eq!(reg.cache_budget_now(), 512 << 10);
            reg.backend().os().advance_ms(300);
            for _ in 0..crate::EVENT_EVERY {
                let p = reg.alloc(slot, 1, 0);
                // SAFETY: live object given up.
                unsafe { reg.free(slot, p, 1) };
            }
            let cached = reg.stats().cached_bytes;
            assert!(cached <= 512 << 10, "{cached} bytes after refitting");
            done.wait();
        });
        reg.flush_current(slot);
    });
}

/// `for_each_cache` visits every live cache once, with what it holds:
/// the figures add up to the registry's total, and a thread that exited
/// (joined, so its key destructor ran) is gone from them.
#[test]
fn each_live_cache_is_listed_with_the_bytes_it_holds() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    let filled: &'static _ = Box::leak(Box::new(std::sync::Barrier::new(4)));
    let listed: &'static _ = Box::leak(Box::new(std::sync::Barrier::new(4)));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                SLOT.with(|slot| {
                    for _ in 0..8 {
                        fill(reg, slot, 4, 400);
                    }
                });
                filled.wait();
                listed.wait();
            })
        })
        .collect();
    filled.wait();
    let mut each = Vec::new();
    reg.for_each_cache(|bytes| each.push(bytes));
    assert_eq!(each.len(), 3, "{each:?}");
    assert_eq!(each.iter().sum::<usize>(), reg.stats().cached_bytes);
    assert!(
        each.iter().all(|&b| b > 0),
        "a cache holding objects counted nothing: {each:?}"
    );
    listed.wait();
    for t in threads {
        t.join().unwrap();
    }
    let mut left = 0;
    reg.for_each_cache(|_| left += 1);
    assert_eq!(left, 0);
}

/// A thread that made its cache first and then went quiet (a main thread
/// waiting for its workers) holds only the budget it used: the workers
/// that start after it each get their fair share, not the floor.
#[test]
fn a_quiet_first_cache_leaves_the_budget_to_the_busy_ones() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    reg.set_max_cache_bytes(2 << 20);
    reg.set_total_cache_bytes(2 << 20);
    SLOT.with(|slot| {
        // SAFETY: a live object given up at once.
        unsafe { reg.free(slot, reg.alloc(slot, 1, 0), 1) };
        let joined = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    SLOT.with(|slot| {
                        // SAFETY: a live object given up at once.
                        unsafe { reg.free(slot, reg.alloc(slot, 1, 0), 1) };
                        // Four caches now: a fair share is 512 KiB.
                        joined.wait();
                        for _ in 0..8 {
                            fill(reg, slot, 4, 200);
                        }
                        // SAFETY: this thread's cache.
                        let capacity = unsafe { slot.cache().unwrap().as_ref().capacity() };
                        assert!(
                            capacity > 256 << 10,
                            "a busy cache kept to {capacity} bytes"
                        );
                        reg.flush_current(slot);
                    });
                });
            }
            joined.wait();
        });
        reg.flush_current(slot);
    });
}

/// A list in its slow start (maximum below a batch) that overflows gives
/// back what is over half its maximum, not the whole list: the
/// allocation after the overflow is served from the list, not refilled.
#[test]
fn a_list_in_its_slow_start_keeps_half_when_it_overflows() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    SLOT.with(|slot| {
        // Three refills: the list's maximum grows to 5 (of a batch of 8).
        let objs: Vec<usize> = (0..6).map(|_| reg.alloc(slot, 2, 0) as usize).collect();
        let out = reg.backend().outstanding.load(Ordering::Relaxed);
        let mut freed = 0;
        while reg.backend().outstanding.load(Ordering::Relaxed) == out {
            // SAFETY: live objects given up once.
            unsafe { reg.free(slot, objs[freed] as *mut u8, 2) };
            freed += 1;
        }
        // The free that overflowed gave back all but half the maximum.
        let in_list =
            reg.backend().outstanding.load(Ordering::Relaxed) - (objs.len() - freed) as isize;
        assert_eq!(in_list, 2, "objects left in the list after the overflow");
        let calls = reg.backend().batch_calls.load(Ordering::Relaxed);
        let p = reg.alloc(slot, 2, 0);
        assert_eq!(reg.backend().batch_calls.load(Ordering::Relaxed), calls);
        for &q in objs[freed..].iter().chain([&(p as usize)]) {
            // SAFETY: live objects given up once.
            unsafe { reg.free(slot, q as *mut u8, 2) };
        }
        reg.flush_current(slot);
    });
    assert_eq!(reg.backend().outstanding.load(Ordering::Relaxed), 0);
}

/// How many objects of `class` this thread's cache holds: allocations
/// served before one reaches the backend (all freed again).
pub(crate) fn cached(reg: &'static ThreadCaches<FakeBackend>, slot: &Slot, class: u8) -> usize {
    let out = || reg.backend().outstanding.load(Ordering::Relaxed);
    let before = out();
    let mut taken = Vec::new();
    while out() == before {
        taken.push(reg.alloc(slot, class, 0));
    }
    let n = taken.len() - 1;
    free_all(reg, slot, class, taken);
    n
}

/// A list's low-water mark is the least it held since the last idle
/// check: the check gives back what stayed unused below it and keeps the
/// objects the thread went on using (20 at a time here).
#[test]
fn an_idle_check_keeps_what_a_list_went_on_using() {
    std::thread_local! { static SLOT: Slot = const { Slot::new() }; }
    let reg = registry();
    SLOT.with(|slot| {
        fill(reg, slot, 3, 300);
        assert!(cached(reg, slot, 3) > 40, "the fill left objects cached");
        for _ in 0..3 {
            reg.backend().os().advance_ms(300);
            fill(reg, slot, 3, 20);
            fill(reg, slot, 1, 2 * crate::EVENT_EVERY as usize);
        }
        assert_eq!(cached(reg, slot, 3), 20);
        reg.flush_current(slot);
    });
}
