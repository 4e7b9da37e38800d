//! strata's memory-behaviour targets, checked against the scenario results,
//! with glibc's figure beside each.

use std::fmt::Write as _;

use super::report::ScenarioResult;
use super::Kind;
use crate::units::bytes;

/// The allocator the targets are about.
pub const SUBJECT: &str = "strata";
/// The allocator it is compared with.
pub const BASELINE: &str = "glibc";

/// One target's outcome.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Scenario id.
    pub id: &'static str,
    /// The target, as a sentence.
    pub target: String,
    /// Unit of the figures.
    pub unit: &'static str,
    /// strata's figure (or the error that prevented it).
    pub subject: Result<f64, String>,
    /// glibc's figure (NaN when glibc has none).
    pub baseline: Result<f64, String>,
    /// PASS (true) / FAIL (false); None = informational only.
    pub pass: Option<bool>,
}

impl Verdict {
    /// strata's figure over glibc's.
    pub fn ratio(&self) -> f64 {
        match (&self.subject, &self.baseline) {
            (Ok(s), Ok(b)) => s / b,
            _ => f64::NAN,
        }
    }
}

type Get<'a> = dyn Fn(&str, &str, &str) -> Result<f64, String> + 'a;

/// Builds a verdict from a figure per allocator and a test on (strata, glibc).
fn verdict(
    id: &'static str,
    target: String,
    unit: &'static str,
    figure: impl Fn(&str) -> Result<f64, String>,
    test: impl Fn(f64, Result<f64, String>) -> Option<bool>,
) -> Verdict {
    let subject = figure(SUBJECT);
    let baseline = figure(BASELINE);
    let pass = match &subject {
        Ok(s) => test(*s, baseline.clone()),
        Err(_) => Some(false),
    };
    Verdict {
        id,
        target,
        unit,
        subject,
        baseline,
        pass,
    }
}

/// Every target whose scenario ran, in scenario order.
pub fn evaluate(results: &[ScenarioResult]) -> Vec<Verdict> {
    let get: &Get = &|id, alloc, col| {
        let r = results
            .iter()
            .find(|r| r.spec.id == id)
            .ok_or_else(|| format!("{id} did not run"))?;
        r.value(alloc, col)
    };
    let ran = |id: &str| results.iter().any(|r| r.spec.id == id);
    let ratio_to =
        |limit: f64| move |s: f64, b: Result<f64, String>| b.ok().map(|b| s <= limit * b);
    let mut v = Vec::new();
    if let Some(r) = results.iter().find(|r| r.spec.id == "T1") {
        if let Kind::ZeroedFlat { sizes, .. } = &r.spec.kind {
            let col = |s: usize| format!("{} µs/op", bytes(s));
            let (lo, hi) = (col(sizes[0]), col(sizes[sizes.len() - 1]));
            if sizes.contains(&(1 << 30)) {
                let c = col(1 << 30);
                v.push(verdict(
                    "T1",
                    "alloc_zeroed+dealloc 1 GiB <= 1 ms".into(),
                    "µs/op",
                    |a| get("T1", a, &c),
                    |s, _| Some(s <= 1000.0),
                ));
            }
            // Flat: the largest size costs at most 10 µs more than the
            // smallest (a cost growing with the size would add about 64x
            // at 4 GiB). An absolute bound, not a ratio: what is left is
            // one madvise whose page-table walk varies by a few µs with
            // where the kernel placed the mapping (untouched 1 GiB:
            // 1.8-5.4 µs, 4 GiB: 0.4 µs, measured in C on this VM).
            let flat = format!(
                "flat: {} time <= {} time + 10 µs",
                bytes(sizes[sizes.len() - 1]),
                bytes(sizes[0])
            );
            v.push(verdict(
                "T1",
                flat,
                "µs more",
                |a| Ok(get("T1", a, &hi)? - get("T1", a, &lo)?),
                |s, _| Some(s <= 10.0),
            ));
        }
    }
    if ran("T2") {
        v.push(verdict(
            "T2",
            "time <= 1.5x glibc".into(),
            "µs/op",
            |a| get("T2", a, "µs/op"),
            ratio_to(1.5),
        ));
        v.push(verdict(
            "T2",
            "no RSS growth start->end (<= 1 MiB)".into(),
            "MiB",
            |a| get("T2", a, "RSS growth MiB"),
            |s, _| Some(s <= 1.0),
        ));
    }
    if ran("T3") {
        v.push(verdict(
            "T3",
            "CPU time <= glibc".into(),
            "CPU µs/cycle",
            |a| get("T3", a, "CPU µs/cycle"),
            ratio_to(1.0),
        ));
        v.push(verdict(
            "T3",
            "< 0.1 faults/cycle".into(),
            "faults/cycle",
            |a| get("T3", a, "faults/cycle"),
            |s, _| Some(s < 0.1),
        ));
        v.push(verdict(
            "T3",
            "faults/cycle after the 1st cycle (info)".into(),
            "faults/cycle",
            |a| get("T3", a, "after 1st"),
            |_, _| None,
        ));
    }
    if ran("T4") {
        v.push(verdict(
            "T4",
            "<= 4 faults/cycle".into(),
            "faults/cycle",
            |a| get("T4", a, "faults/cycle"),
            |s, _| Some(s <= 4.0),
        ));
        v.push(verdict(
            "T4",
            "time <= 2x glibc".into(),
            "µs/cycle",
            |a| get("T4", a, "µs/cycle"),
            ratio_to(2.0),
        ));
    }
    if ran("T5") {
        v.push(verdict(
            "T5",
            "after release <= start + 64 MiB".into(),
            "MiB over start",
            |a| Ok(get("T5", a, "after release MiB")? - get("T5", a, "start MiB")?),
            |s, _| Some(s <= 64.0),
        ));
    }
    if ran("T6") {
        v.push(verdict(
            "T6",
            "final RSS <= 1/4 of peak (no release call)".into(),
            "final/peak",
            |a| get("T6", a, "final/peak"),
            |s, _| Some(s <= 0.25),
        ));
    }
    if ran("T7") {
        v.push(verdict(
            "T7",
            "faults in writes after populate < 1% of pages".into(),
            "% of pages",
            |a| get("T7", a, "faults/page %"),
            |s, _| Some(s < 1.0),
        ));
        v.push(verdict(
            "T7",
            "populate time (info)".into(),
            "ms",
            |a| get("T7", a, "populate ms"),
            |_, _| None,
        ));
    }
    if ran("T8") {
        v.push(verdict(
            "T8",
            "pattern intact (time in realloc: info)".into(),
            "realloc ms",
            |a| get("T8", a, "realloc ms"),
            |_, _| Some(true),
        ));
        v.push(verdict(
            "T8",
            "total time (info)".into(),
            "ms",
            |a| get("T8", a, "total ms"),
            |_, _| None,
        ));
    }
    v
}

