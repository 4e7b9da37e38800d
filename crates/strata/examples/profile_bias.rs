//! The heap profiler's estimate of live bytes for one size range, for
//! measuring its bias and spread: `profile_bias T LO HI MIB` samples at
//! interval `T`, keeps `MIB` MiB of blocks of `LO..=HI` bytes, and prints
//! the estimate's error (docs/profiling.md).

use std::alloc::{alloc, Layout};

use strata_testkit::rng::Rng;

#[global_allocator]
static A: strata::Strata = strata::Strata;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let [t, lo, hi, mib] = args[..] else {
        panic!("usage: profile_bias INTERVAL LO HI MIB");
    };
    let total = mib << 20;
    strata::profile::set_interval(t);
    strata::profile::start();
    let mut keep = Vec::with_capacity(total / lo + 1);
    let mut rng = Rng::new(0x12345);
    let mut done = 0;
    while done < total {
        let n = rng.range(lo, hi);
        // SAFETY: a non-zero layout.
        keep.push(unsafe { alloc(Layout::from_size_align(n, 8).unwrap()) });
        done += n;
    }
    let s = strata::profile::stats();
    // The vector of blocks was allocated after start() too.
    let own = (keep.capacity() * 8) as f64;
    let err = (s.live_bytes_estimate - own) / done as f64 - 1.0;
    println!("{:+.2}% ({} samples)", err * 100.0, s.samples);
}
