//! Fuzzes the page heap: the input is a sequence of large, huge and
//! small-span allocations, frees (good and bad), resizes, clock moves,
//! decay ticks and releases, run on a `PageHeap<FakeOs>` and checked after
//! every step against a shadow model. The interpreter lives with the page
//! heap's tests so that `cargo test` replays `fuzz/regressions/pageheap/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/pageheap/tests/fuzz_ops/mod.rs"]
mod fuzz_ops;

fuzz_target!(|data: &[u8]| fuzz_ops::run(data));
