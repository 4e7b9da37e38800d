//! A thread capturing from two places in turn keeps a memo of each: both
//! are repeated (the same key every time), neither walked again. Alone in
//! its process, so that no other thread shares the walker's memo slot.

use std::hint::black_box;

use strata_os::stack::{capture_keyed_with, Walker};

#[inline(never)]
fn leaf() -> (Vec<usize>, u64) {
    let mut out = [0usize; 64];
    let (n, key) = black_box(capture_keyed_with(Walker::Fast, &mut out, 0));
    (out[..n].to_vec(), key)
}

#[inline(never)]
fn one() -> (Vec<usize>, u64) {
    let r = black_box(leaf());
    black_box(1u8);
    r
}

#[inline(never)]
fn two() -> (Vec<usize>, u64) {
    let r = black_box(one());
    black_box(2u8);
    r
}

/// `one` or `two` from one call site (the loop hidden from the optimiser).
#[inline(never)]
fn run(n: usize) -> Vec<(Vec<usize>, u64)> {
    let mut seen = Vec::with_capacity(n);
    let mut i = 0;
    while i < black_box(n) {
        seen.push(if i % 2 == 0 { one() } else { two() });
        i += 1;
    }
    seen
}

#[test]
fn two_places_in_turn_are_both_repeated() {
    let seen = run(20);
    let (first_one, first_two) = (&seen[0], &seen[1]);
    assert_ne!(first_one.1, 0);
    assert_ne!(first_two.1, 0);
    assert_ne!(first_one.1, first_two.1);
    assert_ne!(first_one.0, first_two.0);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(
            s,
            if i % 2 == 0 { first_one } else { first_two },
            "capture {i}"
        );
    }
}
