//! The memory bench's output per scenario: a table with a row per allocator
//! (medians over that allocator's child runs), and the CSV of all of them.

use std::fmt::Display;

use super::{csv_line, fmt_num, Table};
use crate::results::ScenarioResult;

/// The fixed-width table of one scenario.
pub fn scenario_table(r: &ScenarioResult) -> String {
    let cols = r.spec.cols();
    let w0 = r
        .outcomes
        .iter()
        .map(|o| o.alloc.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let mut layout = format!("<{w0}");
    for c in &cols {
        layout += &format!("  >{}", c.name.chars().count().max(8));
    }
    let mut t = Table::new(&(layout + "  <0"));
    t.text(format_args!(
        "[{}] {}: {}",
        r.spec.id, r.spec.name, r.spec.title
    ));
    let mut head: Vec<&dyn Display> = vec![&"allocator"];
    head.extend(cols.iter().map(|c| &c.name as &dyn Display));
    head.push(&"runs");
    t.row(&head);
    let mut truncated = false;
    for o in &r.outcomes {
        match o.medians() {
            Ok(m) => {
                let short = r
                    .spec
                    .planned()
                    .is_some_and(|p| m.last().is_some_and(|&d| d < p as f64));
                truncated |= short;
                let values: Vec<String> = m
                    .iter()
                    .zip(&cols)
                    .map(|(v, c)| fmt_num(*v, c.prec))
                    .collect();
                let runs = format!("{:>3}{}", o.runs.len(), if short { "!" } else { "" });
                let mut cells: Vec<&dyn Display> = vec![&o.alloc];
                cells.extend(values.iter().map(|v| v as &dyn Display));
                cells.push(&runs);
                t.row(&cells);
            }
            Err(e) => t.row_then(&[&o.alloc], &format!("FAILED: {e}")),
        }
    }
    if truncated {
        t.text(
            "  ! = stopped at the time budget before all planned operations; figures cover the ones done",
        );
    }
    if r.spec.reps > 1 {
        t.text(format_args!(
            "  (medians of {} runs, each in a fresh child process)",
            r.spec.reps
        ));
    }
    t.finish()
}

/// Bounds of a range for the CSV (empty when there was no value).
fn bound(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        String::new()
    }
}

/// All results as CSV: one line per (scenario, allocator, column).
pub fn scenarios_csv(results: &[ScenarioResult], mode: &str) -> String {
    let mut out = String::from("mode,scenario,name,allocator,metric,median,min,max,runs,error\n");
    for r in results {
        for o in &r.outcomes {
            let m = o.medians();
            for (c, col) in r.spec.cols().iter().enumerate() {
                let (med, err) = match &m {
                    Ok(v) => (format!("{}", v[c]), String::new()),
                    Err(e) => (String::new(), e.clone()),
                };
                let (lo, hi) = o.range(c);
                let (lo, hi, runs) = (bound(lo), bound(hi), o.runs.len().to_string());
                out += &csv_line(&[
                    mode,
                    r.spec.id,
                    r.spec.name,
                    o.alloc,
                    &col.name,
                    &med,
                    &lo,
                    &hi,
                    &runs,
                    &err,
                ]);
            }
        }
    }
    out
}
