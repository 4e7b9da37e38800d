//! Memory follows the live heap: a freed burst goes back to the OS while
//! the program goes on with nothing but cache hits, idle threads hold at
//! most their share of the cache budget, and exited threads leave little
//! behind. Measured with the process's real resident size (`VmRSS`), each
//! test in a child process of its own.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use std::alloc::{alloc, dealloc, Layout};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn in_child(name: &str, env: &[(&str, &str)]) -> bool {
    common::in_child("STRATA_RELEASE_TEST", name, env)
}

/// The process's resident set (`VmRSS`), read without allocating much.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Allocates `total` bytes in blocks of `size`, writes every page, frees
/// them all, then makes one small allocation a millisecond (cache hits
/// only) until the process is back within `slack` of where it started or
/// `limit` has passed. Returns the resident bytes above the start at the
/// end and how long it took.
fn burst_then_trickle(
    size: usize,
    total: usize,
    slack: usize,
    limit: Duration,
) -> (usize, Duration) {
    let start = rss();
    let layout = Layout::from_size_align(size, 16).unwrap();
    let blocks: Vec<*mut u8> = (0..total / size)
        .map(|_| {
            // SAFETY: a non-zero layout.
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: our block of `size` bytes: one write per page.
            unsafe {
                let mut at = 0;
                while at < size {
                    p.add(at).write(1);
                    at += 4096;
                }
            }
            p
        })
        .collect();
    assert!(rss() >= start + total / 2, "the burst is resident");
    for p in blocks {
        // SAFETY: allocated above with `layout`.
        unsafe { dealloc(p, layout) };
    }
    let t0 = Instant::now();
    let small = Layout::from_size_align(48, 8).unwrap();
    loop {
        // SAFETY: a non-zero layout; freed at once.
        unsafe {
            let p = std::hint::black_box(alloc(small));
            dealloc(p, small);
        }
        let above = rss().saturating_sub(start);
        if above <= slack || t0.elapsed() > limit {
            return (above, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn burst_goes_back(name: &str, size: usize) {
    burst_goes_back_with(name, size, &[("STRATA_DECAY_MS", "200")]);
}

fn burst_goes_back_with(name: &str, size: usize, env: &[(&str, &str)]) {
    if !in_child(name, env) {
        return;
    }
    let (above, took) = burst_then_trickle(size, 512 * MIB, 64 * MIB, Duration::from_secs(10));
    println!(
        "{size}-byte blocks: {} MiB above the start after {took:?}",
        above / MIB
    );
    assert!(
        above <= 64 * MIB,
        "{size}-byte blocks: {} MiB still resident after {took:?}",
        above / MIB
    );
    // Within about twice the delay (and a few idle passes), not at once
    // on the first call: the heap keeps what it may reuse for a while.
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_freed_burst_of_2k_blocks_goes_back_while_the_program_hits_its_cache() {
    burst_goes_back(
        "a_freed_burst_of_2k_blocks_goes_back_while_the_program_hits_its_cache",
        2 << 10,
    );
}

#[test]
fn a_freed_burst_of_64k_blocks_goes_back_while_the_program_hits_its_cache() {
    burst_goes_back(
        "a_freed_burst_of_64k_blocks_goes_back_while_the_program_hits_its_cache",
        64 << 10,
    );
}

#[test]
fn a_freed_burst_of_256k_blocks_goes_back_while_the_program_hits_its_cache() {
    burst_goes_back(
        "a_freed_burst_of_256k_blocks_goes_back_while_the_program_hits_its_cache",
        256 << 10,
    );
}

/// With no cap on free memory (`STRATA_DIRTY_MAX` past any burst), decay
/// alone brings the burst back, driven by the cache hits' periodic check.
#[test]
fn decay_alone_brings_a_burst_back_while_the_program_hits_its_cache() {
    for size in [2 << 10, 256 << 10] {
        burst_goes_back_with(
            "decay_alone_brings_a_burst_back_while_the_program_hits_its_cache",
            size,
            &[("STRATA_DECAY_MS", "200"), ("STRATA_DIRTY_MAX", "1024g")],
        );
    }
}

/// Threads that churned and freed everything hold at most their share of
/// the cache budget while they wait, and nearly nothing once they exit,
/// with no allocation in between to drive any decay.
#[test]
fn idle_and_exited_threads_hold_little() {
    const THREADS: usize = 64;
    if !in_child("idle_and_exited_threads_hold_little", &[]) {
        return;
    }
    let start = rss();
    let churned = std::sync::Barrier::new(THREADS + 1);
    let go = std::sync::Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (churned, go) = (&churned, &go);
            s.spawn(move || {
                let mut rng = common::Rng::new(t as u64 + 1);
                let mut held: Vec<Vec<u8>> = Vec::new();
                let mut bytes = 0;
                // About 4 MB of small objects live at the peak.
                while bytes < 4 * MIB {
                    let n = 16 + rng.below(500);
                    held.push(vec![t as u8; n]);
                    bytes += n;
                }
                for _ in 0..20_000 {
                    let i = rng.below(held.len());
                    let n = 16 + rng.below(500);
                    held[i] = vec![t as u8; n];
                }
                drop(held);
                churned.wait();
                go.wait();
            });
        }
        churned.wait();
        std::thread::sleep(Duration::from_millis(50));
        let idle = rss().saturating_sub(start);
        let stats = strata::stats();
        println!(
            "{THREADS} idle threads: {} MiB resident above the start, {} MiB in their caches",
            idle / MIB,
            stats.thread_cache_bytes / MIB
        );
        go.wait();
        // The caches draw from a pool of 64 MiB (a floor of 128 KiB each
        // when it is empty); the rest went back as it was freed.
        assert!(
            stats.thread_cache_bytes <= 64 * MIB + THREADS * (128 << 10),
            "{} MiB in thread caches",
            stats.thread_cache_bytes / MIB
        );
        assert!(
            idle <= 160 * MIB,
            "{} MiB resident while {THREADS} threads idle ({} MiB in their caches)",
            idle / MIB,
            stats.thread_cache_bytes / MIB
        );
    });
    let after = rss().saturating_sub(start);
    println!(
        "after they exited: {} MiB; {:?}",
        after / MIB,
        strata::stats()
    );
    assert!(
        after <= 64 * MIB,
        "{} MiB resident after the threads exited",
        after / MIB
    );
}

/// `stats()` sees the resident memory and remembers its peak.
#[test]
fn stats_report_resident_bytes_and_their_peak() {
    if !in_child("stats_report_resident_bytes_and_their_peak", &[]) {
        return;
    }
    let layout = Layout::from_size_align(256 << 10, 16).unwrap();
    let blocks: Vec<*mut u8> = (0..256)
        .map(|_| {
            // SAFETY: a non-zero layout.
            let p = unsafe { alloc(layout) };
            // SAFETY: our block.
            unsafe { p.write_bytes(3, 256 << 10) };
            p
        })
        .collect();
    let s = strata::stats();
    assert!(s.resident_bytes >= 64 * MIB, "{s:?}");
    for p in blocks {
        // SAFETY: allocated above with `layout`.
        unsafe { dealloc(p, layout) };
    }
    strata::release_free_memory();
    let s = strata::stats();
    assert!(s.resident_bytes < 16 * MIB, "{s:?}");
    assert!(s.peak_resident_bytes >= 64 * MIB, "{s:?}");
}
