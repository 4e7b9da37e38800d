//! Tests of [`super`].

use super::*;
use crate::child::ChildRuns;
use crate::measure::Sample;
use crate::mode::Mode;
use crate::results::AllocRuns;
use crate::suite::suite;
use crate::suite::Row;

/// A row result with one sample per allocator at the given ns/op, and peak
/// RSS (KiB) for the allocators in `peaks`.
pub(crate) fn fake_result(
    row: Row,
    ns: &[(&'static str, u64)],
    peaks: &[(&'static str, f64)],
) -> RowResult {
    RowResult {
        row,
        allocs: ns
            .iter()
            .map(|&(alloc, n)| AllocRuns {
                alloc,
                samples: vec![sample(n, false)],
            })
            .collect(),
        rss: peaks
            .iter()
            .map(|&(alloc, kib)| {
                PeakRss(ChildRuns {
                    alloc,
                    runs: vec![Ok(vec![kib, kib / 2.0, 1.0, 0.0])],
                })
            })
            .collect(),
    }
}

fn sample(ns_per_op: u64, truncated: bool) -> Sample {
    Sample {
        ops: 10,
        planned: if truncated { 20 } else { 10 },
        wall_ns: ns_per_op * 10,
        cpu_ns: ns_per_op * 10,
        minflt: 5,
        rss_delta_kib: 2048,
    }
}

#[test]
fn tables_ratios_and_csv() {
    let row = suite(Mode::Smoke).remove(0);
    let runs = |alloc, ns: &[u64]| AllocRuns {
        alloc,
        samples: ns.iter().map(|&n| sample(n, false)).collect(),
    };
    let r = RowResult {
        row,
        allocs: vec![
            runs("strata", &[10, 30, 20]),
            runs("glibc", &[40, 40]),
            AllocRuns {
                alloc: "mimalloc",
                samples: vec![sample(8, true)],
            },
        ],
        rss: vec![
            PeakRss(ChildRuns {
                alloc: "strata",
                runs: vec![Ok(vec![6144.0, 2048.0, 20.0, 0.0])],
            }),
            PeakRss(ChildRuns {
                alloc: "glibc",
                runs: vec![Ok(vec![4096.0, 1024.0, 40.0, 0.0])],
            }),
        ],
    };
    let q = r.ratio("strata", "glibc");
    assert_eq!(q.subject, 20.0);
    assert_eq!(q.best_peer, Some(("mimalloc", 8.0)));
    assert_eq!(q.vs_best, 2.5);
    assert_eq!(q.vs_baseline, 0.5);
    assert_eq!(r.rss_ratio("strata").map(|x| x.ratio), Some(1.5));
    let t = row_table(&r, "strata", "glibc");
    assert!(t.contains("strata") && t.contains("+2.0 MiB") && t.contains("! = a run hit"));
    assert!(t.contains("2.50x the best peer (mimalloc)") && t.contains("6.0 MiB"));
    assert!(
        t.contains("peak RSS 1.50x the lowest peer (glibc, 4.0 MiB)"),
        "{t}"
    );
    let csv = to_csv(&[r], "smoke", "glibc");
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
}
