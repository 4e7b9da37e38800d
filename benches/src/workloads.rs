//! Allocation workloads, generic over any [`GlobalAlloc`].
//!
//! Every workload takes the allocator as a parameter (so the library does not
//! depend on the allocators it is compared with), is deterministic (the
//! shared generator, `strata_testkit::rng`, with fixed seeds), does its setup
//! outside the timed section,
//! and returns one [`Sample`]. All of them poll a [`Deadline`] and stop early
//! when it passes; the sample then records fewer `ops` than `planned`.

use core::alloc::{GlobalAlloc, Layout};
use std::alloc::handle_alloc_error;
use std::hint::black_box;

use strata_testkit::rng::Rng;

use crate::measure::{Deadline, Meter, Sample};

pub mod block;
mod mixed;
mod mstress;
pub mod once;
mod rptest;
mod scratch;
mod threaded;
mod xmalloc;
pub use mixed::{alloc_test, glibc_simple, simple_round_ops};
pub use mstress::{mstress, steps_of};
pub use rptest::rptest;
pub use scratch::cache_scratch;
pub use threaded::{larson, producer_consumer, thread_churn};
pub use xmalloc::xmalloc_test;

/// Alignment used for every block; malloc's natural alignment covers it.
pub const ALIGN: usize = 8;

/// The frame copied by [`big_frame`]: 1920 x 1080 pixels x 4 bytes.
pub const FRAME_BYTES: usize = 1920 * 1080 * 4;

/// The layout of a `size`-byte benchmark block.
pub fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, ALIGN).expect("benchmark sizes are valid layouts")
}

/// `a.alloc(l)`, aborting on failure; the pointer is passed through
/// `black_box` so the compiler cannot elide a malloc/free pair.
#[inline]
fn fresh<A: GlobalAlloc + ?Sized>(a: &A, l: Layout) -> *mut u8 {
    assert!(l.size() != 0);
    // SAFETY: the layout has a non-zero size (checked above).
    let p = unsafe { a.alloc(l) };
    if p.is_null() {
        handle_alloc_error(l);
    }
    black_box(p)
}

/// `a.alloc_zeroed(l)`, aborting on failure.
#[inline]
fn fresh_zeroed<A: GlobalAlloc + ?Sized>(a: &A, l: Layout) -> *mut u8 {
    assert!(l.size() != 0);
    // SAFETY: the layout has a non-zero size (checked above).
    let p = unsafe { a.alloc_zeroed(l) };
    if p.is_null() {
        handle_alloc_error(l);
    }
    black_box(p)
}

/// Writes one byte at `p + off`.
///
/// # Safety
/// `p` must point to a live block of more than `off` bytes.
#[inline]
unsafe fn poke(p: *mut u8, off: usize, v: u8) {
    // SAFETY: the caller guarantees `off` is inside the block at `p`.
    unsafe { p.add(off).write_volatile(v) }
}

/// Workload 1: `iters` alloc + free pairs of each of 16, 32 and 64 bytes;
/// one op = one pair.
///
/// Without `calls`: the three sizes take turns in one loop, and the
/// allocator's code may be inlined into it (only strata, a Rust allocator,
/// can be), so three independent pairs overlap in the CPU. With `calls`, as a
/// program calling malloc sees it: one size at a time, each alloc and free a
/// call to a function of its own ([`once::alloc_free_calls`]), so each pair
/// waits for the free list the previous pair left.
pub fn small_pairs<A: GlobalAlloc + ?Sized>(
    a: &A,
    iters: u64,
    calls: bool,
    dl: Deadline,
) -> Sample {
    let layouts = [layout(16), layout(32), layout(64)];
    let meter = Meter::start();
    let mut done = 0u64;
    if calls {
        'sizes: for l in layouts {
            for i in 0..iters {
                if i % 4096 == 0 && dl.expired() {
                    break 'sizes;
                }
                once::alloc_free_calls(a, l, i as u8);
                done += 1;
            }
        }
    } else {
        for i in 0..iters {
            if i % 4096 == 0 && dl.expired() {
                break;
            }
            for &l in &layouts {
                once::alloc_free(a, l, i as u8);
            }
            done += 3;
        }
    }
    meter.finish(done, iters * 3)
}

