//! The cost of one stack capture, per walker, from a chain of `depth`
//! frames (first argument, default 20) below `main`:
//! `cargo run --release -p strata-os --example capture_cost -- 20`.

use std::hint::black_box;
use std::time::Instant;

use strata_os::stack::{capture_with, fast_walk_fallbacks, Walker};

#[inline(never)]
fn nest(depth: usize, w: Walker, reps: usize, out: &mut [usize]) -> usize {
    if depth == 0 {
        let mut n = 0;
        for _ in 0..reps {
            n = black_box(capture_with(w, out, 0));
        }
        return n;
    }
    black_box(nest(depth - 1, w, reps, out)) + black_box(0)
}

fn main() {
    let depth: usize = std::env::args().nth(1).map_or(20, |a| a.parse().unwrap());
    let mut frames = [0usize; 64];
    for w in [Walker::System, Walker::Fast] {
        nest(depth, w, 10, &mut frames);
        let reps = 200_000;
        let t = Instant::now();
        let n = nest(depth, w, reps, &mut frames);
        let ns = t.elapsed().as_nanos() as f64 / reps as f64;
        println!(
            "{w:?}: {n} frames, {ns:.0} ns per capture, {:.1} ns per frame",
            ns / n as f64
        );
    }
    println!(
        "fast walks handed to the system walker: {}",
        fast_walk_fallbacks()
    );
}
