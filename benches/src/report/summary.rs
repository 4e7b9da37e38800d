//! The SUMMARY each bench prints last: its results against its table of
//! targets ([`crate::targets`]), from the verdicts of [`crate::judge`].

use std::fmt::Display;

use super::{csv_line, fmt_mib, fmt_ns, fmt_ratio, Table};
use crate::api::Api;
use crate::judge::{judge, Verdict};
use crate::results::RowResult;
use crate::targets::{self, Against, Col, Figure, BASELINE, PEAK_RSS, SUBJECT, TIME};

fn pass_fail(p: bool) -> &'static str {
    if p {
        "PASS"
    } else {
        "FAIL"
    }
}

fn status(p: Option<bool>) -> &'static str {
    p.map_or("info", pass_fail)
}

/// True for verdicts on figure `col`.
fn on(v: &Verdict, col: &str) -> bool {
    matches!(v.target.figure, Figure::Col(Col::Named(c)) if c == col)
}

/// The main job's SUMMARY: per interface the rows ran through (Rust's
/// `GlobalAlloc`, then C's malloc/free), every row with the subject's
/// ns/op, the best peer, the ratios to it and to the baseline, the time
/// targets of that interface's table ([`targets::compare`]) and their
/// result, a goal where the table sets one, and where measured the
/// peak-RSS ratio and its result.
pub fn compare_summary(results: &[RowResult]) -> String {
    let views: Vec<String> = Api::ALL
        .into_iter()
        .filter_map(|api| {
            let rows: Vec<&RowResult> = results.iter().filter(|r| r.api == api).collect();
            (!rows.is_empty()).then(|| view_summary(&rows, api))
        })
        .collect();
    views.join("\n")
}

/// The SUMMARY of the rows run through `api`.
fn view_summary(results: &[&RowResult], api: Api) -> String {
    let table = targets::compare(api);
    let goal = targets::goal_of(table, TIME);
    let mut t = Table::new("<4 <24 >10 >9 >10 >8 >8 <23 <5 <6 >17 <4");
    t.text(format_args!(
        "SUMMARY ({}): {SUBJECT} vs the best peer and vs {BASELINE} (ratio < 1.00 = {SUBJECT} \
         better), against the targets",
        api.title()
    ));
    let vs_base = format!("vs {BASELINE}");
    let goal_head = if goal.is_some() { "goal" } else { "" };
    t.row(&[
        &"row",
        &"workload",
        &"ns/op",
        &"best peer",
        &"peer ns/op",
        &"vs best",
        &vs_base,
        &"time target",
        &"time",
        &goal_head,
        &"peak RSS vs low",
        &"RSS",
    ]);
    let (mut time_met, mut goal_met, mut rss_met, mut rss_judged) = (0, 0, 0, 0);
    let mut partial = false;
    for r in results {
        let id = r.row.id;
        let q = r.ratio(SUBJECT, BASELINE);
        let verdicts = judge(std::slice::from_ref(*r), table);
        let time: Vec<&Verdict> = verdicts.iter().filter(|v| on(v, TIME)).collect();
        let texts: Vec<&str> = time.iter().map(|v| v.text.as_str()).collect();
        let time_pass = time.iter().all(|v| v.pass != Some(false));
        let reached = time.iter().find_map(|v| v.goal_met());
        let rss_pass = verdicts
            .iter()
            .find(|v| on(v, PEAK_RSS))
            .map(|v| v.pass == Some(true));
        let (peer, peer_v) = q.best_peer.unwrap_or(("-", f64::NAN));
        let flag = if r.allocs.iter().any(|a| a.stats(r.row.metric).truncated) {
            "!"
        } else {
            " "
        };
        partial |= flag == "!";
        time_met += usize::from(time_pass);
        goal_met += usize::from(reached == Some(true));
        rss_judged += usize::from(rss_pass.is_some());
        rss_met += usize::from(rss_pass == Some(true));
        let rss = match r.rss_ratio(SUBJECT) {
            Some(x) => format!("{} {:>7}", fmt_ratio(x.ratio), fmt_mib(x.lowest_peer.1)),
            None if !r.rss.is_empty() => "failed".into(),
            None => String::new(),
        };
        let reached = reached.map_or("", |m| if m { "met" } else { "-" });
        let cells: [&dyn Display; 12] = [
            &id,
            &r.row.name,
            &(fmt_ns(q.subject) + flag),
            &peer,
            &fmt_ns(peer_v),
            &fmt_ratio(q.vs_best),
            &fmt_ratio(q.vs_baseline),
            &texts.join(","),
            &pass_fail(time_pass),
            &reached,
            &rss,
            &rss_pass.map_or("", pass_fail),
        ];
        t.row(&cells);
    }
    let goal = goal.map_or(String::new(), |g| {
        format!(
            "; goal ({g:.2}x the best peer) reached: {goal_met}/{}",
            results.len()
        )
    });
    t.text(format_args!(
        "  time targets met: {time_met}/{}{goal}; peak RSS targets met: {rss_met}/{rss_judged}",
        results.len(),
    ));
    if let Some(l) = targets::limit_of(table, PEAK_RSS, Against::BestPeer) {
        t.text(format_args!(
            "  peak RSS target: <= {l:.1}x the lowest peer; \"peak RSS vs low\" = {SUBJECT}'s \
             peak / the lowest peer's peak (shown after it)"
        ));
    }
    if let Some((peers, limit)) = targets::named_peers(table) {
        t.text(format_args!(
            "  small pairs are held to the faster of {} ({limit:.2}x), not to the best peer",
            peers.join(" and ")
        ));
    }
    if partial {
        t.text("  ! = some allocator hit the time budget on that row (see its table)");
    }
    t.finish()
}