/// Workload 2: `ops` allocations with log-uniform sizes in 8 B..=1 MiB, kept in
/// a ring of 64 live blocks (each op frees the block it replaces); the first
/// byte of every new block is written. One op = one (free +) alloc.
pub fn size_sweep<A: GlobalAlloc + ?Sized>(a: &A, ops: u64, dl: Deadline) -> Sample {
    let mut rng = Rng::new(2);
    // 3 + 17 * u in log2 space: 2^3 = 8 B .. 2^20 = 1 MiB.
    let sizes: Vec<usize> = (0..4096)
        .map(|_| ((8.0 * (17.0 * rng.unit()).exp2()) as usize).clamp(8, 1 << 20))
        .collect();
    let mut ring: [Option<(*mut u8, Layout)>; 64] = [None; 64];
    let meter = Meter::start();
    let mut done = 0u64;
    for i in 0..ops {
        if i % 256 == 0 && dl.expired() {
            break;
        }
        let slot = &mut ring[(i % 64) as usize];
        if let Some((p, l)) = slot.take() {
            // SAFETY: `p` came from `a.alloc(l)` and is freed once here.
            unsafe { a.dealloc(p, l) };
        }
        let l = layout(sizes[(i % 4096) as usize]);
        let p = fresh(a, l);
        // SAFETY: `p` is a live block of at least 8 bytes.
        unsafe { poke(p, 0, i as u8) };
        *slot = Some((p, l));
        done += 1;
    }
    for (p, l) in ring.iter().flatten() {
        // SAFETY: each remaining ring entry is a live block from `a.alloc(*l)`.
        unsafe { a.dealloc(*p, *l) };
    }
    meter.finish(done, ops)
}

/// Workload 3: `rounds` x (allocate `objects` blocks of 8..=512 B, then free
/// them in a fixed shuffled order). One op = one object allocated and freed.
pub fn random_free<A: GlobalAlloc + ?Sized>(
    a: &A,
    objects: usize,
    rounds: u64,
    dl: Deadline,
) -> Sample {
    let mut rng = Rng::new(3);
    let layouts: Vec<Layout> = (0..objects).map(|_| layout(rng.range(8, 512))).collect();
    let mut order: Vec<usize> = (0..objects).collect();
    for i in (1..objects).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut ptrs = vec![std::ptr::null_mut::<u8>(); objects];
    let mut meter = Meter::start();
    let mut done = 0u64;
    for round in 0..rounds {
        if dl.expired() {
            break;
        }
        for (slot, &l) in ptrs.iter_mut().zip(&layouts) {
            let p = fresh(a, l);
            // SAFETY: `p` is a live block of at least 8 bytes.
            unsafe { poke(p, 0, round as u8) };
            *slot = p;
        }
        if round == 0 {
            meter.probe();
        }
        for &i in &order {
            // SAFETY: `ptrs[i]` was allocated with `layouts[i]` this round and
            // `order` is a permutation, so each block is freed exactly once.
            unsafe { a.dealloc(ptrs[i], layouts[i]) };
        }
        done += objects as u64;
    }
    meter.finish(done, objects as u64 * rounds)
}

/// How [`realloc_growth`] grows its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// 8, 16, 32, ... bytes.
    Doubling,
    /// 8, 8 + step, 8 + 2 step, ... bytes.
    Step(usize),
}

impl Growth {
    fn next(self, size: usize) -> usize {
        match self {
            Growth::Doubling => size * 2,
            Growth::Step(s) => size + s,
        }
    }

    /// Number of reallocs needed to grow from 8 bytes up to at most `max`.
    pub fn steps_to(self, max: usize) -> u64 {
        if let Growth::Step(s) = self {
            return (max.saturating_sub(8) / s) as u64;
        }
        let (mut size, mut n) = (8usize, 0u64);
        while self.next(size) <= max {
            size = self.next(size);
            n += 1;
        }
        n
    }
}

