//! T3 and T4: a big block freed and asked for again, plain (frame loop) and
//! zeroed after the program dirtied one page (dirty calloc).

use core::alloc::GlobalAlloc;
use std::time::Duration;

use super::{check_zero, get, layout, peek, poke, Excluded, PAGE};
use crate::measure::{self, Deadline, Meter};
use crate::workloads::FRAME_BYTES;

/// T3: `cycles` x (alloc `block`, copy a 1920x1080x4 frame in with
/// `copy_nonoverlapping`, check three sampled bytes, dealloc). Returns CPU ms
/// total, CPU µs/cycle, wall µs/cycle, minor faults/cycle over all cycles
/// and over all but the first (which must fault the block in, unless the
/// allocator already holds the memory or uses huge pages), cycles done.
pub(super) fn frame_loop<A: GlobalAlloc + ?Sized>(
    a: &A,
    block: usize,
    cycles: u64,
    budget: Duration,
) -> Result<Vec<f64>, String> {
    assert!(block >= FRAME_BYTES);
    let frame: Vec<u8> = (0..FRAME_BYTES).map(|i| (i % 251) as u8).collect();
    let fr = frame.as_ptr_range();
    let l = layout(block);
    let dl = Deadline::after(budget);
    let meter = Meter::start();
    let (mut done, mut first) = (0u64, 0u64);
    while done < cycles && !dl.expired() {
        if done == 1 {
            first = measure::process_minor_faults();
        }
        let p = get(a, l, false)?;
        if (p as usize) < fr.end as usize && (fr.start as usize) < p as usize + block {
            return Err(format!("{p:p} overlaps the live frame buffer"));
        }
        // SAFETY: `p` is a live block of `block >= FRAME_BYTES` bytes,
        // distinct from the frame (checked above).
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), p, FRAME_BYTES) };
        let off = (done as usize * 7919) % FRAME_BYTES;
        for o in [0, FRAME_BYTES - 1, off] {
            // SAFETY: `o < FRAME_BYTES <= block`.
            let v = unsafe { peek(p, o) };
            if v != frame[o] {
                return Err(format!(
                    "byte {o} of the copied frame reads {v}, not {}",
                    frame[o]
                ));
            }
        }
        // SAFETY: `p` came from `a.alloc(l)`.
        unsafe { a.dealloc(p, l) };
        done += 1;
    }
    let after_first = measure::process_minor_faults().saturating_sub(first);
    let s = meter.finish(done, cycles);
    let n = done.max(1) as f64;
    Ok(vec![
        s.cpu_ns as f64 / 1e6,
        s.cpu_ns as f64 / 1e3 / n,
        s.wall_ns as f64 / 1e3 / n,
        s.minflt as f64 / n,
        after_first as f64 / done.saturating_sub(1).max(1) as f64,
        done as f64,
    ])
}

/// Where cycle `i` of T4 writes: page `(i * 37) % pages`, at a byte that
/// moves within the page.
fn spot(i: u64, size: usize) -> usize {
    let pages = (size / PAGE) as u64;
    ((i * 37) % pages) as usize * PAGE + (i as usize * 97) % PAGE
}

/// T4: `cycles` x (alloc_zeroed(size), check that the byte the previous
/// cycle dirtied reads zero, write one byte in a new page, dealloc). The
/// check's time and faults are excluded. Returns wall µs/cycle,
/// faults/cycle, CPU µs/cycle, cycles done.
pub(super) fn dirty_calloc<A: GlobalAlloc + ?Sized>(
    a: &A,
    size: usize,
    cycles: u64,
    budget: Duration,
) -> Result<Vec<f64>, String> {
    let l = layout(size);
    // Cycle 0 checks a spot dirtied before the loop (no cycle writes it:
    // the page sequence does not repeat within `size / PAGE` cycles).
    let pre = spot(cycles, size);
    let p = get(a, l, false)?;
    // SAFETY: `pre < size` and `p` is live; freed once with its layout.
    unsafe {
        poke(p, pre, 0xA5);
        a.dealloc(p, l);
    }
    let dl = Deadline::after(budget);
    let mut ex = Excluded::default();
    let meter = Meter::start();
    let mut done = 0u64;
    while done < cycles && !dl.expired() {
        let p = get(a, l, true)?;
        let prev = if done == 0 { pre } else { spot(done - 1, size) };
        // SAFETY: `prev < size`, inside the live block.
        ex.run(true, || unsafe {
            check_zero(p, &[prev], "dirty alloc_zeroed")
        })?;
        // SAFETY: `spot(..) < size`; `p` came from `a.alloc_zeroed(l)`.
        unsafe {
            poke(p, spot(done, size), done as u8 | 1);
            a.dealloc(p, l);
        }
        done += 1;
    }
    let s = meter.finish(done, cycles);
    let n = done.max(1) as f64;
    Ok(vec![
        s.wall_ns.saturating_sub(ex.ns) as f64 / 1e3 / n,
        s.minflt.saturating_sub(ex.faults) as f64 / n,
        s.cpu_ns.saturating_sub(ex.ns) as f64 / 1e3 / n,
        done as f64,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_are_distinct_pages() {
        let size = 64 << 20;
        let mut pages: Vec<usize> = (0..=500).map(|i| spot(i, size) / PAGE).collect();
        pages.sort_unstable();
        pages.dedup();
        assert_eq!(pages.len(), 501);
        assert!((0..=500).all(|i| spot(i, size) < size));
    }
}
