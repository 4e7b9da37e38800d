//! The calloc loop, with and without a used block before it: `n` x
//! (`alloc_zeroed(size)`, `dealloc`), the block never touched, on each
//! allocator. "used first" writes one block of the size fully and frees it
//! before the loop, so the loop reuses resident memory: the case where an
//! allocator that trusts residency alone clears memory nobody touched on
//! every cycle (the macOS libmalloc bug).
//!
//! ```text
//! cargo run --release -p strata-benches --example zloop
//! ```
//!
//! Prints ns per cycle; strata's system calls for the whole run follow each
//! size (`release` = `MADV_DONTNEED`, `mincore` = looks at residency).

use std::alloc::{GlobalAlloc, Layout, System};
use std::time::Instant;

fn run<A: GlobalAlloc>(name: &str, a: &A, size: usize, n: usize, used_first: bool) {
    let l = Layout::from_size_align(size, 8).expect("valid layout");
    if used_first {
        // SAFETY: a non-zero layout; the block is written within its size
        // and freed once.
        unsafe {
            let p = a.alloc(l);
            assert!(!p.is_null());
            p.write_bytes(1, size);
            a.dealloc(p, l);
        }
    }
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: as above.
        unsafe {
            let p = a.alloc_zeroed(l);
            assert!(!p.is_null());
            std::hint::black_box(p);
            a.dealloc(p, l);
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    let how = if used_first { "used first" } else { "fresh" };
    println!("{name:9} {size:>10} B {how:10}: {ns:10.0} ns/cycle");
}

fn main() {
    let mi = mimalloc::MiMalloc;
    let je = tikv_jemallocator::Jemalloc;
    for (size, n) in [
        (1usize << 20, 3000),
        (64 << 20, 300),
        (100_000_000, 300),
        (1 << 30, 50),
    ] {
        for used_first in [false, true] {
            run("strata", &strata::Strata, size, n, used_first);
            run("jemalloc", &je, size, n, used_first);
            run("mimalloc", &mi, size, n, used_first);
            run("glibc", &System, size, n, used_first);
        }
        let s = strata::stats();
        println!(
            "  strata so far: {} release, {} mincore, {} MiB cleared",
            s.release_calls,
            s.mincore_calls,
            s.zeroed_bytes_written >> 20
        );
    }
}
