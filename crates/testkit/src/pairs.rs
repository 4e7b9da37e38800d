//! The fast-path probe's loop: `n` allocate/free pairs of 16, 32 and 64
//! bytes on one allocator, layouts hidden from the optimiser with
//! `black_box` so the size-class lookup is paid on every call. Shared by
//! the benchmarks' `pairs` example (every allocator) and strata's own
//! (`crates/strata/examples/pairs.rs`, which the instruction-count check
//! `benches/callgrind/check.sh` runs).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

/// Runs `n` allocate/free pairs on `a`.
pub fn pairs<A: GlobalAlloc>(a: &A, n: usize) {
    let layouts = [16, 32, 64].map(|s| Layout::from_size_align(s, 8).expect("valid layout"));
    for i in 0..n {
        let l = black_box(layouts[i % 3]);
        // SAFETY: a non-zero layout; the block is freed with the same layout.
        unsafe {
            let p = a.alloc(l);
            assert!(!p.is_null());
            black_box(p);
            a.dealloc(p, l);
        }
    }
}
