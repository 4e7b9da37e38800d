//! Fixed-width text tables and CSV for the comparison results
//! ([`crate::results`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::measure::Metric;
use crate::mode::Mode;
use crate::results::{RowResult, Stats};
use crate::rss::PeakRss;

/// Formats nanoseconds with precision that suits the magnitude.
pub fn fmt_ns(v: f64) -> String {
    if !v.is_finite() {
        "-".to_string()
    } else if v < 100.0 {
        format!("{v:.2}")
    } else if v < 10_000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn fmt_faults(v: f64) -> String {
    if !v.is_finite() {
        "-".to_string()
    } else if v < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// Formats a signed KiB amount as "+1.5 MiB".
pub fn fmt_kib(kib: i64) -> String {
    let sign = if kib < 0 { "-" } else { "+" };
    let k = kib.unsigned_abs() as f64;
    if k >= 1024.0 * 1024.0 {
        format!("{sign}{:.2} GiB", k / (1024.0 * 1024.0))
    } else if k >= 1024.0 {
        format!("{sign}{:.1} MiB", k / 1024.0)
    } else {
        format!("{sign}{k:.0} KiB")
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

/// Formats a ratio as "1.23x" ("-" when not finite).
pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".to_string()
    }
}

/// The fixed-width table of one row: per allocator the timing figures and,
/// where measured, the peak RSS of its own process; then the subject's
/// ratios.
pub fn row_table(r: &RowResult, subject: &str, baseline: &str) -> String {
    let m = r.row.metric;
    let (main, other) = match m {
        Metric::Wall => ("ns/op (median)", "cpu ns/op"),
        Metric::Cpu => ("cpu ns/op (median)", "wall ns/op"),
    };
    let mut out = String::new();
    let _ = writeln!(out, "[{}] {}", r.row.id, r.row.title);
    let _ = writeln!(out, "     op = {}; ranked by {} time", r.row.op, m.label());
    let _ = write!(
        out,
        "  {:<10} {:>19} {:>13} {:>13} {:>11} {:>12} {:>5}",
        "allocator", main, "min", other, "faults/op", "RSS delta", "runs"
    );
    if !r.rss.is_empty() {
        let _ = write!(out, " {:>15} {:>11}", "peak RSS alone", "its growth");
    }
    out.push('\n');
    let stats: Vec<Stats> = r.allocs.iter().map(|a| a.stats(m)).collect();
    let best = stats.iter().map(|s| s.median).fold(f64::INFINITY, f64::min);
    let mut flagged = false;
    for (a, s) in r.allocs.iter().zip(&stats) {
        let other_v = if m == Metric::Wall { s.cpu } else { s.wall };
        let mark = if s.median == best { "*" } else { " " };
        let runs = if s.truncated { "!" } else { "" };
        flagged |= s.truncated;
        let _ = write!(
            out,
            "  {:<10} {:>18}{} {:>13} {:>13} {:>11} {:>12} {:>4}{:1}",
            a.alloc,
            fmt_ns(s.median),
            mark,
            fmt_ns(s.min),
            fmt_ns(other_v),
            fmt_faults(s.faults),
            fmt_kib(s.rss_delta_kib),
            s.runs,
            runs
        );
        if let Some(p) = r.rss.iter().find(|p| p.alloc() == a.alloc) {
            let _ = match (p.peak_kib(), p.growth_kib()) {
                (Ok(v), Ok(g)) => write!(out, " {:>15} {:>11}", fmt_mib(v), fmt_kib(g as i64)),
                (Err(e), _) | (_, Err(e)) => write!(out, " FAILED: {e}"),
            };
        }
        out.push('\n');
    }
    if flagged {
        let _ = writeln!(
            out,
            "     ! = a run hit the time budget: ns/op covers the ops done (partial), no further reps"
        );
    }
    let q = r.ratio(subject, baseline);
    let _ = write!(
        out,
        "     {subject}: {} the best peer ({}), {} {baseline}",
        fmt_ratio(q.vs_best),
        q.best_peer.map_or("-", |p| p.0),
        fmt_ratio(q.vs_baseline)
    );
    if let Some(x) = r.rss_ratio(subject) {
        let _ = write!(
            out,
            "; peak RSS {} the lowest peer ({}, {})",
            fmt_ratio(x.ratio),
            x.lowest_peer.0,
            fmt_mib(x.lowest_peer.1)
        );
    }
    out.push('\n');
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A peak-RSS figure of `alloc` for the CSV (empty when not measured).
fn rss_field(r: &RowResult, alloc: &str, f: fn(&PeakRss) -> Result<f64, String>) -> String {
    r.rss
        .iter()
        .find(|p| p.alloc() == alloc)
        .and_then(|p| f(p).ok())
        .map_or(String::new(), |v| format!("{v:.0}"))
}

/// All results as CSV: one line per (row, allocator).
pub fn to_csv(results: &[RowResult], mode: &str, baseline: &str) -> String {
    let mut out = String::from(
        "mode,row,workload,op,metric,allocator,runs,truncated,median_ns_per_op,min_ns_per_op,\
         wall_ns_per_op,cpu_ns_per_op,faults_per_op,rss_delta_kib,ratio_vs_best_other,ratio_vs_baseline,\
         peak_rss_kib,peak_rss_growth_kib\n",
    );
    for r in results {
        let m = r.row.metric;
        let base = r.stats_of(baseline).map_or(f64::NAN, |s| s.median);
        for a in &r.allocs {
            let s = a.stats(m);
            let best_other = r
                .allocs
                .iter()
                .filter(|o| o.alloc != a.alloc)
                .map(|o| o.stats(m).median)
                .fold(f64::INFINITY, f64::min);
            let fields = [
                mode.to_string(),
                r.row.id.to_string(),
                csv_field(&r.row.title),
                csv_field(r.row.op),
                m.label().to_string(),
                a.alloc.to_string(),
                s.runs.to_string(),
                s.truncated.to_string(),
                format!("{:.3}", s.median),
                format!("{:.3}", s.min),
                format!("{:.3}", s.wall),
                format!("{:.3}", s.cpu),
                format!("{:.4}", s.faults),
                s.rss_delta_kib.to_string(),
                format!("{:.4}", s.median / best_other),
                format!("{:.4}", s.median / base),
                rss_field(r, a.alloc, PeakRss::peak_kib),
                rss_field(r, a.alloc, PeakRss::growth_kib),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

/// `<target>/strata-bench`, where bench results go; `<target>` is found from
/// the running executable's path (`<target>/release/deps/<bench>-*`), else
/// `../target` next to this crate.
pub fn output_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|p| p.file_name().is_some_and(|n| n == "deps"))
                .and_then(|deps| deps.parent()?.parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("strata-bench")
}

/// `<output_dir>/<stem>.<ext>`, or `<stem>-smoke.<ext>` for smoke runs so
/// that they never replace real results.
pub fn output_path(mode: Mode, stem: &str, ext: &str) -> PathBuf {
    let file = match mode {
        Mode::Smoke => format!("{stem}-smoke.{ext}"),
        Mode::Full | Mode::Quick => format!("{stem}.{ext}"),
    };
    output_dir().join(file)
}

/// Writes the CSV `text` to `path`, creating its directory, and says where
/// on stdout, or, as bench `tool`, why not on stderr.
pub fn save_csv(tool: &str, path: &Path, text: &str) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text));
    match written {
        Ok(()) => println!("CSV: {}", path.display()),
        Err(e) => eprintln!("{tool}: could not write {}: {e}", path.display()),
    }
}

#[cfg(test)]
pub(crate) mod tests;