/// Workload 4: `rounds` x (grow a buffer from 8 B to at most `max` bytes by
/// `growth`, writing the last byte after each realloc, then free it).
/// One op = one realloc.
pub fn realloc_growth<A: GlobalAlloc + ?Sized>(
    a: &A,
    growth: Growth,
    max: usize,
    rounds: u64,
    dl: Deadline,
) -> Sample {
    let per_round = growth.steps_to(max);
    let meter = Meter::start();
    let mut done = 0u64;
    'rounds: for _ in 0..rounds {
        let mut size = 8;
        let mut p = fresh(a, layout(size));
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { poke(p, size - 1, 1) };
        loop {
            let next = growth.next(size);
            let stop = next > max || (done % 256 == 0 && dl.expired());
            if stop {
                // SAFETY: `p` is the live block of `size` bytes from `a`.
                unsafe { a.dealloc(p, layout(size)) };
                if next > max {
                    continue 'rounds;
                }
                break 'rounds;
            }
            // SAFETY: `p` was allocated by `a` with `layout(size)`; `next` is
            // non-zero and, rounded up to ALIGN, does not overflow isize.
            let q = unsafe { a.realloc(p, layout(size), next) };
            if q.is_null() {
                handle_alloc_error(layout(next));
            }
            p = black_box(q);
            size = next;
            // SAFETY: `p` is now a live block of `size` bytes.
            unsafe { poke(p, size - 1, size as u8) };
            done += 1;
        }
    }
    meter.finish(done, per_round * rounds)
}

/// Workloads 5 and 7: `count` x (alloc_zeroed(`size`), optionally write one
/// byte at `touch` (one page dirtied), dealloc). One op = one cycle.
pub fn zeroed_cycles<A: GlobalAlloc + ?Sized>(
    a: &A,
    size: usize,
    count: u64,
    touch: Option<usize>,
    dl: Deadline,
) -> Sample {
    let l = layout(size);
    if let Some(off) = touch {
        assert!(off < size, "touch offset outside the block");
    }
    let meter = Meter::start();
    let mut done = 0u64;
    for i in 0..count {
        if dl.expired() {
            break;
        }
        let p = fresh_zeroed(a, l);
        if let Some(off) = touch {
            // SAFETY: `off < size` (asserted above) and `p` is live.
            unsafe { poke(p, off, i as u8 | 1) };
        }
        // SAFETY: `p` came from `a.alloc_zeroed(l)` and is freed once.
        unsafe { a.dealloc(p, l) };
        done += 1;
    }
    meter.finish(done, count)
}

/// Workload 6: `cycles` x (alloc `block` bytes, copy a [`FRAME_BYTES`] frame
/// into it, dealloc). Rank by CPU time. One op = one cycle.
pub fn big_frame<A: GlobalAlloc + ?Sized>(
    a: &A,
    block: usize,
    cycles: u64,
    dl: Deadline,
) -> Sample {
    assert!(block >= FRAME_BYTES);
    let frame: Vec<u8> = (0..FRAME_BYTES).map(|i| (i % 251) as u8).collect();
    let l = layout(block);
    let meter = Meter::start();
    let mut done = 0u64;
    for _ in 0..cycles {
        if dl.expired() {
            break;
        }
        let p = fresh(a, l);
        // SAFETY: `p` is a fresh block of `block >= FRAME_BYTES` bytes that
        // cannot overlap the frame (a separate live allocation); it is then
        // freed once with its own layout.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), p, FRAME_BYTES);
            black_box(p);
            a.dealloc(p, l);
        }
        done += 1;
    }
    meter.finish(done, cycles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn growth_steps() {
        assert_eq!(Growth::Doubling.steps_to(4 << 20), 19);
        assert_eq!(Growth::Step(16).steps_to(40), 2);
    }

    #[test]
    fn every_workload_runs_on_system() {
        let a = &System;
        let dl = Deadline::never();
        assert_eq!(small_pairs(a, 100, false, dl).ops, 300);
        assert_eq!(small_pairs(a, 100, true, dl).ops, 300);
        assert_eq!(size_sweep(a, 500, dl).ops, 500);
        assert_eq!(random_free(a, 1000, 2, dl).ops, 2000);
        assert_eq!(realloc_growth(a, Growth::Doubling, 1 << 16, 2, dl).ops, 26);
        assert_eq!(realloc_growth(a, Growth::Step(16), 4096, 1, dl).ops, 255);
        assert_eq!(zeroed_cycles(a, 1 << 20, 3, Some(4096), dl).ops, 3);
        assert_eq!(big_frame(a, 8 << 20, 2, dl).ops, 2);
        assert_eq!(producer_consumer(a, 1000, 64, 64, dl).ops, 1000);
        assert_eq!(thread_churn(a, 5, 2, 10, dl).ops, 5);
        assert_eq!(larson(a, 2, 10, 100, 3, dl).ops, 600);
    }

    #[test]
    fn deadline_truncates() {
        let s = small_pairs(
            &System,
            1_000_000,
            false,
            Deadline::after(std::time::Duration::ZERO),
        );
        assert!(s.truncated());
    }
}