fn fig(r: &Result<f64, String>) -> String {
    match r {
        Ok(v) if v.is_nan() => "n/a".into(),
        Ok(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Ok(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Ok(v) => format!("{v:.3}"),
        Err(_) => "FAILED".into(),
    }
}

fn status(p: Option<bool>) -> &'static str {
    match p {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "info",
    }
}

/// The SUMMARY table.
pub fn summary_table(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SUMMARY: strata's memory targets (figures are medians; ratio = strata / glibc)"
    );
    let _ = writeln!(
        out,
        "  {:<3} {:<48} {:<14} {:>10} {:>10} {:>8}  result",
        "id", "target", "unit", SUBJECT, BASELINE, "ratio"
    );
    for v in verdicts {
        let ratio = v.ratio();
        let ratio = if ratio.is_finite() {
            format!("{ratio:.2}x")
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "  {:<3} {:<48} {:<14} {:>10} {:>10} {:>8}  {}",
            v.id,
            v.target,
            v.unit,
            fig(&v.subject),
            fig(&v.baseline),
            ratio,
            status(v.pass)
        );
        for (who, r) in [(SUBJECT, &v.subject), (BASELINE, &v.baseline)] {
            if let Err(e) = r {
                let _ = writeln!(out, "        {who}: {e}");
            }
        }
    }
    let passed = verdicts.iter().filter(|v| v.pass == Some(true)).count();
    let judged = verdicts.iter().filter(|v| v.pass.is_some()).count();
    let _ = writeln!(out, "  {passed}/{judged} targets met");
    out
}

/// The verdicts as CSV.
pub fn summary_csv(verdicts: &[Verdict], mode: &str) -> String {
    let mut out = String::from("mode,scenario,target,unit,strata,glibc,ratio,result\n");
    let num = |r: &Result<f64, String>| r.as_ref().map_or(String::new(), |v| v.to_string());
    for v in verdicts {
        let _ = writeln!(
            out,
            "{mode},{},\"{}\",{},{},{},{},{}",
            v.id,
            v.target.replace('"', "'"),
            v.unit,
            num(&v.subject),
            num(&v.baseline),
            v.ratio(),
            status(v.pass)
        );
    }
    out
}
