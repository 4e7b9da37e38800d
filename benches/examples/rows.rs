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
//! `STEPS_MAX=262144` for the small blocks' steps alone). `alloctest N`: row 16a, `N`
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

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "strata".into());
    let what = args.next().unwrap_or_else(|| "sweep".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let ns = match which.as_str() {
        "strata" => run(&strata::Strata, &what, n),
        "mimalloc" => run(&mimalloc::MiMalloc, &what, n),
        "jemalloc" => run(&tikv_jemallocator::Jemalloc, &what, n),
        "glibc" => run(&System, &what, n),
        "strata-c" => run(&Unsized(StrataMalloc), &what, n),
        other => {
            eprintln!("unknown allocator {other}: strata, strata-c, mimalloc, jemalloc or glibc");
            std::process::exit(2);
        }
    };
    eprintln!("{which} {what}: {ns:.2} ns per op");
}
