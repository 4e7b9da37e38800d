//! Replays the `central` fuzz target's inputs in `cargo test`: every file
//! kept under `fuzz/regressions/central/` (crashes the fuzzer found, and
//! hand-made seeds), plus a deterministic batch of pseudo-random inputs.
//! The interpreter is `tests/fuzz_ops/`, shared with the fuzz target; each
//! input runs over both OS layers it supports (`ArenaOs`, the fuzz
//! target's, and `FakeOs`).

mod fuzz_ops;
#[path = "../../pageheap/tests/fuzz_ops/replay.rs"]
mod replay;

use replay::replay_kept;

use fuzz_ops::{class_of, decode, encode, run, run_fake, run_ops, ArenaOs, Op, FUZZ};
use strata_central::{class_for_size, MAX_SMALL};
use strata_os::FakeOs;
use strata_testkit::rng::Rng;

#[test]
fn kept_inputs_replay() {
    replay_kept(
        "central",
        |data| format!("{:?}", decode(data, &FUZZ)),
        |data| {
            run(data);
            run_fake(data);
        },
    );
}

#[test]
fn pseudo_random_inputs() {
    let mut rng = Rng::new(0xC0FF_EE15_600D_F00D);
    for i in 0..300 {
        let len = rng.below(700);
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let ops = decode(&data, &FUZZ);
        run_ops::<ArenaOs>(&ops, &FUZZ);
        if i % 4 == 0 {
            run_ops::<FakeOs>(&ops, &FUZZ);
        }
    }
}

fn class(size: usize) -> u8 {
    class_for_size(size).unwrap()
}

fn free(class: u8, n: u8, start: u8, reverse: bool) -> Op {
    Op::FreeBatch {
        class,
        n,
        start,
        reverse,
    }
}

/// Hand-made inputs kept as files: seeds (a starting corpus for the fuzzer
/// and replay tests that always run something) and minimized crashes.
fn kept() -> Vec<(&'static str, Vec<Op>)> {
    let (small, mid, big) = (class(16), class(1024), class(MAX_SMALL));
    vec![
        (
            "seed-batches.bin",
            vec![
                Op::AllocBatch { class: small, n: 0 },
                Op::AllocBatch { class: small, n: 7 },
                Op::AllocBatch { class: mid, n: 0 },
                free(small, 0, 3, false),
                Op::AllocBatch { class: small, n: 0 },
                free(small, 5, 1, true),
                free(mid, 0, 0, true),
                Op::AllocBatch { class: mid, n: 3 },
                Op::Drain,
                free(mid, 0, 0, false),
                Op::Drain,
            ],
        ),
        (
            "seed-one-and-release.bin",
            vec![
                Op::AllocOne { class: small },
                Op::AllocOne { class: small },
                Op::AllocOne {
                    class: class_of(200),
                },
                Op::FreeOne {
                    class: small,
                    pick: 1,
                },
                Op::Advance { ms: 2000 },
                Op::AllocBatch { class: big, n: 2 },
                Op::FreeOne {
                    class: big,
                    pick: 0,
                },
                Op::FreeOne {
                    class: big,
                    pick: 0,
                },
                Op::Advance { ms: 2000 },
                Op::Release,
                Op::AllocOne { class: big },
            ],
        ),
        (
            "seed-many-spans.bin",
            vec![
                Op::AllocBatch { class: big, n: 4 },
                Op::AllocBatch { class: big, n: 4 },
                Op::AllocBatch {
                    class: class(8),
                    n: 64,
                },
                free(big, 0, 1, false),
                free(big, 3, 0, true),
                Op::AllocBatch { class: big, n: 0 },
                free(class(8), 64, 17, true),
                Op::Drain,
                Op::Release,
            ],
        ),
    ]
}

#[test]
fn kept_files_are_current() {
    replay::check_kept_files(
        "central",
        "strata-central",
        kept(),
        |ops| encode(ops),
        |b| decode(b, &FUZZ),
    );
}

#[test]
#[ignore = "writes the hand-made files into fuzz/regressions/central"]
fn write_kept_files() {
    replay::write_kept_files("central", kept(), |ops| encode(ops));
}
