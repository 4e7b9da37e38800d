//! glibc-simple and alloc-test style workloads: many small blocks of mixed
//! sizes and lifetimes, on one thread or several independent ones.

use core::alloc::GlobalAlloc;

use strata_testkit::rng::Rng;

use super::block::{table, Block, MIN_BLOCK, TABLE};
use super::threaded::on_threads;
use crate::measure::{Deadline, Meter, Sample};

/// Block sizes of [`glibc_simple`].
pub const SIMPLE_SIZES: [usize; 5] = [16, 64, 256, 1024, 4096];
/// How many blocks [`glibc_simple`] holds at once, per size.
pub const SIMPLE_COUNTS: [usize; 4] = [25, 100, 400, 1600];

/// Alloc + free pairs in one round of [`glibc_simple`].
pub fn simple_round_ops() -> u64 {
    (SIMPLE_SIZES.len() * SIMPLE_COUNTS.iter().sum::<usize>()) as u64
}

/// glibc-simple (after glibc's bench-malloc-simple): for every size in
/// `SIMPLE_SIZES` (16 B..4 KiB) and count in `SIMPLE_COUNTS` (25..1600),
/// allocate `count` blocks of that size, then free them in the order they
/// came; `rounds` times, on one thread. One op = one alloc + free pair.
pub fn glibc_simple<A: GlobalAlloc + ?Sized>(a: &A, rounds: u64, dl: Deadline) -> Sample {
    let mut held: Vec<Block> = Vec::with_capacity(SIMPLE_COUNTS[SIMPLE_COUNTS.len() - 1]);
    let meter = Meter::start();
    let mut done = 0u64;
    for _ in 0..rounds {
        if dl.expired() {
            break;
        }
        for size in SIMPLE_SIZES {
            for count in SIMPLE_COUNTS {
                held.extend((0..count).map(|_| Block::new(a, size)));
                for b in held.drain(..) {
                    // SAFETY: each held Block is live, from `a`, freed once.
                    unsafe { b.free(a) };
                }
            }
        }
        done += simple_round_ops();
    }
    meter.finish(done, rounds * simple_round_ops())
}

/// A Pareto-distributed size (shape 1, scale 16 B) capped at 1 KiB: half the
/// blocks are under 32 B, one in 64 is 1 KiB.
fn pareto_size(rng: &mut Rng) -> usize {
    let s = MIN_BLOCK as f64 / (1.0 - rng.unit());
    s.min(1024.0) as usize
}

/// One alloc-test thread: `slots` slots, low ones replaced often (short
/// lives), high ones rarely (long lives).
fn alloc_test_thread<A: GlobalAlloc + ?Sized>(
    a: &A,
    steps: u64,
    slots: usize,
    seed: u64,
    dl: Deadline,
) -> u64 {
    let sizes = table(seed, pareto_size);
    let mut rng = Rng::new(seed);
    let mut held: Vec<Option<Block>> = vec![None; slots];
    let mut done = 0u64;
    for i in 0..steps {
        if i % 1024 == 0 && dl.expired() {
            break;
        }
        // The minimum of two uniform draws: index k is picked with weight
        // about ln(slots / k).
        let bound = rng.below(slots) + 1;
        let idx = rng.below(bound);
        let x = rng.next_u64();
        let old = held[idx].take();
        if let Some(b) = old {
            // SAFETY: a held Block is live and from `a`; taken out, freed once.
            unsafe { b.free(a) };
        }
        // A quarter of the frees leave the slot empty for a while.
        if old.is_none() || x & 3 != 0 {
            held[idx] = Some(Block::new(a, sizes[(x >> 2) as usize & (TABLE - 1)]));
        }
        done += 1;
    }
    for b in held.into_iter().flatten() {
        // SAFETY: as above.
        unsafe { b.free(a) };
    }
    done
}

/// alloc-test (after ITHare's allocator test): `threads` independent threads,
/// each doing `steps` steps on its own `slots` slots: pick a slot (skewed to
/// low indices), free what it holds, usually put a new block of a
/// Pareto-distributed size (16 B..1 KiB) there. One op = one step (about
/// one alloc and one free).
pub fn alloc_test<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    threads: usize,
    steps: u64,
    slots: usize,
    dl: Deadline,
) -> Sample {
    let meter = Meter::start();
    let done = on_threads(threads, "alloc-test", |t| {
        alloc_test_thread(a, steps, slots, 700 + t as u64, dl)
    });
    meter.finish(done.into_iter().sum(), steps * threads as u64)
}
