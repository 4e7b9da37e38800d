//! What a bench run produced, and the figures the targets read from it: for
//! the main job, every allocator's samples and peak RSS on each row
//! ([`RowResult`]); for the memory bench, every allocator's child runs of
//! each scenario ([`ScenarioResult`]).

use crate::api::Api;
use crate::child::ChildRuns;
use crate::judge::Figures;
use crate::measure::{median, Metric, Sample};
use crate::memory::Spec;
use crate::rss::PeakRss;
use crate::suite::Row;
use crate::targets::{PEAK_RSS, TIME};

/// All runs of one allocator on one row.
#[derive(Clone, Debug)]
pub struct AllocRuns {
    /// Allocator name, e.g. "glibc".
    pub alloc: &'static str,
    /// One sample per repetition, in the order they ran.
    pub samples: Vec<Sample>,
}

/// Summary numbers of one allocator on one row.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Median of the ranking metric, ns/op.
    pub median: f64,
    /// Minimum of the ranking metric, ns/op.
    pub min: f64,
    /// Median wall ns/op.
    pub wall: f64,
    /// Median CPU ns/op.
    pub cpu: f64,
    /// Median minor faults per op.
    pub faults: f64,
    /// Largest RSS growth of any run, KiB.
    pub rss_delta_kib: i64,
    /// Number of runs.
    pub runs: usize,
    /// Some run stopped at its time budget.
    pub truncated: bool,
}

impl AllocRuns {
    /// Summarises the samples, ranking by `metric`.
    pub fn stats(&self, metric: Metric) -> Stats {
        let col = |f: fn(&Sample) -> f64| self.samples.iter().map(f).collect::<Vec<_>>();
        let primary: Vec<f64> = self
            .samples
            .iter()
            .map(|s| s.metric_per_op(metric))
            .collect();
        Stats {
            median: median(&primary),
            min: primary.iter().copied().fold(f64::INFINITY, f64::min),
            wall: median(&col(Sample::wall_per_op)),
            cpu: median(&col(Sample::cpu_per_op)),
            faults: median(&col(Sample::faults_per_op)),
            rss_delta_kib: self
                .samples
                .iter()
                .map(|s| s.rss_delta_kib)
                .max()
                .unwrap_or(0),
            runs: self.samples.len(),
            truncated: self.samples.iter().any(Sample::truncated),
        }
    }
}

/// One row's results on every allocator, called through one interface.
#[derive(Clone, Debug)]
pub struct RowResult {
    /// The row that ran.
    pub row: Row,
    /// How the workload called the allocators.
    pub api: Api,
    /// Per-allocator runs, in the fixed allocator order.
    pub allocs: Vec<AllocRuns>,
    /// Per-allocator peak RSS from child runs (empty: not measured).
    pub rss: Vec<PeakRss>,
}

