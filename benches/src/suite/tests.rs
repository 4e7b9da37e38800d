//! Tests of [`super`].

use super::*;

#[test]
fn every_mode_has_every_row_once() {
    for mode in [Mode::Full, Mode::Quick, Mode::Smoke] {
        let rows = suite(mode);
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), 22);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 22, "duplicate row id in {mode:?}");
        assert!(rows
            .iter()
            .all(|r| r.reps >= 1 && r.budget >= mode.budget()));
    }
}

#[test]
fn smoke_suite_runs_on_system_and_strata() {
    for row in suite(Mode::Smoke) {
        for s in [
            row.run(&std::alloc::System, Deadline::never()),
            row.run(&strata::Strata, Deadline::never()),
        ] {
            assert_eq!(s.ops, s.planned, "row {}", row.id);
        }
    }
}
