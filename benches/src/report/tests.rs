//! Tests of [`super`]: the tables, the CSVs and the SUMMARYs.

use super::rows::{row_table, rows_csv};
use super::scenarios::{scenario_table, scenarios_csv};
use super::summary::{compare_summary, memory_summary, memory_summary_csv};
use super::*;
use crate::child::ChildRuns;
use crate::judge::judge;
use crate::memory::specs;
use crate::results::{fake_peak, fake_result, fake_sample, AllocRuns, RowResult, ScenarioResult};
use crate::suite::suite;
use crate::targets::{COMPARE, MEMORY};

#[test]
fn tables_ratios_and_csv() {
    let row = suite(Mode::Smoke).remove(0);
    let runs = |alloc, ns: &[u64]| AllocRuns {
        alloc,
        samples: ns.iter().map(|&n| fake_sample(n, false)).collect(),
    };
    let r = RowResult {
        row,
        api: crate::api::Api::Unsized,
        allocs: vec![
            runs("strata", &[10, 30, 20]),
            runs("glibc", &[40, 40]),
            AllocRuns {
                alloc: "mimalloc",
                samples: vec![fake_sample(8, true)],
            },
        ],
        rss: vec![
            fake_peak("strata", 6144.0, 2048.0),
            fake_peak("glibc", 4096.0, 1024.0),
        ],
    };
    let q = r.ratio("strata", "glibc");
    assert_eq!(q.subject, 20.0);
    assert_eq!(q.best_peer, Some(("mimalloc", 8.0)));
    assert_eq!(q.vs_best, 2.5);
    assert_eq!(q.vs_baseline, 0.5);
    assert_eq!(r.rss_ratio("strata").map(|x| x.ratio), Some(1.5));
    let t = row_table(&r);
    assert!(t.contains("strata") && t.contains("+2.0 MiB") && t.contains("! = a run hit"));
    assert!(t.contains("2.50x the best peer (mimalloc)") && t.contains("6.0 MiB"));
    assert!(
        t.contains("peak RSS 1.50x the lowest peer (glibc, 4.0 MiB)"),
        "{t}"
    );
    let csv = rows_csv(&[r], "smoke");
    assert_eq!(csv.lines().count(), 4);
    assert!(csv
        .lines()
        .nth(3)
        .unwrap()
        .contains(",mimalloc,1,true,8.000,"));
    assert!(csv.lines().nth(1).unwrap().ends_with(",6144,2048"));
}

#[test]
fn formatting() {
    assert_eq!(fmt_kib(-512), "-512 KiB");
    assert_eq!(fmt_kib(3 << 20), "+3.00 GiB");
    assert_eq!(fmt_ns(5.0), "5.00");
    assert_eq!(fmt_ns(12_345.6), "12346");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_line(&["x", "a \"b\""]), "x,\"a \"\"b\"\"\"\n");
    assert_eq!(fmt_num(f64::NAN, 2), "n/a");
}

#[test]
fn table_columns() {
    let mut t = Table::new(">5 >4  <0");
    t.text("title");
    t.row(&[&"ab", &7, &"x"]);
    t.row_then(&[&"abcdefg"], "rest");
    assert_eq!(t.finish(), "title\n     ab    7  x\n  abcdefg rest\n");
}

#[test]
fn scenario_medians_tables_and_csv() {
    let spec = specs(Mode::Full).remove(1); // T2
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
    let t = scenario_table(&r);
    assert!(
        t.contains("FAILED: T2: broken") && t.contains("2.00"),
        "{t}"
    );
    let csv = scenarios_csv(std::slice::from_ref(&r), "full");
    assert_eq!(csv.lines().count(), 1 + 2 * 6);
    // glibc failed: its figures are not judged against, strata's stand alone.
    let verdicts = judge(&[r], MEMORY);
    let ids: Vec<&str> = verdicts.iter().map(|v| v.text.as_str()).collect();
    assert_eq!(
        ids,
        ["time <= 1.5x glibc", "no RSS growth start->end (<= 1 MiB)"]
    );
    assert_eq!(verdicts[0].pass, None);
    assert_eq!(verdicts[1].pass, Some(true));
    let s = memory_summary(&verdicts);
    assert!(
        s.contains("1/1 targets met") && s.contains("glibc: T2: broken"),
        "{s}"
    );
    let csv = memory_summary_csv(&verdicts, "full");
    assert_eq!(csv.lines().count(), 3);
    assert!(
        csv.contains(",time <= 1.5x glibc,µs/op,2,,NaN,info"),
        "{csv}"
    );
}

