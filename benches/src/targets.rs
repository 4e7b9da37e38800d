//! The targets strata is held to, as data: two tables for the main job's
//! rows, one per interface the workloads call the allocators through
//! ([`COMPARE`]: `GlobalAlloc`; [`COMPARE_C`]: C's malloc/free; see
//! [`compare`]), and one for the memory bench ([`MEMORY`], its scenarios). [`crate::judge`] checks a run's results against a table, and
//! [`crate::report`] prints the verdicts.
//!
//! To change a target, change its line here: the limit, what it is measured
//! against, and the words the SUMMARY prints for it (`text`, which states
//! the limit again for the reader, so keep the two in step).

use crate::api::Api;

/// The allocator the targets are about.
pub const SUBJECT: &str = "strata";
/// The allocator it is always also compared with.
pub const BASELINE: &str = "glibc";

/// The main job's ranking figure: ns/op, median over the repetitions (see
/// [`crate::results::RowResult`]).
pub const TIME: &str = "ns/op";
/// The main job's peak RSS of an allocator's own process, KiB (median of
/// the child runs; only on rows that measure it).
pub const PEAK_RSS: &str = "peak RSS KiB";

/// Which rows (or scenarios) a target applies to, by id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum On {
    /// These.
    Ids(&'static [&'static str]),
    /// Every one but these.
    AllBut(&'static [&'static str]),
}

impl On {
    /// True when `id` is one of these rows.
    pub fn covers(self, id: &str) -> bool {
        match self {
            On::Ids(ids) => ids.contains(&id),
            On::AllBut(ids) => !ids.contains(&id),
        }
    }
}

/// A column of a result, found by name. A target whose column a result does
/// not have (a size that did not run, peak RSS not measured) does not apply
/// to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Col {
    /// The column of this name.
    Named(&'static str),
    /// The first column whose name ends with this (`{first}` in a target's
    /// text stands for the rest of its name).
    First(&'static str),
    /// The last column whose name ends with this (`{last}` in the text).
    Last(&'static str),
}

/// The number a target judges, per allocator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Figure {
    /// A column.
    Col(Col),
    /// One column minus another.
    Diff(Col, Col),
}

/// What the subject's figure is divided by before it meets the limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Against {
    /// Nothing: the limit is in the figure's own unit.
    Fixed,
    /// [`BASELINE`]'s figure. Without it the target is shown, not judged.
    Baseline,
    /// The lowest figure among the other allocators (the fastest time, the
    /// smallest peak). Without any, the target fails.
    BestPeer,
    /// The lowest figure among these allocators. Without any, the target
    /// fails.
    Peers(&'static [&'static str]),
}

/// The bound on the subject's figure (over what it is [`Against`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// At most this.
    AtMost(f64),
    /// Less than this.
    Below(f64),
    /// Met when the subject has a figure at all: the scenario fails instead
    /// of producing one when its own checks fail.
    Ran,
    /// Shown, not judged.
    Info,
    /// Not judged either, but the SUMMARY says whether the figure is at
    /// most this: a goal beyond the target.
    Goal(f64),
}

/// One target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// The rows or scenarios it applies to.
    pub on: On,
    /// What is judged.
    pub figure: Figure,
    /// What the figure is divided by.
    pub against: Against,
    /// The bound.
    pub limit: Limit,
    /// The target in words, as the SUMMARY prints it.
    pub text: &'static str,
    /// The unit of the figure, as the memory SUMMARY prints it.
    pub unit: &'static str,
}

/// The two small-pair rows, held to the fastest C allocators.
const PAIRS: &[&str] = &["1", "1b"];

/// The main job's targets: time on every row, peak RSS on two rows (the
/// other rows with peak RSS show it unjudged).
pub const COMPARE: &[Target] = &[
    Target {
        on: On::Ids(PAIRS),
        figure: Figure::Col(Col::Named(TIME)),
        against: Against::Peers(&["mimalloc", "jemalloc"]),
        limit: Limit::AtMost(1.1),
        text: "<=1.10x mi/je",
        unit: "ns/op",
    },
    Target {
        on: On::AllBut(PAIRS),
        figure: Figure::Col(Col::Named(TIME)),
        against: Against::BestPeer,
        limit: Limit::AtMost(1.25),
        text: "<=1.25x best",
        unit: "ns/op",
    },
    Target {
        on: On::AllBut(PAIRS),
        figure: Figure::Col(Col::Named(TIME)),
        against: Against::Baseline,
        limit: Limit::Below(1.0),
        text: "<glibc",
        unit: "ns/op",
    },
    Target {
        on: On::Ids(&["10", "12"]),
        figure: Figure::Col(Col::Named(PEAK_RSS)),
        against: Against::BestPeer,
        limit: Limit::AtMost(1.2),
        text: "peak RSS <= 1.2x the lowest peer",
        unit: "KiB",
    },
];

