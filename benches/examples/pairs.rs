//! The fast-path probe: `n` allocate/free pairs of 16, 32 and 64 bytes on
//! one allocator, layouts hidden from the optimiser with `black_box` so the
//! size-class lookup is paid on every call. Meant for callgrind:
//!
//! ```text
//! cargo build --release -p strata-benches --example pairs
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/pairs strata 1000000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/pairs strata 2000000
//! ```
//!
//! The difference of the two totals divided by 1,000,000 is the cost of one
//! pair (loop overhead included, the same for every allocator). Allocators:
//! `strata`, `mimalloc`, `jemalloc`, `glibc`, `tcmalloc` (when installed);
//! `strata-c`: strata through its unsized C-style functions, as the main
//! job's C view calls it.

use std::alloc::System;

use strata_benches::api::{StrataMalloc, Unsized};
use strata_benches::tcmalloc::Tcmalloc;

use strata_testkit::pairs::pairs;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "strata".into());
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let t = std::time::Instant::now();
    match which.as_str() {
        "strata" => pairs(&strata::Strata, n),
        "mimalloc" => pairs(&mimalloc::MiMalloc, n),
        "jemalloc" => pairs(&tikv_jemallocator::Jemalloc, n),
        "glibc" => pairs(&System, n),
        "strata-c" => pairs(&Unsized(StrataMalloc), n),
        "tcmalloc" => match Tcmalloc::load() {
            Ok(tc) => pairs(&tc, n),
            Err(e) => {
                eprintln!("tcmalloc: {e}");
                std::process::exit(1);
            }
        },
        other => {
            eprintln!(
                "unknown allocator {other}: strata, strata-c, mimalloc, jemalloc, glibc or tcmalloc"
            );
            std::process::exit(2);
        }
    }
    eprintln!(
        "{which}: {:.2} ns per pair",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