#[test]
fn compare_targets_and_summary() {
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
    let time_ok = |r: &RowResult| {
        let v = judge(std::slice::from_ref(r), COMPARE);
        let time: Vec<_> = v.into_iter().filter(|v| v.target.unit == "ns/op").collect();
        (time.iter().all(|v| v.pass == Some(true)), time[0].ratio)
    };
    // Small pairs: held to mimalloc/jemalloc even when glibc is faster.
    let pairs = fake_result(find("1"), &ns(105, 50, 100, 120), &[]);
    let (pass, ratio) = time_ok(&pairs);
    assert!(pass && (ratio - 1.05).abs() < 1e-9);
    // Other rows: within 1.25x of the best peer, and faster than glibc.
    let slow = fake_result(find("3"), &ns(130, 200, 100, 300), &[]);
    assert!(!time_ok(&slow).0);
    let ok = fake_result(find("3"), &ns(120, 200, 100, 300), &[]);
    assert!(time_ok(&ok).0);
    let not_glibc = fake_result(find("3"), &ns(120, 110, 100, 300), &[]);
    assert!(!time_ok(&not_glibc).0);
    // Peak RSS on larson: <= 1.2x the lowest peer.
    let peaks = [("strata", 1300.0), ("glibc", 1000.0), ("mimalloc", 2000.0)];
    let larson = fake_result(find("10"), &ns(10, 20, 12, 15), &peaks);
    let v = judge(std::slice::from_ref(&larson), COMPARE);
    let rss = v.iter().find(|v| v.target.unit == "KiB").unwrap();
    assert_eq!(rss.pass, Some(false));
    assert!((rss.ratio - 1.3).abs() < 1e-9);
    // xmalloc-test: shown, not judged.
    let xm = fake_result(find("11"), &ns(10, 20, 12, 15), &peaks);
    let v = judge(std::slice::from_ref(&xm), COMPARE);
    assert!(v.iter().all(|v| v.target.unit != "KiB"));
    let results = [pairs, slow, larson, xm];
    let t = compare_summary(&results);
    assert!(t.contains("time targets met: 3/4"), "{t}");
    assert!(t.contains("met: 0/1") && t.contains("1.30x"), "{t}");
    assert!(
        t.contains("<=1.25x best,<glibc") && t.contains("<=1.10x mi/je"),
        "{t}"
    );
}

#[test]
fn c_view_targets_and_summary() {
    use crate::api::Api;
    let rows = suite(Mode::Smoke);
    let find = |id| rows.iter().find(|r| r.id == id).unwrap().clone();
    let c = |mut r: RowResult| {
        r.api = Api::Unsized;
        r
    };
    let ns = |s| [("strata", s), ("glibc", 200), ("tcmalloc", 100)];
    // At most the best peer passes; the goal is 0.95x.
    let even = c(fake_result(find("3"), &ns(100), &[]));
    let goal = c(fake_result(find("2"), &ns(90), &[]));
    let slow = c(fake_result(find("1"), &ns(101), &[]));
    let peaks = [("strata", 1250.0), ("glibc", 1000.0), ("tcmalloc", 2000.0)];
    let rptest = c(fake_result(find("15"), &ns(50), &peaks));
    let rust = fake_result(find("3"), &ns(120), &[]);
    let results = [rust, even, goal, slow, rptest];
    let t = compare_summary(&results);
    assert!(
        t.contains("SUMMARY (Rust view") && t.contains("SUMMARY (C view"),
        "{t}"
    );
    assert!(t.contains("time targets met: 1/1; peak RSS"), "{t}");
    assert!(
        t.contains("time targets met: 3/4; goal (0.95x the best peer) reached: 2/4"),
        "{t}"
    );
    assert!(
        t.contains("peak RSS targets met: 0/1") && t.contains("1.25x"),
        "{t}"
    );
    assert!(t.contains("<=1.00x best,goal 0.95x"), "{t}");
}