/// How the subject allocator compares on one row.
#[derive(Clone, Copy, Debug)]
pub struct Ratio<'a> {
    /// Subject's median ns/op.
    pub subject: f64,
    /// Name and median of the fastest other allocator.
    pub best_peer: Option<(&'a str, f64)>,
    /// subject / best peer.
    pub vs_best: f64,
    /// subject / baseline.
    pub vs_baseline: f64,
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
    /// `name`'s summary numbers, if it ran.
    pub fn stats_of(&self, name: &str) -> Option<Stats> {
        let r = self.allocs.iter().find(|r| r.alloc == name)?;
        Some(r.stats(self.row.metric))
    }

    /// The median of `subject` over the best median among the other
    /// allocators, and over `baseline`'s.
    pub fn ratio(&self, subject: &str, baseline: &str) -> Ratio<'_> {
        let s = self.stats_of(subject).map_or(f64::NAN, |s| s.median);
        let best_peer = self
            .allocs
            .iter()
            .filter(|r| r.alloc != subject)
            .map(|r| (r.alloc, r.stats(self.row.metric).median))
            .filter(|(_, v)| v.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let base = self.stats_of(baseline).map_or(f64::NAN, |s| s.median);
        Ratio {
            subject: s,
            best_peer,
            vs_best: best_peer.map_or(f64::NAN, |(_, b)| s / b),
            vs_baseline: s / base,
        }
    }

    /// `name`'s peak-RSS child runs, if measured.
    pub fn peak_rss_of(&self, name: &str) -> Option<&PeakRss> {
        self.rss.iter().find(|p| p.alloc() == name)
    }

    /// The subject's peak RSS over the lowest peer's; `None` when peak RSS
    /// was not measured on this row, or the subject's child runs failed.
    pub fn rss_ratio(&self, subject: &str) -> Option<RssRatio<'_>> {
        let s = self.peak_rss_of(subject)?.peak_kib().ok()?;
        let lowest_peer = self
            .rss
            .iter()
            .filter(|r| r.alloc() != subject)
            .filter_map(|r| Some((r.alloc(), r.peak_kib().ok()?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(RssRatio {
            subject: s,
            lowest_peer,
            ratio: s / lowest_peer.1,
        })
    }
}

/// A row offers its ranking time and, where measured, peak RSS.
impl Figures for RowResult {
    fn id(&self) -> &'static str {
        self.row.id
    }

    fn allocs(&self) -> Vec<&'static str> {
        self.allocs.iter().map(|a| a.alloc).collect()
    }

    fn columns(&self) -> Vec<String> {
        let mut c = vec![TIME.to_string()];
        if !self.rss.is_empty() {
            c.push(PEAK_RSS.to_string());
        }
        c
    }

    fn value(&self, alloc: &str, column: &str) -> Result<f64, String> {
        let missing = || format!("{alloc} has no {column}");
        match column {
            TIME => self.stats_of(alloc).map(|s| s.median).ok_or_else(missing),
            PEAK_RSS => self.peak_rss_of(alloc).ok_or_else(missing)?.peak_kib(),
            _ => Err(missing()),
        }
    }
}

/// One scenario's results on every allocator it ran on.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// The scenario.
    pub spec: Spec,
    /// One entry per allocator, in run order.
    pub outcomes: Vec<ChildRuns>,
}

impl ScenarioResult {
    /// The median of column `col` for allocator `alloc`.
    pub fn value(&self, alloc: &str, col: &str) -> Result<f64, String> {
        let c = self
            .spec
            .cols()
            .iter()
            .position(|c| c.name == col)
            .ok_or_else(|| format!("no column {col:?}"))?;
        let o = self
            .outcomes
            .iter()
            .find(|o| o.alloc == alloc)
            .ok_or_else(|| format!("{alloc} did not run"))?;
        o.median(c)
    }
}

/// A scenario offers its columns.
impl Figures for ScenarioResult {
    fn id(&self) -> &'static str {
        self.spec.id
    }

    fn allocs(&self) -> Vec<&'static str> {
        self.outcomes.iter().map(|o| o.alloc).collect()
    }

    fn columns(&self) -> Vec<String> {
        self.spec.cols().into_iter().map(|c| c.name).collect()
    }

    fn value(&self, alloc: &str, column: &str) -> Result<f64, String> {
        ScenarioResult::value(self, alloc, column)
    }
}

/// A row result with one sample per allocator at the given ns/op, and peak
/// RSS (KiB) for the allocators in `peaks`.
#[cfg(test)]
pub(crate) fn fake_result(
    row: Row,
    ns: &[(&'static str, u64)],
    peaks: &[(&'static str, f64)],
) -> RowResult {
    RowResult {
        row,
        api: Api::Sized,
        allocs: ns
            .iter()
            .map(|&(alloc, n)| AllocRuns {
                alloc,
                samples: vec![fake_sample(n, false)],
            })
            .collect(),
        rss: peaks
            .iter()
            .map(|&(alloc, kib)| fake_peak(alloc, kib, kib / 2.0))
            .collect(),
    }
}

/// One sample of 10 ops at `ns_per_op`, cut short when `truncated`.
#[cfg(test)]
pub(crate) fn fake_sample(ns_per_op: u64, truncated: bool) -> Sample {
    Sample {
        ops: 10,
        planned: if truncated { 20 } else { 10 },
        wall_ns: ns_per_op * 10,
        cpu_ns: ns_per_op * 10,
        minflt: 5,
        rss_delta_kib: 2048,
    }
}

/// One child run's peak RSS of `peak` KiB, `growth` KiB of it the workload's.
#[cfg(test)]
pub(crate) fn fake_peak(alloc: &'static str, peak: f64, growth: f64) -> PeakRss {
    PeakRss(ChildRuns {
        alloc,
        runs: vec![Ok(vec![peak, growth, 1.0, 0.0])],
    })
}
