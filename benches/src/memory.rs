//! Memory-behaviour scenarios T1..T8, generic over the allocator under test.
//!
//! Each scenario is meant to run in a child process of its own (see
//! [`crate::child`]), so the RSS, page-fault and allocator-state numbers it
//! reports are that allocator's alone. A scenario returns a few numbers, in
//! the order of [`Spec::cols`], or an error; every scenario checks its own
//! results (zeroed memory reads zero where a broken allocator would leave old
//! data, patterns survive, blocks do not overlap) and fails instead of
//! reporting a time when a check fails.
//!
//! Checks never change what is measured: where a check runs inside a timed
//! loop (T4, T8) its time and page faults are measured and subtracted; where
//! even a read would change the allocator's behaviour (T1, T2: reading an
//! untouched page maps the zero page, which looks resident), the checks run
//! after the timed loop, on the state it left.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::child::ChildResult;
use crate::measure;
use crate::units::bytes;

mod grow;
mod plan;
mod release;
mod reuse;
mod zeroed;

pub use plan::specs;

/// The page size the scenarios touch memory at (the kernel's).
pub const PAGE: usize = 4096;

/// What a scenario may ask of an allocator beyond `GlobalAlloc`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// Gives free memory back to the OS now (`malloc_trim(0)`,
    /// `strata::release_free_memory`...). `None`: the allocator has none.
    pub release: Option<fn()>,
    /// Makes a range of a live block resident now (`strata::populate`).
    pub populate: Option<unsafe fn(NonNull<u8>, usize) -> bool>,
    /// Starts the allocator's own thread that gives free memory back while
    /// the program makes no call (`strata::start_background_release`,
    /// jemalloc's `background_thread`). `None`: the allocator has none.
    pub background: Option<fn()>,
}

/// One scenario with its parameters.
#[derive(Clone, Debug)]
pub enum Kind {
    /// T1: alloc_zeroed + dealloc of each size, untouched.
    ZeroedFlat {
        sizes: Vec<usize>,
        iters: u64,
        budget: Duration,
    },
    /// T2: alloc_zeroed(size) + dealloc in a loop, untouched; RSS growth.
    CallocLoop {
        size: usize,
        iters: u64,
        budget: Duration,
    },
    /// T3: alloc `block`, copy a 1920x1080x4 frame in, dealloc.
    FrameLoop {
        block: usize,
        cycles: u64,
        budget: Duration,
    },
    /// T4: alloc_zeroed(size), write one byte in a different page each
    /// cycle, dealloc.
    DirtyCalloc {
        size: usize,
        cycles: u64,
        budget: Duration,
    },
    /// T5: `total` bytes as `block`-byte blocks, every page written, all
    /// freed, then the allocator's release.
    Release { block: usize, total: usize },
    /// T6: as T5 with `block`, then `seconds` with no release call: one
    /// 64-byte allocation per millisecond (`calls`), or no call at all with
    /// the allocator's background thread on (when it has one).
    Decay {
        block: usize,
        total: usize,
        seconds: u64,
        calls: bool,
    },
    /// T7: alloc, populate (when the allocator can), write a byte per page.
    Populate { size: usize },
    /// T8: alloc `from` bytes with a pattern, realloc doubling to `to`.
    ReallocDoubling { from: usize, to: usize },
}

/// A column of a scenario's result: name (with unit) and decimals shown.
#[derive(Clone, Debug)]
pub struct Col {
    /// Header, e.g. "µs/op".
    pub name: String,
    /// Decimals in the table.
    pub prec: usize,
}

fn col(name: impl Into<String>, prec: usize) -> Col {
    Col {
        name: name.into(),
        prec,
    }
}

/// A scenario as the bench runs it.
#[derive(Clone, Debug)]
pub struct Spec {
    /// "T1".."T8".
    pub id: &'static str,
    /// Short name, e.g. "alloc_zeroed flat".
    pub name: &'static str,
    /// One line with the counts used.
    pub title: String,
    /// Child runs per allocator (medians are reported).
    pub reps: usize,
    /// A child running longer than this is killed and reported.
    pub timeout: Duration,
    /// The scenario.
    pub kind: Kind,
}

impl Spec {
    /// The columns of this scenario's result, in the order it returns them.
    pub fn cols(&self) -> Vec<Col> {
        match &self.kind {
            Kind::ZeroedFlat { sizes, .. } => {
                let mut c: Vec<Col> = sizes
                    .iter()
                    .map(|&s| col(format!("{} µs/op", bytes(s)), 2))
                    .collect();
                c.push(col("iters done (min)", 0));
                c
            }
            Kind::CallocLoop { .. } => vec![
                col("µs/op", 2),
                col("RSS start MiB", 1),
                col("RSS end MiB", 1),
                col("RSS growth MiB", 1),
                col("peak growth MiB", 1),
                col("iters done", 0),
            ],
            Kind::FrameLoop { .. } => vec![
                col("CPU ms total", 1),
                col("CPU µs/cycle", 1),
                col("wall µs/cycle", 1),
                col("faults/cycle", 3),
                col("after 1st", 3),
                col("cycles done", 0),
            ],
            Kind::DirtyCalloc { .. } => vec![
                col("µs/cycle", 2),
                col("faults/cycle", 3),
                col("CPU µs/cycle", 2),
                col("cycles done", 0),
            ],
            Kind::Release { .. } => vec![
                col("start MiB", 1),
                col("peak MiB", 1),
                col("after free MiB", 1),
                col("after release MiB", 1),
                col("release ms", 2),
            ],
            Kind::Decay { seconds, .. } => {
                let mut c = vec![
                    col("start MiB", 1),
                    col("peak MiB", 1),
                    col("after free MiB", 1),
                ];
                c.extend(
                    (1..=*seconds * release::MARKS_PER_SECOND)
                        .map(|m| col(format!("@{}s MiB", release::mark_secs(m)), 1)),
                );
                c.push(col("final/peak", 3));
                c
            }
            Kind::Populate { .. } => vec![
                col("populate ms", 2),
                col("write ms", 2),
                col("faults in writes", 0),
                col("pages", 0),
                col("faults/page %", 3),
            ],
            Kind::ReallocDoubling { .. } => vec![
                col("total ms", 1),
                col("realloc ms", 2),
                col("reallocs", 0),
                col("moved", 0),
            ],
        }
    }

