//! Peak RSS per allocator: a row of the suite run by each allocator alone in
//! a forked child ([`crate::child::run_interleaved`]).
//!
//! In the main job all allocators share one process, so its RSS numbers mix
//! them up. For the rows where memory use matters (`Row::peak_rss`), each
//! allocator also runs the row alone in a child forked from the still
//! pristine parent (before any timed row has touched an allocator), and the
//! child reports the kernel's high-water mark: VmHWM, reset to the current
//! RSS (`clear_refs` 5) when the workload starts, so it is the process's peak
//! while the workload ran, inherited pages included.

use std::time::Duration;

use crate::child::{run_interleaved, ChildResult, ChildRuns};
use crate::measure::{hwm_kib, Deadline};
use crate::suite::{Row, Runner};

/// Columns of a child's result.
const PEAK: usize = 0;
const GROWTH: usize = 1;
const NS_PER_OP: usize = 2;

/// The child runs of one allocator on one row: each run's peak KiB, growth
/// KiB, ns/op and whether it was truncated.
#[derive(Clone, Debug)]
pub struct PeakRss(pub ChildRuns);

impl PeakRss {
    /// The allocator.
    pub fn alloc(&self) -> &'static str {
        self.0.alloc
    }

    /// Median peak RSS (VmHWM) in KiB.
    pub fn peak_kib(&self) -> Result<f64, String> {
        self.0.median(PEAK)
    }

    /// Median growth of RSS during the workload (peak minus RSS at its
    /// start) in KiB: the part the allocator is responsible for.
    pub fn growth_kib(&self) -> Result<f64, String> {
        self.0.median(GROWTH)
    }

    /// Median wall ns/op of the child runs (for comparison with the main
    /// job's figure; not used for ranking).
    pub fn ns_per_op(&self) -> Result<f64, String> {
        self.0.median(NS_PER_OP)
    }
}

/// One run of `row` with `run` (one allocator), in the child: its peak RSS.
fn child_run(row: &Row, run: &Runner) -> ChildResult {
    let s = run(row, Deadline::after(row.budget));
    let peak = hwm_kib().ok_or("VmHWM unavailable (no /proc)")?;
    let truncated = if s.truncated() { 1.0 } else { 0.0 };
    Ok(vec![
        peak as f64,
        s.rss_delta_kib as f64,
        s.wall_per_op(),
        truncated,
    ])
}

/// Runs `row` on every allocator of `allocs` (name, one run of a row on
/// it), `reps` times each, each run in a forked child; reports failed runs
/// on stderr.
///
/// Call it only while the process has a single thread and has not used the
/// allocators behind `allocs` (see [`crate::child`]).
pub fn measure(row: &Row, allocs: &[(&'static str, &Runner)], reps: usize) -> Vec<PeakRss> {
    let names: Vec<&'static str> = allocs.iter().map(|a| a.0).collect();
    let timeout = row.budget + Duration::from_secs(60);
    let run = |i: usize| child_run(row, allocs[i].1);
    let failed = |i: usize, _, _, r: &ChildResult| {
        if let Err(e) = r {
            eprintln!("  row {} on {} in a child FAILED: {e}", row.id, names[i]);
        }
    };
    run_interleaved(&names, reps, timeout, run, failed)
        .into_iter()
        .map(PeakRss)
        .collect()
}
