//! After `fork` in a multi-threaded program, the child can allocate: the fork
//! handlers take every allocator lock before the fork and release them on
//! both sides.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata_testkit::rng::Rng;

/// Allocation churn across sizes, so that some thread is likely to hold an
/// allocator lock at the moment of the fork.
fn churn(stop: &AtomicBool, seed: u64) {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let size = match rng.below(8) {
            0 => rng.range(300_000, 399_999),
            1 => rng.range(8192, 68_191),
            _ => rng.range(1, 2000),
        };
        keep.push(vec![rng.below(251) as u8; size]);
        if keep.len() > 64 {
            let v = keep.swap_remove(rng.below(keep.len()));
            assert!(v.iter().all(|&b| b == v[0]));
        }
    }
}

fn child_work() -> bool {
    let mut v: Vec<Box<[u64]>> = Vec::new();
    for i in 0..2000u64 {
        v.push(vec![i; 1 + (i as usize % 700)].into_boxed_slice());
    }
    let big = vec![7u8; 4 << 20];
    let h = std::thread::spawn(|| (0..10_000u64).map(Box::new).map(|b| *b).sum::<u64>());
    let sum = h.join().unwrap_or(0);
    v.iter()
        .enumerate()
        .all(|(i, b)| b.iter().all(|&x| x == i as u64))
        && big.iter().all(|&b| b == 7)
        && sum == 10_000 * 9_999 / 2
}

#[test]
fn child_of_a_multithreaded_parent_can_allocate() {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || churn(&stop, t * 7919 + 1))
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: fork has no preconditions; the child only allocates, runs
        // its own checks and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = child_work();
            // SAFETY: ends the child without running the parent's atexit
            // handlers or test harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "child's allocations went wrong"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}

/// The caches of the parent's other threads hold objects that no thread of
/// the child can ever use: the child takes them back at the fork, and no
/// longer counts those threads' caches as live.
#[test]
fn child_takes_back_what_the_parents_other_threads_cached() {
    let ready = Arc::new(std::sync::Barrier::new(4));
    let done = Arc::new(std::sync::Barrier::new(4));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let (ready, done) = (ready.clone(), done.clone());
            std::thread::spawn(move || {
                // Allocate and free in rounds, so the lists grow long and
                // stay full of free objects.
                for _ in 0..20 {
                    let v: Vec<Box<[u64; 6]>> = (0..4000).map(|i| Box::new([i + t; 6])).collect();
                    assert!(v.iter().enumerate().all(|(i, b)| b[5] == i as u64 + t));
                }
                ready.wait();
                done.wait();
            })
        })
        .collect();
    ready.wait();
    let before = strata::stats();
    assert!(before.thread_caches >= 3, "{before:?}");
    assert!(before.thread_cache_bytes > 0, "{before:?}");
    // SAFETY: fork has no preconditions; the child only reads statistics,
    // allocates a little and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let after = strata::stats();
        // What the caches held is free below them now: in the central
        // lists, or (spans left empty) in the page heap.
        let below =
            |s: &strata::Stats| s.central_free_bytes + s.free_dirty_bytes + s.free_clean_bytes;
        let ok = after.thread_caches <= 1
            && after.thread_cache_bytes < before.thread_cache_bytes
            && below(&after) > below(&before)
            && child_work();
        if !ok {
            eprintln!("before the fork: {before:?}\nin the child: {after:?}");
        }
        // SAFETY: ends the child without the parent's handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child kept the other threads' caches"
    );
    done.wait();
    for w in workers {
        w.join().unwrap();
    }
}