/// The main job's targets in the C view ([`Api::Unsized`]): as a C
/// program calls them, strata at least as fast as the best peer on every
/// row (aiming at 0.95x), and on rptest's cross-thread churn of variable
/// sizes with a peak RSS near the lowest peer's.
pub const COMPARE_C: &[Target] = &[
    Target {
        on: On::AllBut(&[]),
        figure: Figure::Col(Col::Named(TIME)),
        against: Against::BestPeer,
        limit: Limit::AtMost(1.0),
        text: "<=1.00x best",
        unit: "ns/op",
    },
    Target {
        on: On::AllBut(&[]),
        figure: Figure::Col(Col::Named(TIME)),
        against: Against::BestPeer,
        limit: Limit::Goal(0.95),
        text: "goal 0.95x",
        unit: "ns/op",
    },
    Target {
        on: On::Ids(&["15"]),
        figure: Figure::Col(Col::Named(PEAK_RSS)),
        against: Against::BestPeer,
        limit: Limit::AtMost(1.2),
        text: "peak RSS <= 1.2x the lowest peer",
        unit: "KiB",
    },
];

/// The main job's table of targets for rows run through `api`.
pub fn compare(api: Api) -> &'static [Target] {
    match api {
        Api::Sized => COMPARE,
        Api::Unsized => COMPARE_C,
    }
}

/// The memory bench's targets, in the order the SUMMARY lists them.
pub const MEMORY: &[Target] = &[
    Target {
        on: On::Ids(&["T1"]),
        figure: Figure::Col(Col::Named("1 GiB µs/op")),
        against: Against::Fixed,
        limit: Limit::AtMost(1000.0),
        text: "alloc_zeroed+dealloc 1 GiB <= 1 ms",
        unit: "µs/op",
    },
    // Absolute, not a ratio: a cost growing with the size shows as ~64x at
    // 4 GiB, while the one madvise left varies by a few µs with placement.
    Target {
        on: On::Ids(&["T1"]),
        figure: Figure::Diff(Col::Last(" µs/op"), Col::First(" µs/op")),
        against: Against::Fixed,
        limit: Limit::AtMost(10.0),
        text: "flat: {last} time <= {first} time + 10 µs",
        unit: "µs more",
    },
    Target {
        on: On::Ids(&["T2"]),
        figure: Figure::Col(Col::Named("µs/op")),
        against: Against::Baseline,
        limit: Limit::AtMost(1.5),
        text: "time <= 1.5x glibc",
        unit: "µs/op",
    },
    Target {
        on: On::Ids(&["T2"]),
        figure: Figure::Col(Col::Named("RSS growth MiB")),
        against: Against::Fixed,
        limit: Limit::AtMost(1.0),
        text: "no RSS growth start->end (<= 1 MiB)",
        unit: "MiB",
    },
    Target {
        on: On::Ids(&["T3"]),
        figure: Figure::Col(Col::Named("CPU µs/cycle")),
        against: Against::Baseline,
        limit: Limit::AtMost(1.0),
        text: "CPU time <= glibc",
        unit: "CPU µs/cycle",
    },
    Target {
        on: On::Ids(&["T3"]),
        figure: Figure::Col(Col::Named("faults/cycle")),
        against: Against::Fixed,
        limit: Limit::Below(0.1),
        text: "< 0.1 faults/cycle",
        unit: "faults/cycle",
    },
    Target {
        on: On::Ids(&["T3"]),
        figure: Figure::Col(Col::Named("after 1st")),
        against: Against::Fixed,
        limit: Limit::Info,
        text: "faults/cycle after the 1st cycle (info)",
        unit: "faults/cycle",
    },
    Target {
        on: On::Ids(&["T4"]),
        figure: Figure::Col(Col::Named("faults/cycle")),
        against: Against::Fixed,
        limit: Limit::AtMost(4.0),
        text: "<= 4 faults/cycle",
        unit: "faults/cycle",
    },
    Target {
        on: On::Ids(&["T4"]),
        figure: Figure::Col(Col::Named("µs/cycle")),
        against: Against::Baseline,
        limit: Limit::AtMost(2.0),
        text: "time <= 2x glibc",
        unit: "µs/cycle",
    },
    Target {
        on: On::Ids(&["T5"]),
        figure: Figure::Diff(Col::Named("after release MiB"), Col::Named("start MiB")),
        against: Against::Fixed,
        limit: Limit::AtMost(64.0),
        text: "after release <= start + 64 MiB",
        unit: "MiB over start",
    },
    Target {
        on: On::Ids(&["T6"]),
        figure: Figure::Col(Col::Named("final/peak")),
        against: Against::Fixed,
        limit: Limit::AtMost(0.25),
        text: "final RSS <= 1/4 of peak (no release call)",
        unit: "final/peak",
    },
    Target {
        on: On::Ids(&["T6", "T6b", "T6c", "T6d", "T6e", "T6f"]),
        figure: Figure::Diff(Col::Last("s MiB"), Col::Named("start MiB")),
        against: Against::Fixed,
        limit: Limit::AtMost(64.0),
        text: "RSS {last}s after the frees <= start + 64 MiB",
        unit: "MiB over start",
    },
    Target {
        on: On::Ids(&["T7"]),
        figure: Figure::Col(Col::Named("faults/page %")),
        against: Against::Fixed,
        limit: Limit::Below(1.0),
        text: "faults in writes after populate < 1% of pages",
        unit: "% of pages",
    },
    Target {
        on: On::Ids(&["T7"]),
        figure: Figure::Col(Col::Named("populate ms")),
        against: Against::Fixed,
        limit: Limit::Info,
        text: "populate time (info)",
        unit: "ms",
    },
    Target {
        on: On::Ids(&["T8"]),
        figure: Figure::Col(Col::Named("realloc ms")),
        against: Against::Fixed,
        limit: Limit::Ran,
        text: "pattern intact (time in realloc: info)",
        unit: "realloc ms",
    },
    Target {
        on: On::Ids(&["T8"]),
        figure: Figure::Col(Col::Named("total ms")),
        against: Against::Fixed,
        limit: Limit::Info,
        text: "total time (info)",
        unit: "ms",
    },
];

