//! After `fork` in a multi-threaded program, the child can allocate: the fork
//! handlers take every allocator lock before the fork and release them on
//! both sides.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Allocation churn across sizes, so that some thread is likely to hold an
/// allocator lock at the moment of the fork.
fn churn(stop: &AtomicBool, seed: usize) {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = match i % 8 {
            0 => 300_000 + i % 100_000,
            1 => 8192 + i % 60_000,
            _ => 1 + (i >> 20) % 2000,
        };
        keep.push(vec![(i % 251) as u8; size]);
        if keep.len() > 64 {
            let v = keep.swap_remove((i >> 8) % keep.len());
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