/// A figure of the memory SUMMARY, with precision that suits its size.
fn fig(r: &Result<f64, String>) -> String {
    match r {
        Ok(v) if v.is_nan() => "n/a".into(),
        Ok(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Ok(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Ok(v) => format!("{v:.3}"),
        Err(_) => "FAILED".into(),
    }
}

/// The memory bench's SUMMARY: a line per target, with the subject's and
/// the baseline's figures.
pub fn memory_summary(verdicts: &[Verdict]) -> String {
    let mut t = Table::new("<3 <48 <14 >10 >10 >8  <0");
    t.text(format_args!(
        "SUMMARY: {SUBJECT}'s memory targets (figures are medians; ratio = {SUBJECT} / {BASELINE})"
    ));
    t.row(&[
        &"id", &"target", &"unit", &SUBJECT, &BASELINE, &"ratio", &"result",
    ]);
    for v in verdicts {
        let ratio = fmt_ratio(v.vs_baseline());
        let cells: [&dyn Display; 7] = [
            &v.id,
            &v.text,
            &v.target.unit,
            &fig(&v.subject),
            &fig(&v.baseline),
            &ratio,
            &status(v.pass),
        ];
        t.row(&cells);
        for (who, r) in [(SUBJECT, &v.subject), (BASELINE, &v.baseline)] {
            if let Err(e) = r {
                t.text(format_args!("        {who}: {e}"));
            }
        }
    }
    let passed = verdicts.iter().filter(|v| v.pass == Some(true)).count();
    let judged = verdicts.iter().filter(|v| v.pass.is_some()).count();
    t.text(format_args!("  {passed}/{judged} targets met"));
    t.finish()
}

/// The memory verdicts as CSV.
pub fn memory_summary_csv(verdicts: &[Verdict], mode: &str) -> String {
    let mut out = csv_line(&[
        "mode", "scenario", "target", "unit", SUBJECT, BASELINE, "ratio", "result",
    ]);
    let num = |r: &Result<f64, String>| r.as_ref().map_or(String::new(), |v| v.to_string());
    for v in verdicts {
        out += &csv_line(&[
            mode.to_string(),
            v.id.to_string(),
            v.text.clone(),
            v.target.unit.to_string(),
            num(&v.subject),
            num(&v.baseline),
            v.vs_baseline().to_string(),
            status(v.pass).to_string(),
        ]);
    }
    out
}
