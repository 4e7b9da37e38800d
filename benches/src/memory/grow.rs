//! T7 and T8: backing a fresh block up front (populate) and growing a huge
//! block in place (realloc doubling).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use std::time::Instant;

use super::{get, layout, peek, poke, Excluded, Hooks, PAGE};
use crate::measure;

/// T7: alloc `size` bytes (page-aligned), `hooks.populate` it when the
/// allocator has one (timed), then write one byte per 4 KiB page, counting
/// the minor faults of the writes. Returns populate ms (NaN without one),
/// write ms, faults during the writes, pages, faults per page in %.
pub(super) fn populate<A: GlobalAlloc + ?Sized>(
    a: &A,
    hooks: &Hooks,
    size: usize,
) -> Result<Vec<f64>, String> {
    let l = Layout::from_size_align(size, PAGE).map_err(|e| e.to_string())?;
    let p = get(a, l, false)?;
    let nn = NonNull::new(p).ok_or("null")?;
    let populate_ms = match hooks.populate {
        Some(populate) => {
            let t = Instant::now();
            // SAFETY: the range is exactly the live block `p`.
            let ok = unsafe { populate(nn, size) };
            if !ok {
                return Err("populate returned false".into());
            }
            t.elapsed().as_secs_f64() * 1e3
        }
        None => f64::NAN,
    };
    let pages = size / PAGE;
    let value = |k: usize| (k % 251) as u8 | 1;
    let f0 = measure::process_minor_faults();
    let t = Instant::now();
    for k in 0..pages {
        // SAFETY: `k * PAGE + k % 64 < size`, inside the live block.
        unsafe { poke(p, k * PAGE + k % 64, value(k)) };
    }
    let write_ms = t.elapsed().as_secs_f64() * 1e3;
    let faults = measure::process_minor_faults().saturating_sub(f0);
    for k in 0..pages {
        // SAFETY: as above.
        let v = unsafe { peek(p, k * PAGE + k % 64) };
        if v != value(k) {
            return Err(format!("page {k} reads {v}, wrote {}", value(k)));
        }
    }
    // SAFETY: `p` came from `a.alloc(l)`.
    unsafe { a.dealloc(p, l) };
    let pct = 100.0 * faults as f64 / pages as f64;
    Ok(vec![
        populate_ms,
        write_ms,
        faults as f64,
        pages as f64,
        pct,
    ])
}

/// The pattern word at index `i`.
fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_0F0F_F0F0
}

/// Writes the pattern into words `lo..hi` of the block at `p`.
///
/// # Safety
/// `p` must be a live, 8-byte-aligned block of at least `hi * 8` bytes.
unsafe fn fill(p: *mut u8, lo: usize, hi: usize) {
    // SAFETY: the caller guarantees the words are inside the live block; no
    // other reference to them exists while the slice lives.
    let words = unsafe { std::slice::from_raw_parts_mut(p.cast::<u64>().add(lo), hi - lo) };
    for (i, w) in words.iter_mut().enumerate() {
        *w = pattern(lo + i);
    }
}

/// Checks the pattern at every `stride`-th word of `0..hi`.
///
/// # Safety
/// As for [`fill`].
unsafe fn verify(p: *const u8, hi: usize, stride: usize) -> Result<(), String> {
    // SAFETY: the caller guarantees the words are inside the live block.
    let words = unsafe { std::slice::from_raw_parts(p.cast::<u64>(), hi) };
    match (0..hi).step_by(stride).find(|&i| words[i] != pattern(i)) {
        Some(i) => Err(format!("pattern lost at byte {} of {}", i * 8, hi * 8)),
        None => Ok(()),
    }
}

/// T8: alloc `from` bytes filled with a pattern, then realloc doubling up to
/// `to`, writing the pattern into the new half after each step. The old part
/// is sample-checked after every realloc (excluded from the time) and the
/// whole buffer at the end. Returns total ms (alloc, fills, reallocs),
/// ms in realloc calls, reallocs, reallocs that moved the block.
pub(super) fn realloc_doubling<A: GlobalAlloc + ?Sized>(
    a: &A,
    from: usize,
    to: usize,
) -> Result<Vec<f64>, String> {
    let mut ex = Excluded::default();
    let t0 = Instant::now();
    let mut size = from;
    let mut p = get(a, layout(size), false)?;
    // SAFETY: `p` is a live, 8-byte-aligned block of `size` bytes.
    unsafe { fill(p, 0, size / 8) };
    let (mut realloc_ns, mut steps, mut moved) = (0u64, 0u32, 0u32);
    while size * 2 <= to {
        let new = size * 2;
        let t = Instant::now();
        // SAFETY: `p` is live with `layout(size)`; `new` is a valid size.
        let q = unsafe { a.realloc(p, layout(size), new) };
        realloc_ns += t.elapsed().as_nanos() as u64;
        if q.is_null() {
            // SAFETY: a failed realloc leaves `p` live with its old layout.
            unsafe { a.dealloc(p, layout(size)) };
            return Err(format!("realloc to {new} bytes returned null"));
        }
        moved += u32::from(q != p);
        p = q;
        // SAFETY: the first `size` bytes of the new block are the old ones.
        ex.run(false, || unsafe { verify(p, size / 8, 4099) })?;
        // SAFETY: `p` is now a live block of `new` bytes.
        unsafe { fill(p, size / 8, new / 8) };
        size = new;
        steps += 1;
    }
    let total_ns = (t0.elapsed().as_nanos() as u64).saturating_sub(ex.ns);
    // SAFETY: `p` is a live block of `size` bytes, all written.
    unsafe { verify(p, size / 8, 1)? };
    // SAFETY: `p` came from `a` with `layout(size)` (after the reallocs).
    unsafe { a.dealloc(p, layout(size)) };
    Ok(vec![
        total_ns as f64 / 1e6,
        realloc_ns as f64 / 1e6,
        f64::from(steps),
        f64::from(moved),
    ])
}
