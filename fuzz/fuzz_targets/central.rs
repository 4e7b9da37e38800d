//! Fuzzes the central layer: the input is a sequence of batch and single
//! allocations and frees over several size classes, transfer-cache drains,
//! clock moves and releases, run on a `Central<PageHeap<FakeOs>>` and
//! checked after every step against a shadow model. The interpreter lives
//! with the central layer's tests so that `cargo test` replays
//! `fuzz/regressions/central/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/central/tests/fuzz_ops/mod.rs"]
mod fuzz_ops;

fuzz_target!(|data: &[u8]| fuzz_ops::run(data));
