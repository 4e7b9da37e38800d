//! T1 and T2: `alloc_zeroed` of big blocks the program never touches.
//!
//! The timed loops touch nothing, not even to read: reading an untouched
//! page maps the kernel's zero page, which an allocator that samples
//! residency (`mincore`) rightly sees as used, so a read would turn the
//! scenario into a different one. The checks run after the timed loops, on
//! the state they left: one `alloc_zeroed` per size whose sampled bytes must
//! read zero, then a block of that size is dirtied (plain `alloc`, bytes
//! written at the sampled offsets, freed) and the next `alloc_zeroed` must
//! read zero there too. An allocator that does not clear memory it hands
//! back fails instead of posting a time.

use core::alloc::GlobalAlloc;
use std::time::{Duration, Instant};

use super::{check_zero, get, layout, poke, probe_offsets, rss_mib};
use crate::measure::{Deadline, Meter};

/// Checks that `alloc_zeroed(size)` reads zero at the sampled offsets, as
/// is, and again after a block of that size was dirtied there and freed.
fn verify_zeroed<A: GlobalAlloc + ?Sized>(a: &A, size: usize) -> Result<(), String> {
    let (l, offs) = (layout(size), probe_offsets(size));
    let p = get(a, l, true)?;
    // SAFETY: the offsets are inside the live block `p`, freed once after.
    unsafe {
        check_zero(p, &offs, "alloc_zeroed after the loop")?;
        a.dealloc(p, l);
    }
    let p = get(a, l, false)?;
    for &off in &offs {
        // SAFETY: every offset is below `size` and `p` is live.
        unsafe { poke(p, off, 0xA5) };
    }
    // SAFETY: `p` came from `a.alloc(l)`.
    unsafe { a.dealloc(p, l) };
    let p = get(a, l, true)?;
    // SAFETY: as above.
    unsafe {
        check_zero(p, &offs, "alloc_zeroed after a dirty free")?;
        a.dealloc(p, l);
    }
    Ok(())
}

/// `iters` x (alloc_zeroed(size) + dealloc), untouched, until `dl`; returns
/// the number done.
fn zeroed_loop<A: GlobalAlloc + ?Sized>(
    a: &A,
    size: usize,
    iters: u64,
    dl: Deadline,
) -> Result<u64, String> {
    let l = layout(size);
    let mut done = 0u64;
    while done < iters && !dl.expired() {
        let p = get(a, l, true)?;
        // SAFETY: `p` came from `a.alloc_zeroed(l)`.
        unsafe { a.dealloc(p, l) };
        done += 1;
    }
    Ok(done)
}

/// T1: per size, `iters` x (alloc_zeroed + dealloc), untouched, within
/// `budget` per size. Returns µs/op per size, then the fewest iterations
/// any size completed.
pub(super) fn zeroed_flat<A: GlobalAlloc + ?Sized>(
    a: &A,
    sizes: &[usize],
    iters: u64,
    budget: Duration,
) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    let mut min_done = iters;
    for &size in sizes {
        let t = Instant::now();
        let done = zeroed_loop(a, size, iters, Deadline::after(budget))?;
        out.push(t.elapsed().as_nanos() as f64 / 1e3 / done.max(1) as f64);
        min_done = min_done.min(done);
    }
    for &size in sizes {
        verify_zeroed(a, size)?;
    }
    out.push(min_done as f64);
    Ok(out)
}

/// T2: `iters` x (alloc_zeroed(size) + dealloc), untouched, RSS before and
/// after. Returns µs/op, RSS start, end, end - start, peak growth (MiB),
/// iterations done.
pub(super) fn calloc_loop<A: GlobalAlloc + ?Sized>(
    a: &A,
    size: usize,
    iters: u64,
    budget: Duration,
) -> Result<Vec<f64>, String> {
    let start = rss_mib();
    let meter = Meter::start();
    let done = zeroed_loop(a, size, iters, Deadline::after(budget))?;
    let s = meter.finish(done, iters);
    let end = rss_mib();
    verify_zeroed(a, size)?;
    let us = s.wall_ns as f64 / 1e3 / done.max(1) as f64;
    let peak_growth = s.rss_delta_kib as f64 / 1024.0;
    Ok(vec![us, start, end, end - start, peak_growth, done as f64])
}
