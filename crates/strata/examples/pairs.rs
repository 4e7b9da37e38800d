//! The fast-path probe on strata alone (`strata_testkit::pairs`): `n`
//! allocate/free pairs of 16, 32 and 64 bytes through `GlobalAlloc`. Built
//! by the instruction-count check (`benches/callgrind/check.sh`), which
//! counts it with callgrind at two lengths; the benchmarks' `pairs` example
//! runs the same loop on every allocator.

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    strata_testkit::pairs::pairs(&strata::Strata, n);
}
