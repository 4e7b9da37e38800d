//! The cost of a heap-profiling sample: `n` allocations of 100 MB blocks,
//! each freed at once, untouched (every one is sampled at the default
//! 2 MiB interval), from a chain of `depth` frames below `main`.
//!
//! `cargo run --release -p strata --example sample_cost -- 200000 on 20`
//! prints the time per allocate/free pair; `off` in place of `on` leaves
//! profiling off. Under callgrind, the count at two lengths, on minus off,
//! gives the instructions of one sample (docs/performance.md).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

const BLOCK: usize = 100_000_000;

#[inline(never)]
fn nest(depth: usize, n: usize) {
    if depth == 0 {
        let layout = Layout::from_size_align(BLOCK, 16).unwrap();
        for _ in 0..n {
            // SAFETY: a non-zero size; the block is freed with its layout.
            unsafe {
                let p = black_box(GLOBAL.alloc(layout));
                assert!(!p.is_null());
                GLOBAL.dealloc(p, layout);
            }
        }
        return;
    }
    nest(black_box(depth - 1), n);
    black_box(());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100_000, |a| a.parse().unwrap());
    let on = args.next().is_none_or(|a| a == "on");
    let depth: usize = args.next().map_or(20, |a| a.parse().unwrap());
    if on {
        strata::profile::start();
    }
    nest(depth, 10);
    let t = Instant::now();
    nest(depth, n);
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    let st = strata::profile::stats();
    println!(
        "{}: {ns:.0} ns per 100 MB allocate/free, {} samples",
        if on { "on" } else { "off" },
        st.samples
    );
}
