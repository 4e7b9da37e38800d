//! Timing, resource usage (getrusage) and resident-set measurement.
//!
//! A [`Meter`] brackets the timed part of one workload run and turns it into
//! a [`Sample`]: wall time, CPU time (user + sys, whole process), minor page
//! faults (whole process) and the growth of the process's resident set.
//!
//! All allocators under test share one process, so the RSS numbers are the
//! *growth* of the process's RSS during one run (peak minus start), not a
//! per-allocator peak RSS: memory an allocator retained from an earlier run
//! is already resident and does not show up again.

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// Which number a workload is ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Wall-clock nanoseconds per operation.
    Wall,
    /// CPU (user + sys) nanoseconds per operation, whole process.
    Cpu,
}

impl Metric {
    /// Short label used in table headers and the CSV.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Wall => "wall",
            Metric::Cpu => "cpu",
        }
    }
}

/// The result of one timed run of one workload on one allocator.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Operations completed.
    pub ops: u64,
    /// Operations planned; fewer were done if the run hit its deadline.
    pub planned: u64,
    /// Wall-clock time of the timed section.
    pub wall_ns: u64,
    /// User + system CPU time of the whole process during the timed section.
    pub cpu_ns: u64,
    /// Minor page faults of the whole process during the timed section.
    pub minflt: u64,
    /// Peak RSS during the run minus RSS at its start, in KiB.
    pub rss_delta_kib: i64,
}

impl Sample {
    /// True when the run stopped at its deadline before doing all its operations.
    pub fn truncated(&self) -> bool {
        self.ops < self.planned
    }

    fn per_op(&self, v: u64) -> f64 {
        v as f64 / self.ops.max(1) as f64
    }

    /// Wall nanoseconds per operation.
    pub fn wall_per_op(&self) -> f64 {
        self.per_op(self.wall_ns)
    }

    /// CPU nanoseconds per operation.
    pub fn cpu_per_op(&self) -> f64 {
        self.per_op(self.cpu_ns)
    }

    /// Minor page faults per operation.
    pub fn faults_per_op(&self) -> f64 {
        self.per_op(self.minflt)
    }

    /// Nanoseconds per operation for the given metric.
    pub fn metric_per_op(&self, m: Metric) -> f64 {
        match m {
            Metric::Wall => self.wall_per_op(),
            Metric::Cpu => self.cpu_per_op(),
        }
    }
}

/// A point in time after which a workload stops early (so that a pathologically
/// slow allocator cannot stall the whole run). Cheap enough to poll every few
/// hundred operations.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// A deadline that never expires.
    pub fn never() -> Self {
        Deadline(None)
    }

    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline(Some(Instant::now() + budget))
    }

    /// True once the deadline has passed.
    #[inline]
    pub fn expired(&self) -> bool {
        match self.0 {
            Some(t) => Instant::now() >= t,
            None => false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Usage {
    minflt: u64,
    cpu_ns: u64,
}

fn timeval_ns(tv: libc::timeval) -> u64 {
    (tv.tv_sec as u64) * 1_000_000_000 + (tv.tv_usec as u64) * 1_000
}

fn usage() -> Usage {
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a valid, writable `rusage`; getrusage fills it in and
    // only reads the RUSAGE_SELF selector.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return Usage {
            minflt: 0,
            cpu_ns: 0,
        };
    }
    // SAFETY: getrusage returned 0, so it initialised the struct (and it was
    // zeroed beforehand anyway, which is a valid bit pattern for rusage).
    let ru = unsafe { ru.assume_init() };
    Usage {
        minflt: ru.ru_minflt as u64,
        cpu_ns: timeval_ns(ru.ru_utime) + timeval_ns(ru.ru_stime),
    }
}

/// CPU time (user + sys) consumed by the whole process so far, in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    usage().cpu_ns
}

/// Minor page faults taken by the whole process so far.
pub fn process_minor_faults() -> u64 {
    usage().minflt
}

fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Current resident set size (VmRSS) in KiB, if /proc is available.
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS")
}

/// Peak resident set size (VmHWM) in KiB since start or the last reset.
pub fn hwm_kib() -> Option<u64> {
    status_kib("VmHWM")
}

/// Every mapping of this process with its resident KiB, from
/// `/proc/self/smaps`, named `range path` (`range [anon]` when anonymous);
/// empty if there is no smaps (for the probes in `examples/`).
pub fn mappings_kib() -> Vec<(String, u64)> {
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && first.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) {
            let rest: Vec<&str> = f.collect();
            name = format!("{first} {}", rest.get(4).copied().unwrap_or("[anon]"));
        } else if first == "Rss:" {
            let kib = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            out.push((name.clone(), kib));
        }
    }
    out
}

/// Resets the kernel's RSS high-water mark to the current RSS
/// (`echo 5 > /proc/self/clear_refs`, Linux >= 4.0). Returns false if unsupported.
pub fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Brackets the timed section of one run. See the module docs.
#[derive(Debug)]
pub struct Meter {
    start: Instant,
    usage: Usage,
    rss_before: u64,
    /// The kernel tracks the peak for us (HWM was reset at start).
    hwm_valid: bool,
    /// Highest RSS seen by [`Meter::probe`] when the HWM is not available.
    probed_peak: u64,
}

impl Meter {
    /// Starts measuring. Call right before the timed section.
    pub fn start() -> Self {
        let hwm_valid = reset_hwm();
        let rss_before = rss_kib().unwrap_or(0);
        let usage = usage();
        Meter {
            start: Instant::now(),
            usage,
            rss_before,
            hwm_valid,
            probed_peak: rss_before,
        }
    }

    /// Samples RSS at a point of (likely) peak memory use. A no-op when the
    /// kernel's high-water mark already tracks the exact peak.
    pub fn probe(&mut self) {
        if !self.hwm_valid {
            if let Some(r) = rss_kib() {
                self.probed_peak = self.probed_peak.max(r);
            }
        }
    }

    /// Stops measuring and returns the sample for `ops` completed operations
    /// out of `planned`.
    pub fn finish(mut self, ops: u64, planned: u64) -> Sample {
        let wall = self.start.elapsed();
        let end = usage();
        self.probe();
        let rss_end = rss_kib().unwrap_or(0);
        let mut peak = self.probed_peak.max(rss_end);
        if self.hwm_valid {
            peak = peak.max(hwm_kib().unwrap_or(0));
        }
        Sample {
            ops,
            planned,
            wall_ns: u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX),
            cpu_ns: end.cpu_ns.saturating_sub(self.usage.cpu_ns),
            minflt: end.minflt.saturating_sub(self.usage.minflt),
            rss_delta_kib: peak as i64 - self.rss_before as i64,
        }
    }
}

/// The order in which `reps` repetitions over `n` allocators run:
/// `(repetition, allocator)` pairs, every allocator once per repetition,
/// each repetition starting with the next one, so that slow drifts in
/// machine load hit every allocator alike.
pub fn interleaved(n: usize, reps: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..reps).flat_map(move |rep| (0..n).map(move |k| (rep, (k + rep) % n)))
}

/// Median of a list of numbers (mean of the two middle ones for even counts);
/// NaN for an empty list.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn interleaved_rotates_the_start() {
        let order: Vec<(usize, usize)> = interleaved(3, 2).collect();
        assert_eq!(order, [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 0)]);
    }

    #[test]
    fn meter_counts_faults() {
        let m = Meter::start();
        let v = vec![1u8; 8 << 20];
        std::hint::black_box(&v);
        let s = m.finish(1, 1);
        drop(v);
        assert!(!s.truncated());
        assert!(s.minflt > 0);
    }
}
