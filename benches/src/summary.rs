//! The main job's final summary: the subject against the best peer and the
//! baseline on every row, judged against the performance targets of issue 5.
//!
//! - small pairs: at most 1.1x the faster of mimalloc and jemalloc;
//! - every other row: at most 1.25x the best peer, and faster than glibc;
//! - peak RSS on the larson-like and mstress rows: at most 1.2x the lowest
//!   peer (other rows with peak RSS are shown, not judged).

use std::fmt::Write as _;

use crate::report::{fmt_mib, fmt_ns, fmt_ratio};
use crate::results::RowResult;
use crate::suite::{Kind, Published};

/// The peers small pairs are held to.
pub const PAIR_PEERS: [&str; 2] = ["mimalloc", "jemalloc"];
/// Small pairs: subject / faster of [`PAIR_PEERS`].
pub const PAIR_LIMIT: f64 = 1.1;
/// Other rows: subject / best peer.
pub const SPEED_LIMIT: f64 = 1.25;
/// Peak RSS rows: subject / lowest peer.
pub const RSS_LIMIT: f64 = 1.2;

/// One row's outcome against its targets.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The target, in words, e.g. "<=1.25x best, <glibc".
    pub goal: String,
    /// Subject over the peer(s) the time target names.
    pub time_ratio: f64,
    /// The time target met? (false when a figure is missing)
    pub time_pass: bool,
    /// Subject's peak RSS over the lowest peer's, when measured.
    pub rss_ratio: Option<f64>,
    /// The RSS target met? `None`: no RSS target on this row.
    pub rss_pass: Option<bool>,
}

/// True for the rows whose peak RSS is held to [`RSS_LIMIT`].
fn rss_judged(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Larson { .. } | Kind::Published(Published::Mstress { .. })
    )
}

/// Judges one row.
pub fn verdict(r: &RowResult, subject: &str, baseline: &str) -> Verdict {
    let q = r.ratio(subject, baseline);
    let (goal, time_ratio, time_pass) = if let Kind::SmallPairs { .. } = r.row.kind {
        let peer = r
            .allocs
            .iter()
            .filter(|a| PAIR_PEERS.contains(&a.alloc))
            .map(|a| a.stats(r.row.metric).median)
            .fold(f64::INFINITY, f64::min);
        let ratio = q.subject / peer;
        let goal = format!("<={PAIR_LIMIT:.2}x mi/je");
        (goal, ratio, ratio <= PAIR_LIMIT)
    } else {
        let goal = format!("<={SPEED_LIMIT:.2}x best,<{baseline}");
        let pass = q.vs_best <= SPEED_LIMIT && q.vs_baseline < 1.0;
        (goal, q.vs_best, pass)
    };
    let rss_ratio = r.rss_ratio(subject).map(|x| x.ratio);
    let rss_pass = if rss_judged(&r.row.kind) && !r.rss.is_empty() {
        Some(rss_ratio.is_some_and(|x| x <= RSS_LIMIT))
    } else {
        None
    };
    Verdict {
        goal,
        time_ratio,
        time_pass,
        rss_ratio,
        rss_pass,
    }
}

