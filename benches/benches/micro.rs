//! Criterion micro benches: single allocator operations on strata, glibc
//! (`std::alloc::System`), mimalloc and jemalloc side by side, each called
//! directly through `GlobalAlloc` (this binary's own global allocator stays
//! the system one).
//!
//! ```text
//! cargo bench -p strata-benches --bench micro             # ~40 s
//! cargo bench -p strata-benches --bench micro -- pair_64  # one group
//! ```
//!
//! Short measurements (300 ms warm-up, 1 s, 20 samples per benchmark): these
//! are for spotting a regression in one operation, not for the comparison,
//! which is the main job's (`--bench compare`).

use std::alloc::{GlobalAlloc, System};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mimalloc::MiMalloc;
use strata::Strata;
use strata_benches::workloads::{layout, once};
use tikv_jemallocator::Jemalloc;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// One operation, run on any allocator (monomorphised per allocator, as in
/// the main job, so no call goes through a vtable).
trait Op {
    fn run<A: GlobalAlloc>(&self, a: &A);
}

/// Alloc + free of this many bytes, each a call (as in the main job's row
/// 1b), so that every allocator's code runs the same way whatever criterion's
/// loop lets the compiler inline.
struct Pair(usize);
/// alloc_zeroed + free of this many bytes.
struct Zeroed(usize);
/// Alloc, realloc from .0 to .1 bytes, free.
struct Realloc(usize, usize);

impl Op for Pair {
    fn run<A: GlobalAlloc>(&self, a: &A) {
        once::alloc_free_calls(a, layout(self.0), 1);
    }
}

impl Op for Zeroed {
    fn run<A: GlobalAlloc>(&self, a: &A) {
        once::zeroed_free(a, layout(self.0));
    }
}

impl Op for Realloc {
    fn run<A: GlobalAlloc>(&self, a: &A) {
        once::realloc_free(a, self.0, self.1);
    }
}

/// Benches `op` on every allocator, side by side in one group.
fn each_allocator(c: &mut Criterion, group: &str, op: impl Op) {
    let mut g = c.benchmark_group(group);
    g.bench_function("strata", |b| b.iter(|| op.run(&Strata)));
    g.bench_function("glibc", |b| b.iter(|| op.run(&System)));
    g.bench_function("mimalloc", |b| b.iter(|| op.run(&MiMalloc)));
    g.bench_function("jemalloc", |b| b.iter(|| op.run(&Jemalloc)));
    g.finish();
}

fn pairs(c: &mut Criterion) {
    for size in [16, 64, 256, 4 * KIB] {
        each_allocator(c, &format!("pair_{size}"), Pair(size));
    }
}

fn big(c: &mut Criterion) {
    each_allocator(c, "alloc_zeroed_1MiB", Zeroed(MIB));
    each_allocator(c, "realloc_1KiB_to_64KiB", Realloc(KIB, 64 * KIB));
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = micro;
    config = config();
    targets = pairs, big
}
criterion_main!(micro);
