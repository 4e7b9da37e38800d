//! mstress style (mimalloc's multi-threaded stress test, as described in
//! mimalloc-bench): threads allocate and free power-of-two sized objects,
//! hand some of their live objects to other threads through a shared array,
//! do unequal amounts of work, and all end after each phase, when new
//! threads start; objects left in the shared array survive into the next
//! phase.

use core::alloc::GlobalAlloc;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_testkit::rng::Rng;

use super::block::Block;
use super::threaded::on_threads;
use crate::measure::{Deadline, Meter, Sample};

/// Most objects one thread keeps live at once.
const LIVE_CAP: usize = 20_000;
/// Percent of steps that hand an object over to the shared array.
const HANDOVER_PCT: usize = 10;

/// Steps done by thread `t`: 2/3, 3/3 or 4/3 of `steps`, so that threads
/// finish at different times.
pub fn steps_of(t: usize, steps: u64) -> u64 {
    steps * (2 + t as u64 % 3) / 3
}

/// A power-of-two size: 16..=1024 B, one in 64 from 2..=64 KiB.
fn pow2_size(rng: &mut Rng) -> usize {
    if rng.below(64) == 0 {
        1 << rng.range(11, 16)
    } else {
        1 << rng.range(4, 10)
    }
}

/// Puts `addr` into a random slot of `shared` and frees what was there.
fn hand_over<A: GlobalAlloc + ?Sized>(a: &A, shared: &[AtomicUsize], addr: usize, rng: &mut Rng) {
    let theirs = shared[rng.below(shared.len())].swap(addr, Ordering::AcqRel);
    if theirs != 0 {
        // SAFETY: the array only holds live Blocks from `a`; the swap took
        // this one out, so no other thread can free it.
        unsafe { Block::from_addr(theirs).free(a) };
    }
}

/// One thread of one phase. The first half of its steps leans to
/// allocating (60%), the second half to freeing (40%), so its live set grows
/// and shrinks; at its end a quarter of what is left goes to the shared
/// array and the rest is freed.
fn stress_thread<A: GlobalAlloc + ?Sized>(
    a: &A,
    shared: &[AtomicUsize],
    steps: u64,
    seed: u64,
    dl: Deadline,
) -> u64 {
    let mut rng = Rng::new(seed);
    let mut live: Vec<Block> = Vec::with_capacity(LIVE_CAP);
    let mut done = 0u64;
    for i in 0..steps {
        if i % 1024 == 0 && dl.expired() {
            break;
        }
        let alloc_pct = if i < steps / 2 { 60 } else { 40 };
        let r = rng.below(100);
        if r < HANDOVER_PCT {
            let mine = match live.len() {
                0 => Block::new(a, pow2_size(&mut rng)),
                n => live.swap_remove(rng.below(n)),
            };
            hand_over(a, shared, mine.addr(), &mut rng);
        } else if r < HANDOVER_PCT + alloc_pct || live.is_empty() {
            if live.len() == LIVE_CAP {
                let old = live.swap_remove(rng.below(LIVE_CAP));
                // SAFETY: `old` is a live Block from `a`, removed from `live`.
                unsafe { old.free(a) };
            }
            live.push(Block::new(a, pow2_size(&mut rng)));
        } else {
            let old = live.swap_remove(rng.below(live.len()));
            // SAFETY: as above.
            unsafe { old.free(a) };
        }
        done += 1;
    }
    for b in live {
        if rng.below(4) == 0 {
            hand_over(a, shared, b.addr(), &mut rng);
        } else {
            // SAFETY: `b` is a live Block from `a`, freed once.
            unsafe { b.free(a) };
        }
    }
    done
}

/// mstress: `rounds` phases of `threads` threads (thread `t` does
/// [`steps_of`]`(t, steps)` steps), sharing an array of `shared_slots`
/// objects that outlive the threads. One op = one step: an allocation, a
/// free, or a hand-over (a swap into the shared array, freeing the object
/// that was there).
pub fn mstress<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    threads: usize,
    rounds: u64,
    steps: u64,
    shared_slots: usize,
    dl: Deadline,
) -> Sample {
    let shared: Vec<AtomicUsize> = (0..shared_slots).map(|_| AtomicUsize::new(0)).collect();
    let shared = &shared[..];
    let planned: u64 = rounds * (0..threads).map(|t| steps_of(t, steps)).sum::<u64>();
    let mut meter = Meter::start();
    let mut done = 0u64;
    for round in 0..rounds {
        if dl.expired() {
            break;
        }
        let seed = |t| 1_000 * round + t as u64;
        done += on_threads(threads, "mstress", |t| {
            stress_thread(a, shared, steps_of(t, steps), seed(t), dl)
        })
        .into_iter()
        .sum::<u64>();
        meter.probe();
    }
    for slot in shared {
        let addr = slot.swap(0, Ordering::AcqRel);
        if addr != 0 {
            // SAFETY: a live Block from `a`, taken out of the array once.
            unsafe { Block::from_addr(addr).free(a) };
        }
    }
    meter.finish(done, planned)
}