fn pass_fail(p: bool) -> &'static str {
    if p {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The SUMMARY table: every row with the subject's ns/op, the best peer, the
/// ratios to it and to the baseline, the time target and its result, and
/// where measured the peak-RSS ratio and its result.
pub fn summary_table(results: &[RowResult], subject: &str, baseline: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SUMMARY: {subject} vs the best peer and vs {baseline} (ratio < 1.00 = {subject} better), \
         against issue 5's targets"
    );
    let _ = writeln!(
        out,
        "  {:<4} {:<24} {:>10} {:>9} {:>10} {:>8} {:>8} {:<20} {:<5} {:>17} {:<4}",
        "row",
        "workload",
        "ns/op",
        "best peer",
        "peer ns/op",
        "vs best",
        format!("vs {baseline}"),
        "time target",
        "time",
        "peak RSS vs low",
        "RSS"
    );
    let (mut time_met, mut rss_met, mut rss_judged, mut partial) = (0, 0, 0, false);
    for r in results {
        let q = r.ratio(subject, baseline);
        let v = verdict(r, subject, baseline);
        let (peer, peer_v) = q.best_peer.unwrap_or(("-", f64::NAN));
        let flag = if r.allocs.iter().any(|a| a.stats(r.row.metric).truncated) {
            "!"
        } else {
            " "
        };
        partial |= flag == "!";
        time_met += usize::from(v.time_pass);
        rss_judged += usize::from(v.rss_pass.is_some());
        rss_met += usize::from(v.rss_pass == Some(true));
        let rss = match (v.rss_ratio, r.rss_ratio(subject)) {
            (Some(x), Some(low)) => format!("{} {:>7}", fmt_ratio(x), fmt_mib(low.lowest_peer.1)),
            _ if !r.rss.is_empty() => "failed".into(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<4} {:<24} {:>9}{} {:>9} {:>10} {:>8} {:>8} {:<20} {:<5} {:>17} {:<4}",
            r.row.id,
            r.row.name,
            fmt_ns(q.subject),
            flag,
            peer,
            fmt_ns(peer_v),
            fmt_ratio(q.vs_best),
            fmt_ratio(q.vs_baseline),
            v.goal,
            pass_fail(v.time_pass),
            rss,
            v.rss_pass.map_or("", pass_fail)
        );
    }
    let _ = writeln!(
        out,
        "  time targets met: {time_met}/{}; peak RSS targets (<= {RSS_LIMIT:.1}x the lowest peer) \
         met: {rss_met}/{rss_judged}",
        results.len()
    );
    let _ = writeln!(
        out,
        "  small pairs are held to the faster of {} ({PAIR_LIMIT:.2}x), not to the best peer; \
         \"peak RSS vs low\" = {subject}'s peak / the lowest peer's peak (shown after it)",
        PAIR_PEERS.join(" and ")
    );
    if partial {
        let _ = writeln!(
            out,
            "  ! = some allocator hit the time budget on that row (see its table)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::report::tests::fake_result;
    use crate::suite::suite;

    #[test]
    fn targets_and_table() {
        let rows = suite(Mode::Smoke);
        let find = |id| rows.iter().find(|r| r.id == id).unwrap().clone();
        let ns = |s, g, m, j| {
            [
                ("strata", s),
                ("glibc", g),
                ("mimalloc", m),
                ("jemalloc", j),
            ]
        };
        // Small pairs: held to mimalloc/jemalloc even when glibc is faster.
        let pairs = fake_result(find("1"), &ns(105, 50, 100, 120), &[]);
        let v = verdict(&pairs, "strata", "glibc");
        assert!(v.time_pass && (v.time_ratio - 1.05).abs() < 1e-9);
        assert_eq!(v.rss_pass, None);
        // Other rows: within 1.25x of the best peer, and faster than glibc.
        let slow = fake_result(find("3"), &ns(130, 200, 100, 300), &[]);
        assert!(!verdict(&slow, "strata", "glibc").time_pass);
        let ok = fake_result(find("3"), &ns(120, 200, 100, 300), &[]);
        assert!(verdict(&ok, "strata", "glibc").time_pass);
        let not_glibc = fake_result(find("3"), &ns(120, 110, 100, 300), &[]);
        assert!(!verdict(&not_glibc, "strata", "glibc").time_pass);
        // Peak RSS on larson: <= 1.2x the lowest peer.
        let peaks = [("strata", 1300.0), ("glibc", 1000.0), ("mimalloc", 2000.0)];
        let larson = fake_result(find("10"), &ns(10, 20, 12, 15), &peaks);
        let v = verdict(&larson, "strata", "glibc");
        assert_eq!(v.rss_pass, Some(false));
        assert!((v.rss_ratio.unwrap() - 1.3).abs() < 1e-9);
        // xmalloc-test: shown, not judged.
        let xm = fake_result(find("11"), &ns(10, 20, 12, 15), &peaks);
        assert_eq!(verdict(&xm, "strata", "glibc").rss_pass, None);
        let t = summary_table(&[pairs, slow, larson, xm], "strata", "glibc");
        assert!(t.contains("time targets met: 3/4"), "{t}");
        assert!(t.contains("met: 0/1") && t.contains("1.30x"), "{t}");
    }
}
