//! The main job's output per row: a table of every allocator's figures, and
//! the CSV of all rows.

use std::fmt::Display;

use super::{csv_line, fmt_kib, fmt_mib, fmt_ns, fmt_ratio, Table};
use crate::api::Api;
use crate::measure::Metric;
use crate::results::{RowResult, Stats};
use crate::rss::PeakRss;
use crate::targets::{BASELINE, SUBJECT};

fn fmt_faults(v: f64) -> String {
    if !v.is_finite() {
        "-".to_string()
    } else if v < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// The fixed-width table of one row: per allocator the timing figures and,
/// where measured, the peak RSS of its own process; then the subject's
/// ratios.
pub fn row_table(r: &RowResult) -> String {
    let m = r.row.metric;
    let (main, other) = match m {
        Metric::Wall => ("ns/op (median)", "cpu ns/op"),
        Metric::Cpu => ("cpu ns/op (median)", "wall ns/op"),
    };
    let rss_cols = if r.rss.is_empty() { "" } else { " >15 >11" };
    let mut t = Table::new(&format!("<10 >19 >13 >13 >11 >12 >5{rss_cols}"));
    let view = match r.api {
        Api::Sized => "",
        Api::Unsized => " C",
    };
    t.text(format_args!("[{}{view}] {}", r.row.id, r.row.title));
    t.text(format_args!(
        "     {}; op = {}; ranked by {} time",
        r.api.title(),
        r.row.op,
        m.label()
    ));
    let head: [&dyn Display; 9] = [
        &"allocator",
        &main,
        &"min",
        &other,
        &"faults/op",
        &"RSS delta",
        &"runs",
        &"peak RSS alone",
        &"its growth",
    ];
    t.row(&head[..if r.rss.is_empty() { 7 } else { 9 }]);
    let stats: Vec<Stats> = r.allocs.iter().map(|a| a.stats(m)).collect();
    let best = stats.iter().map(|s| s.median).fold(f64::INFINITY, f64::min);
    for (a, s) in r.allocs.iter().zip(&stats) {
        let other_v = if m == Metric::Wall { s.cpu } else { s.wall };
        let mark = if s.median == best { "*" } else { " " };
        let flag = if s.truncated { "!" } else { " " };
        let (median, runs) = (fmt_ns(s.median) + mark, format!("{}{flag}", s.runs));
        let (min, other_v, faults) = (fmt_ns(s.min), fmt_ns(other_v), fmt_faults(s.faults));
        let delta = fmt_kib(s.rss_delta_kib);
        let cells: [&dyn Display; 7] = [&a.alloc, &median, &min, &other_v, &faults, &delta, &runs];
        match r
            .peak_rss_of(a.alloc)
            .map(|p| (p.peak_kib(), p.growth_kib()))
        {
            Some((Ok(v), Ok(g))) => {
                let (peak, growth) = (fmt_mib(v), fmt_kib(g as i64));
                let rss: [&dyn Display; 2] = [&peak, &growth];
                t.row(&[&cells[..], &rss[..]].concat());
            }
            Some((Err(e), _) | (_, Err(e))) => t.row_then(&cells, &format!("FAILED: {e}")),
            None => t.row(&cells),
        }
    }
    if stats.iter().any(|s| s.truncated) {
        t.text(
            "     ! = a run hit the time budget: ns/op covers the ops done (partial), no further reps",
        );
    }
    let q = r.ratio(SUBJECT, BASELINE);
    let mut last = format!(
        "     {SUBJECT}: {} the best peer ({}), {} {BASELINE}",
        fmt_ratio(q.vs_best),
        q.best_peer.map_or("-", |p| p.0),
        fmt_ratio(q.vs_baseline)
    );
    if let Some(x) = r.rss_ratio(SUBJECT) {
        last += &format!(
            "; peak RSS {} the lowest peer ({}, {})",
            fmt_ratio(x.ratio),
            x.lowest_peer.0,
            fmt_mib(x.lowest_peer.1)
        );
    }
    t.text(last);
    t.finish()
}

/// A peak-RSS figure of `alloc` for the CSV (empty when not measured).
fn rss_field(r: &RowResult, alloc: &str, f: fn(&PeakRss) -> Result<f64, String>) -> String {
    r.peak_rss_of(alloc)
        .and_then(|p| f(p).ok())
        .map_or(String::new(), |v| format!("{v:.0}"))
}

/// All results as CSV: one line per (row, interface, allocator).
pub fn rows_csv(results: &[RowResult], mode: &str) -> String {
    let mut out = String::from(
        "mode,api,row,workload,op,metric,allocator,runs,truncated,median_ns_per_op,min_ns_per_op,\
         wall_ns_per_op,cpu_ns_per_op,faults_per_op,rss_delta_kib,ratio_vs_best_other,ratio_vs_baseline,\
         peak_rss_kib,peak_rss_growth_kib\n",
    );
    for r in results {
        let m = r.row.metric;
        let base = r.stats_of(BASELINE).map_or(f64::NAN, |s| s.median);
        for a in &r.allocs {
            let s = a.stats(m);
            let best_other = r
                .allocs
                .iter()
                .filter(|o| o.alloc != a.alloc)
                .map(|o| o.stats(m).median)
                .fold(f64::INFINITY, f64::min);
            out += &csv_line(&[
                mode.to_string(),
                r.api.label().to_string(),
                r.row.id.to_string(),
                r.row.title.clone(),
                r.row.op.to_string(),
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
            ]);
        }
    }
    out
}
