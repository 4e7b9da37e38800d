//! T5 and T6: a gigabyte of blocks written and freed; how much of it goes
//! back to the OS on an explicit release (T5) or by itself (T6, decay):
//! while the program keeps allocating a little, or while it makes no call
//! at all and only the allocator's background thread (if it has one) can
//! act.

use core::alloc::GlobalAlloc;
use std::time::{Duration, Instant};

use super::{get, layout, rss_mib, Hooks, PAGE};
use crate::measure;

const MAGIC: u64 = 0x5EED_0000_0000_0000;

/// The tag written at the start of page `page` of block `block`.
fn tag(block: usize, page: usize) -> u64 {
    MAGIC ^ ((block as u64) << 20) ^ page as u64
}

/// RSS samples a second in T6.
pub(crate) const MARKS_PER_SECOND: u64 = 2;

/// Seconds after the frees of T6's `m`-th sample (from 1).
pub(crate) fn mark_secs(m: u64) -> f64 {
    m as f64 / MARKS_PER_SECOND as f64
}

/// Allocates `n` blocks of `block` bytes and writes a tag in every page
/// (blocks of less than a page: in each block, which touches every page
/// they fill).
fn fill<A: GlobalAlloc + ?Sized>(a: &A, block: usize, n: usize) -> Result<Vec<*mut u8>, String> {
    assert!(
        block % PAGE == 0 || (8..PAGE).contains(&block),
        "blocks are whole pages, or parts of one"
    );
    let l = layout(block);
    let mut ptrs = Vec::with_capacity(n);
    for i in 0..n {
        let p = get(a, l, false)?;
        for k in 0..block.div_ceil(PAGE) {
            // SAFETY: `block` is a multiple of PAGE, so `k * PAGE + 8 <= block`
            // (or less than a page and at least 8, and `k` is 0); the block
            // is 8-byte aligned and live.
            unsafe { p.add(k * PAGE).cast::<u64>().write_volatile(tag(i, k)) };
        }
        ptrs.push(p);
    }
    Ok(ptrs)
}

/// Checks every tag [`fill`] wrote (two blocks that overlap would have
/// overwritten each other's), then frees every block.
fn check_and_free<A: GlobalAlloc + ?Sized>(
    a: &A,
    ptrs: &[*mut u8],
    block: usize,
) -> Result<(), String> {
    for (i, &p) in ptrs.iter().enumerate() {
        for k in 0..block.div_ceil(PAGE) {
            // SAFETY: as in `fill`: inside the live block `p`.
            let v = unsafe { p.add(k * PAGE).cast::<u64>().read_volatile() };
            if v != tag(i, k) {
                return Err(format!(
                    "block {i} page {k}: tag overwritten (blocks overlap?)"
                ));
            }
        }
    }
    for &p in ptrs {
        // SAFETY: every pointer came from `a.alloc(layout(block))` and is
        // freed once.
        unsafe { a.dealloc(p, layout(block)) };
    }
    Ok(())
}

/// Peak RSS in MiB since `reset_hwm` (when it succeeded), else the current
/// RSS (called at the point of peak use).
fn peak_mib(hwm_reset: bool) -> f64 {
    let now = rss_mib();
    match measure::hwm_kib() {
        Some(k) if hwm_reset => now.max(k as f64 / 1024.0),
        _ => now,
    }
}

/// T5: `total` bytes as `block`-byte blocks, every page written and
/// checked, all freed, then `hooks.release`. Returns RSS in MiB at start,
/// peak, after the frees, after the release (NaN without one), and the
/// release's ms (NaN without one).
pub(super) fn release_blocks<A: GlobalAlloc + ?Sized>(
    a: &A,
    hooks: &Hooks,
    block: usize,
    total: usize,
) -> Result<Vec<f64>, String> {
    let start = rss_mib();
    let hwm = measure::reset_hwm();
    let ptrs = fill(a, block, total / block)?;
    let peak = peak_mib(hwm);
    check_and_free(a, &ptrs, block)?;
    drop(ptrs);
    let after_free = rss_mib();
    let (ms, after_release) = match hooks.release {
        Some(release) => {
            let t = Instant::now();
            release();
            (t.elapsed().as_secs_f64() * 1e3, rss_mib())
        }
        None => (f64::NAN, f64::NAN),
    };
    Ok(vec![start, peak, after_free, after_release, ms])
}

/// T6: as T5 without the release; then, for `seconds`, one retained
/// 64-byte allocation about every millisecond (`calls`), or no call to `a`
/// at all with `hooks.background` started before the burst. RSS is recorded
/// [`MARKS_PER_SECOND`] times a second. Returns RSS in MiB at start, peak,
/// after the frees, at each mark, and the final RSS over the peak.
pub(super) fn decay<A: GlobalAlloc + ?Sized>(
    a: &A,
    hooks: &Hooks,
    block: usize,
    total: usize,
    seconds: u64,
    calls: bool,
) -> Result<Vec<f64>, String> {
    if !calls {
        if let Some(start) = hooks.background {
            start();
        }
    }
    let start = rss_mib();
    let hwm = measure::reset_hwm();
    let ptrs = fill(a, block, total / block)?;
    let peak = peak_mib(hwm);
    check_and_free(a, &ptrs, block)?;
    drop(ptrs);
    let after_free = rss_mib();

    let small = layout(64);
    let mut smalls: Vec<*mut u8> = Vec::with_capacity(seconds as usize * 1_100 + 64);
    let marks_due = (seconds * MARKS_PER_SECOND) as usize;
    let mut marks = Vec::with_capacity(marks_due);
    let t0 = Instant::now();
    while marks.len() < marks_due {
        if calls {
            let p = get(a, small, false)?;
            // SAFETY: a live, 8-byte-aligned 64-byte block.
            unsafe { p.cast::<u64>().write_volatile(tag(smalls.len(), 0)) };
            smalls.push(p);
        }
        if t0.elapsed() >= Duration::from_secs_f64(mark_secs(marks.len() as u64 + 1)) {
            marks.push(rss_mib());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for (i, &p) in smalls.iter().enumerate() {
        // SAFETY: each pointer is a live 64-byte block written above.
        if unsafe { p.cast::<u64>().read_volatile() } != tag(i, 0) {
            return Err(format!("small block {i} was overwritten (blocks overlap?)"));
        }
    }
    for &p in &smalls {
        // SAFETY: each came from `a.alloc(small)` and is freed once.
        unsafe { a.dealloc(p, small) };
    }
    let last = marks.last().copied().unwrap_or(f64::NAN);
    let mut out = vec![start, peak, after_free];
    out.extend(&marks);
    out.push(last / peak);
    Ok(out)
}