/// The first limit in `targets` on column `col` against `against` (for the
/// words around a table and the plot's reference line).
pub fn limit_of(targets: &[Target], col: &str, against: Against) -> Option<f64> {
    targets.iter().find_map(|t| match (t.figure, t.limit) {
        (Figure::Col(Col::Named(c)), Limit::AtMost(l) | Limit::Below(l))
            if c == col && t.against == against =>
        {
            Some(l)
        }
        _ => None,
    })
}

/// The first goal in `targets` on column `col`.
pub fn goal_of(targets: &[Target], col: &str) -> Option<f64> {
    targets.iter().find_map(|t| match (t.figure, t.limit) {
        (Figure::Col(Col::Named(c)), Limit::Goal(g)) if c == col => Some(g),
        _ => None,
    })
}

/// The peers and limit of the first target in `targets` held to named
/// peers.
pub fn named_peers(targets: &[Target]) -> Option<(&'static [&'static str], f64)> {
    targets.iter().find_map(|t| match (t.against, t.limit) {
        (Against::Peers(p), Limit::AtMost(l) | Limit::Below(l)) => Some((p, l)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_cover_what_the_benches_run() {
        let rows = crate::suite::suite(crate::mode::Mode::Full);
        for r in &rows {
            let time = COMPARE_C
                .iter()
                .filter(|t| t.on.covers(r.id) && t.figure == Figure::Col(Col::Named(TIME)));
            assert_eq!(time.count(), 2, "row {} in the C view", r.id);
        }
        assert!(rows.iter().any(|r| r.id == "15" && r.peak_rss));
        assert_eq!(goal_of(compare(Api::Unsized), TIME), Some(0.95));
        assert_eq!(goal_of(compare(Api::Sized), TIME), None);
        for id in ["1", "1b"] {
            let on: Vec<&Target> = COMPARE.iter().filter(|t| t.on.covers(id)).collect();
            assert_eq!(on.len(), 1, "row {id}");
        }
        for r in &rows {
            let time = COMPARE
                .iter()
                .filter(|t| t.on.covers(r.id) && t.figure == Figure::Col(Col::Named(TIME)));
            assert!(time.count() >= 1, "row {} has no time target", r.id);
        }
        let specs = crate::memory::specs(crate::mode::Mode::Full);
        for t in MEMORY {
            let On::Ids(ids) = t.on else {
                panic!("memory targets name their scenarios")
            };
            assert!(ids.iter().all(|id| specs.iter().any(|s| s.id == *id)));
        }
        assert_eq!(limit_of(COMPARE, TIME, Against::BestPeer), Some(1.25));
        assert_eq!(limit_of(COMPARE, PEAK_RSS, Against::BestPeer), Some(1.2));
        assert_eq!(named_peers(COMPARE).map(|p| p.1), Some(1.1));
    }
}