    /// Operations planned per run for scenarios that can stop at a time
    /// budget (their last column is the count done).
    pub fn planned(&self) -> Option<u64> {
        match self.kind {
            Kind::ZeroedFlat { iters, .. } | Kind::CallocLoop { iters, .. } => Some(iters),
            Kind::FrameLoop { cycles, .. } | Kind::DirtyCalloc { cycles, .. } => Some(cycles),
            _ => None,
        }
    }

    /// Runs the scenario once on `a` (in this process: call it in a child).
    pub fn run<A: GlobalAlloc + ?Sized>(&self, a: &A, hooks: &Hooks) -> ChildResult {
        let r = match &self.kind {
            Kind::ZeroedFlat {
                sizes,
                iters,
                budget,
            } => zeroed::zeroed_flat(a, sizes, *iters, *budget),
            Kind::CallocLoop {
                size,
                iters,
                budget,
            } => zeroed::calloc_loop(a, *size, *iters, *budget),
            Kind::FrameLoop {
                block,
                cycles,
                budget,
            } => reuse::frame_loop(a, *block, *cycles, *budget),
            Kind::DirtyCalloc {
                size,
                cycles,
                budget,
            } => reuse::dirty_calloc(a, *size, *cycles, *budget),
            Kind::Release { block, total } => release::release_blocks(a, hooks, *block, *total),
            Kind::Decay {
                block,
                total,
                seconds,
                calls,
            } => release::decay(a, hooks, *block, *total, *seconds, *calls),
            Kind::Populate { size } => grow::populate(a, hooks, *size),
            Kind::ReallocDoubling { from, to } => grow::realloc_doubling(a, *from, *to),
        };
        r.map_err(|e| format!("{}: {e}", self.id))
    }
}

/// The layout of a `size`-byte block (8-byte aligned, like malloc's).
pub(crate) fn layout(size: usize) -> Layout {
    crate::workloads::layout(size)
}

/// `alloc` or `alloc_zeroed`, checking for null and alignment.
pub(crate) fn get<A: GlobalAlloc + ?Sized>(
    a: &A,
    l: Layout,
    zeroed: bool,
) -> Result<*mut u8, String> {
    // SAFETY: every scenario layout has a non-zero size.
    let p = unsafe {
        if zeroed {
            a.alloc_zeroed(l)
        } else {
            a.alloc(l)
        }
    };
    if p.is_null() {
        return Err(format!("allocation of {} returned null", bytes(l.size())));
    }
    if p as usize % l.align() != 0 {
        return Err(format!("{p:p} is not aligned to {}", l.align()));
    }
    Ok(std::hint::black_box(p))
}

/// Reads the byte at `p + off`.
///
/// # Safety
/// `p` must point to a live block of more than `off` bytes.
#[inline]
pub(crate) unsafe fn peek(p: *const u8, off: usize) -> u8 {
    // SAFETY: the caller guarantees `off` is inside the block at `p`.
    unsafe { p.add(off).read_volatile() }
}

/// Writes the byte at `p + off`.
///
/// # Safety
/// `p` must point to a live block of more than `off` bytes.
#[inline]
pub(crate) unsafe fn poke(p: *mut u8, off: usize, v: u8) {
    // SAFETY: the caller guarantees `off` is inside the block at `p`.
    unsafe { p.add(off).write_volatile(v) }
}

/// Checks that the bytes at `offs` read zero.
///
/// # Safety
/// `p` must point to a live block longer than every offset.
pub(crate) unsafe fn check_zero(p: *const u8, offs: &[usize], what: &str) -> Result<(), String> {
    for &off in offs {
        // SAFETY: the caller guarantees every offset is inside the block.
        let v = unsafe { peek(p, off) };
        if v != 0 {
            return Err(format!("{what}: byte {off} reads {v:#04x}, not 0"));
        }
    }
    Ok(())
}

/// 64 offsets spread over a block of `size` bytes (one per 1/64th, at varying
/// places within the page), plus the first and last byte.
pub(crate) fn probe_offsets(size: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..64)
        .map(|k| (k * (size / 64) + (k * 1031) % PAGE).min(size - 1))
        .collect();
    v.extend([0, size - 1]);
    v
}

/// Time and page faults spent in checks, to subtract from a measurement.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Excluded {
    /// Wall nanoseconds.
    pub ns: u64,
    /// Minor faults (only counted when asked for).
    pub faults: u64,
}

impl Excluded {
    /// Runs `f`, adding its wall time (and, with `faults`, its minor faults)
    /// to the excluded totals.
    pub fn run<R>(&mut self, faults: bool, f: impl FnOnce() -> R) -> R {
        let f0 = if faults {
            measure::process_minor_faults()
        } else {
            0
        };
        let t = Instant::now();
        let r = f();
        self.ns += t.elapsed().as_nanos() as u64;
        if faults {
            self.faults += measure::process_minor_faults().saturating_sub(f0);
        }
        r
    }
}

/// RSS in MiB (NaN if /proc is unavailable).
pub(crate) fn rss_mib() -> f64 {
    measure::rss_kib().map_or(f64::NAN, |k| k as f64 / 1024.0)
}

#[cfg(test)]
mod tests;
