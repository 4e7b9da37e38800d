//! Instruction-count probe for rows 2 and 3 of the main job: runs
//! `size_sweep` or `random_free` on one allocator, with no deadline, so a
//! callgrind total can be compared before and after a change:
//!
//! ```text
//! cargo build --release -p strata-benches --example rows
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/rows strata sweep 200000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/rows strata random 3
//! ```
//!
//! `sweep N`: `N` ops of the size sweep (row 2). `random R`: `R` rounds of
//! 100,000 objects freed in random order (row 3). `churn T`: `T` threads of
//! row 9, in waves of 8, 1,000 pairs each. `pairs N`: row 1b, `N` alloc/free
//! calls of each of 16, 32 and 64 B. `turns N`: row 1, `N` rounds of 16, 32
//! and 64 B in turn. `steps R`: row 4b, `R` rounds of a
//! block grown from 8 B to 4 MiB by 16 B (to `STEPS_MAX` bytes if set:
//! `STEPS_MAX=262144` for the small blocks' steps alone). `sharing R`: row
//! 13's first step `R` times (two threads free an 8 B object the main
//! thread allocated, then allocate their own), counting the repetitions
//! whose two threads' first objects share a 64-byte line: a count, not a
//! time, so it can be compared between builds on a busy machine (`SHOW=1`
//! prints each repetition's addresses). `alloctest N`: row 16a, `N`
//! steps on one thread. `larson N`: row 10, 2 threads of 1,000 slots, `N`
//! replacements each, 5 generations. The difference of two
//! totals (e.g. 400,000 and 200,000 ops, or 6 and 3 rounds) divided by the
//! extra ops is the cost of one op with setup excluded. Allocators: `strata`,
//! `mimalloc`, `jemalloc`, `glibc`, and `strata-c` (strata through its C
//! functions, as in the main job's C view).

use std::alloc::{GlobalAlloc, System};

use strata_benches::api::{StrataMalloc, Unsized};
use strata_benches::measure::Deadline;
use strata_benches::workloads;

fn run<A: GlobalAlloc + Sync>(a: &A, what: &str, n: u64) -> f64 {
    let s = match what {
        "sweep" => workloads::size_sweep(a, n, Deadline::never()),
        "random" => workloads::random_free(a, 100_000, n, Deadline::never()),
        "churn" => workloads::thread_churn(a, n as usize, 8, 1_000, Deadline::never()),
        "pairs" => workloads::small_pairs(a, n, true, Deadline::never()),
        "turns" => workloads::small_pairs(a, n, false, Deadline::never()),
        "alloctest" => workloads::alloc_test(a, 1, n, 16_384, Deadline::never()),
        "larson" => workloads::larson(a, 2, 1_000, n, 5, Deadline::never()),
        "steps" => workloads::realloc_growth(
            a,
            workloads::Growth::Step(16),
            std::env::var("STEPS_MAX")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(4 << 20),
            n,
            Deadline::never(),
        ),
        other => {
            eprintln!(
                "unknown workload {other}: sweep, random, churn, pairs, turns, alloctest, larson or steps"
            );
            std::process::exit(2);
        }
    };
    s.wall_per_op()
}

/// Row 13's first step, `reps` times: the main thread allocates one 8 B
/// object per thread; two threads each free theirs, allocate one, and
/// wait until the other has its own too (so both are live at once: a
/// thread that ran alone would hand its objects to the next, which is no
/// sharing); then each writes 100 times over, frees and allocates again,
/// 1,000 times. Returns how many repetitions gave the two threads first
/// objects on one 64-byte line (passive false sharing, which makes the
/// row's writes move the line between cores).
fn sharing<A: GlobalAlloc + Sync>(a: &A, reps: u64) -> u64 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::alloc::Layout::from_size_align(8, 8).unwrap();
    let show = std::env::var_os("SHOW").is_some();
    let mut shared = 0;
    for _ in 0..reps {
        // SAFETY: a non-zero layout; each object goes to one thread, which
        // frees it once.
        let given: Vec<usize> = (0..2).map(|_| unsafe { a.alloc(l) } as usize).collect();
        let firsts = [AtomicUsize::new(0), AtomicUsize::new(0)];
        std::thread::scope(|s| {
            for (t, &g) in given.iter().enumerate() {
                let firsts = &firsts;
                s.spawn(move || {
                    // SAFETY: `g` is this thread's alone, from `a`; each
                    // object after it is written inside its 8 bytes and
                    // freed once.
                    unsafe {
                        a.dealloc(g as *mut u8, l);
                        let mut p = a.alloc(l);
                        assert!(!p.is_null());
                        firsts[t].store(p as usize, Ordering::Release);
                        while firsts[1 - t].load(Ordering::Acquire) == 0 {
                            std::thread::yield_now();
                        }
                        for i in 0..1_000u32 {
                            for r in 0..100u32 {
                                for k in 0..8 {
                                    p.add(k).write_volatile((i + r) as u8);
                                }
                            }
                            a.dealloc(p, l);
                            p = a.alloc(l);
                            assert!(!p.is_null());
                        }
                        a.dealloc(p, l);
                    }
                });
            }
        });
        let (f0, f1) = (
            firsts[0].load(Ordering::Relaxed),
            firsts[1].load(Ordering::Relaxed),
        );
        if show {
            eprintln!("given {:x} {:x} first {f0:x} {f1:x}", given[0], given[1]);
        }
        shared += u64::from(f0 / 64 == f1 / 64);
    }
    shared
}

/// Evaluates `$body` with `$a` bound to the allocator named `$which`
/// (each its own type, so the workloads are compiled for each).
macro_rules! with_allocator {
    ($which:expr, $a:ident => $body:expr) => {
        match $which {
            "strata" => {
                let $a = &strata::Strata;
                $body
            }
            "mimalloc" => {
                let $a = &mimalloc::MiMalloc;
                $body
            }
            "jemalloc" => {
                let $a = &tikv_jemallocator::Jemalloc;
                $body
            }
            "glibc" => {
                let $a = &System;
                $body
            }
            "strata-c" => {
                let $a = &Unsized(StrataMalloc);
                $body
            }
            other => {
                eprintln!(
                    "unknown allocator {other}: strata, strata-c, mimalloc, jemalloc or glibc"
                );
                std::process::exit(2);
            }
        }
    };
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "strata".into());
    let what = args.next().unwrap_or_else(|| "sweep".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    if what == "sharing" {
        let shared = with_allocator!(which.as_str(), a => sharing(a, n));
        eprintln!("{which} sharing: {shared} of {n} repetitions shared a line");
        return;
    }
    let ns = with_allocator!(which.as_str(), a => run(a, &what, n));
    eprintln!("{which} {what}: {ns:.2} ns per op");
}
