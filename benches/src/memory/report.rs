//! Tables and CSV for the memory scenarios: one table per scenario with a
//! row per allocator (medians over that allocator's child runs,
//! [`ChildRuns`]).

use std::fmt::Write as _;

use super::{Kind, Spec};
use crate::child::ChildRuns;

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

impl Spec {
    /// Operations planned per run for scenarios that can stop at a time
    /// budget (their last column is the count done).
    pub fn planned(&self) -> Option<u64> {
        match self.kind {
            Kind::ZeroedFlat { iters, .. } | Kind::CallocLoop { iters, .. } => Some(iters),
            Kind::FrameLoop { cycles, .. } | Kind::DirtyCalloc { cycles, .. } => Some(cycles),
            _ => None,
        }
    }
}

/// `v` with `prec` decimals; "n/a" for NaN.
pub fn fmt_num(v: f64, prec: usize) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.prec$}")
    }
}

/// The fixed-width table of one scenario.
pub fn table(r: &ScenarioResult) -> String {
    let cols = r.spec.cols();
    let mut out = String::new();
    let _ = writeln!(out, "[{}] {}: {}", r.spec.id, r.spec.name, r.spec.title);
    let w0 = r
        .outcomes
        .iter()
        .map(|o| o.alloc.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let widths: Vec<usize> = cols.iter().map(|c| c.name.chars().count().max(8)).collect();
    let _ = write!(out, "  {:<w0$}", "allocator");
    for (c, w) in cols.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", c.name);
    }
    let _ = writeln!(out, "  runs");
    let mut truncated = false;
    for o in &r.outcomes {
        let _ = write!(out, "  {:<w0$}", o.alloc);
        match o.medians() {
            Ok(m) => {
                for ((v, c), w) in m.iter().zip(&cols).zip(&widths) {
                    let _ = write!(out, "  {:>w$}", fmt_num(*v, c.prec));
                }
                let short = r
                    .spec
                    .planned()
                    .is_some_and(|p| m.last().is_some_and(|&d| d < p as f64));
                truncated |= short;
                let _ = writeln!(out, "  {:>3}{}", o.runs.len(), if short { "!" } else { "" });
            }
            Err(e) => {
                let _ = writeln!(out, "  FAILED: {e}");
            }
        }
    }
    if truncated {
        let _ = writeln!(
            out,
            "  ! = stopped at the time budget before all planned operations; figures cover the ones done"
        );
    }
    if r.spec.reps > 1 {
        let _ = writeln!(
            out,
            "  (medians of {} runs, each in a fresh child process)",
            r.spec.reps
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// All results as CSV: one line per (scenario, allocator, column).
pub fn to_csv(results: &[ScenarioResult], mode: &str) -> String {
    let mut out = String::from("mode,scenario,name,allocator,metric,median,min,max,runs,error\n");
    for r in results {
        let cols = r.spec.cols();
        for o in &r.outcomes {
            let m = o.medians();
            for (c, col) in cols.iter().enumerate() {
                let (med, err) = match &m {
                    Ok(v) => (format!("{}", v[c]), String::new()),
                    Err(e) => (String::new(), e.clone()),
                };
                let (lo, hi) = o.range(c);
                let f = [
                    mode.to_string(),
                    r.spec.id.to_string(),
                    csv_field(r.spec.name),
                    csv_field(o.alloc),
                    csv_field(&col.name),
                    med,
                    if lo.is_finite() {
                        lo.to_string()
                    } else {
                        String::new()
                    },
                    if hi.is_finite() {
                        hi.to_string()
                    } else {
                        String::new()
                    },
                    o.runs.len().to_string(),
                    csv_field(&err),
                ];
                out.push_str(&f.join(","));
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;

    #[test]
    fn medians_tables_and_csv() {
        let spec = super::super::specs(Mode::Full).remove(1); // T2
        let ok = |us: f64| Ok(vec![us, 10.0, 10.0, 0.0, 0.0, 10_000.0]);
        let r = ScenarioResult {
            spec,
            outcomes: vec![
                ChildRuns {
                    alloc: "strata",
                    runs: vec![ok(3.0), ok(1.0), ok(2.0)],
                },
                ChildRuns {
                    alloc: "glibc",
                    runs: vec![ok(4.0), Err("T2: broken".into())],
                },
            ],
        };
        assert_eq!(r.value("strata", "µs/op"), Ok(2.0));
        assert_eq!(r.outcomes[0].range(0), (1.0, 3.0));
        assert!(r.value("glibc", "µs/op").unwrap_err().contains("broken"));
        let t = table(&r);
        assert!(
            t.contains("FAILED: T2: broken") && t.contains("2.00"),
            "{t}"
        );
        let csv = to_csv(&[r], "full");
        assert_eq!(csv.lines().count(), 1 + 2 * 6);
        assert_eq!(fmt_num(f64::NAN, 2), "n/a");
    }
}
