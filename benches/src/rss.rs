//! Peak RSS per allocator: a row of the suite run once per allocator in a
//! forked child of its own ([`crate::child`]).
//!
//! In the main job all allocators share one process, so its RSS numbers mix
//! them up. For the rows where memory use matters (`Row::peak_rss`), each
//! allocator also runs the row alone in a child forked from the still
//! pristine parent (before any timed row has touched an allocator), and the
//! child reports the kernel's high-water mark: VmHWM, reset to the current
//! RSS (`clear_refs` 5) when the workload starts, so it is the process's peak
//! while the workload ran, inherited pages included.

use std::time::Duration;

use crate::child::{run_in_child, ChildResult};
use crate::measure::{hwm_kib, median, Deadline, Sample};
use crate::report::RowResult;
use crate::suite::Row;

/// Columns of a child's result.
const PEAK: usize = 0;
const GROWTH: usize = 1;
const NS_PER_OP: usize = 2;

/// The child runs of one allocator on one row.
#[derive(Clone, Debug)]
pub struct PeakRss {
    /// Allocator name.
    pub alloc: &'static str,
    /// One result per child run: peak KiB, growth KiB, ns/op, truncated.
    pub runs: Vec<ChildResult>,
}

impl PeakRss {
    fn col(&self, c: usize) -> Result<f64, String> {
        let vals: Vec<f64> = self
            .runs
            .iter()
            .map(|r| r.as_ref().map(|v| v[c]).map_err(Clone::clone))
            .collect::<Result<_, _>>()?;
        if vals.is_empty() {
            return Err("no child run".into());
        }
        Ok(median(&vals))
    }

    /// Median peak RSS (VmHWM) in KiB.
    pub fn peak_kib(&self) -> Result<f64, String> {
        self.col(PEAK)
    }

    /// Median growth of RSS during the workload (peak minus RSS at its
    /// start) in KiB: the part the allocator is responsible for.
    pub fn growth_kib(&self) -> Result<f64, String> {
        self.col(GROWTH)
    }

    /// Median wall ns/op of the child runs (for comparison with the main
    /// job's figure; not used for ranking).
    pub fn ns_per_op(&self) -> Result<f64, String> {
        self.col(NS_PER_OP)
    }
}

/// Runs `row` with `run` (one allocator) in `reps` forked children.
///
/// Call it only while the process has a single thread and has not used the
/// allocator behind `run` (see [`crate::child`]).
pub fn measure(
    row: &Row,
    alloc: &'static str,
    run: &dyn Fn(&Row, Deadline) -> Sample,
    reps: usize,
) -> PeakRss {
    let timeout = row.budget + Duration::from_secs(60);
    let runs = (0..reps)
        .map(|_| {
            run_in_child(timeout, || {
                let s = run(row, Deadline::after(row.budget));
                let peak = hwm_kib().ok_or("VmHWM unavailable (no /proc)")?;
                let truncated = if s.truncated() { 1.0 } else { 0.0 };
                Ok(vec![
                    peak as f64,
                    s.rss_delta_kib as f64,
                    s.wall_per_op(),
                    truncated,
                ])
            })
        })
        .collect();
    PeakRss { alloc, runs }
}

/// How the subject's peak RSS compares with the lowest other allocator's.
#[derive(Clone, Copy, Debug)]
pub struct RssRatio<'a> {
    /// Subject's median peak, KiB.
    pub subject: f64,
    /// The other allocator with the lowest peak, and that peak.
    pub lowest_peer: (&'a str, f64),
    /// subject / lowest peer.
    pub ratio: f64,
}

impl RowResult {
    /// The subject's peak RSS over the lowest peer's; `None` when peak RSS
    /// was not measured on this row, or the subject's child runs failed.
    pub fn rss_ratio(&self, subject: &str) -> Option<RssRatio<'_>> {
        let find = |name: &str| self.rss.iter().find(|r| r.alloc == name);
        let s = find(subject)?.peak_kib().ok()?;
        let lowest_peer = self
            .rss
            .iter()
            .filter(|r| r.alloc != subject)
            .filter_map(|r| Some((r.alloc, r.peak_kib().ok()?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(RssRatio {
            subject: s,
            lowest_peer,
            ratio: s / lowest_peer.1,
        })
    }
}

/// KiB as "12.3 MiB".
pub fn fmt_mib(kib: f64) -> String {
    if kib.is_finite() {
        format!("{:.1} MiB", kib / 1024.0)
    } else {
        "-".into()
    }
}
