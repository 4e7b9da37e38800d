//! The strata main job: every workload of `strata_benches::suite` on strata,
//! glibc (`std::alloc::System`), mimalloc and jemalloc, side by side in one
//! process, each allocator called directly through `GlobalAlloc` (none of
//! them is this binary's `#[global_allocator]`; the process itself keeps the
//! system allocator).
//!
//! ```text
//! cargo bench -p strata-benches --bench compare              # full, ~1 min
//! cargo bench -p strata-benches --bench compare -- --quick   # ~20 s
//! STRATA_BENCH_QUICK=1 cargo bench -p strata-benches --bench compare
//! cargo bench -p strata-benches --bench compare -- 5 larson  # only rows whose id/title match
//! cargo bench -p strata-benches --bench compare -- --write-docs  # also docs/plots/compare.svg
//! ```
//!
//! Rows with `peak_rss` (larson-like, xmalloc-test, mstress) also run once
//! per allocator in a forked child of their own, for each allocator's peak
//! RSS. Those children are forked first, while this process is still
//! single-threaded and has not used any allocator under test; the timed
//! rows come after. Results: the tables and a SUMMARY against the targets
//! of `strata_benches::targets::COMPARE` on stdout,
//! `<target>/strata-bench/results.csv` and `compare.svg`.
//!
//! Without `--bench` (which `cargo bench` passes), e.g. under
//! `cargo test --all-targets`, it does a few-second smoke run instead; `--full`
//! forces the full run. Unknown flags are ignored.

use std::alloc::{GlobalAlloc, System};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use mimalloc::MiMalloc;
use strata::Strata;
use strata_benches::cli::{self, Args};
use strata_benches::measure::{interleaved, Deadline, Sample};
use strata_benches::plot;
use strata_benches::report::{self, rows, summary};
use strata_benches::results::{AllocRuns, RowResult};
use strata_benches::rss::{self, PeakRss};
use strata_benches::suite::{self, Row, Runner};
use strata_benches::targets::{BASELINE, SUBJECT};
use tikv_jemallocator::Jemalloc;

static STRATA: Strata = Strata;
static GLIBC: System = System;
static MIMALLOC: MiMalloc = MiMalloc;
static JEMALLOC: Jemalloc = Jemalloc;

fn run_with<A: GlobalAlloc + Sync>(a: &'static A) -> impl Fn(&Row, Deadline) -> Sample {
    move |row, dl| row.run(a, dl)
}

struct Opts {
    args: Args,
    reps: Option<usize>,
    write_docs: bool,
    peak_rss: bool,
}

const USAGE: &str =
    "usage: compare [--quick | --full | --smoke] [--reps N] [--csv PATH] [FILTER...]
  --quick        ~20 s run (also STRATA_BENCH_QUICK=1)
  --full         full run even without --bench
  --smoke        a few seconds, tiny counts (default when run without --bench, e.g. by cargo test)
  --reps N       repetitions per allocator on every row
  --csv PATH     CSV output (default: <target>/strata-bench/results.csv)
  --write-docs   also copy the plot to docs/plots/compare.svg (also STRATA_BENCH_WRITE_DOCS=1)
  --no-rss       skip the per-allocator child runs for peak RSS
  FILTER         run only matching rows: an id (4b), a number (5 = 5a..5d) or part of a name (calloc)";

fn parse_args() -> Opts {
    let (mut reps, mut write_docs, mut peak_rss) =
        (None, cli::env_on("STRATA_BENCH_WRITE_DOCS"), true);
    let args = cli::parse("compare", USAGE, |flag, rest| {
        match flag {
            "--reps" => reps = rest.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0),
            "--write-docs" => write_docs = true,
            "--no-rss" => peak_rss = false,
            _ => return false,
        }
        true
    });
    Opts {
        args,
        reps,
        write_docs,
        peak_rss,
    }
}

/// Runs `row` on every allocator, `reps` times each, interleaved
/// ([`interleaved`]). An allocator whose run hits the budget is not
/// repeated on this row. `rss` is the row's peak RSS from the child runs
/// (empty when not measured).
fn run_row(row: &Row, allocs: &[(&'static str, &Runner)], rss: Vec<PeakRss>) -> RowResult {
    let mut runs: Vec<AllocRuns> = allocs
        .iter()
        .map(|&(alloc, _)| AllocRuns {
            alloc,
            samples: Vec::with_capacity(row.reps),
        })
        .collect();
    let mut stop = vec![false; allocs.len()];
    for (_, i) in interleaved(allocs.len(), row.reps) {
        if stop[i] {
            continue;
        }
        let run = || (allocs[i].1)(row, Deadline::after(row.budget));
        let sample = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|e| {
            eprintln!(
                "compare: row {} on {} panicked (message above)",
                row.id, allocs[i].0
            );
            resume_unwind(e)
        });
        stop[i] = sample.truncated();
        runs[i].samples.push(sample);
    }
    RowResult {
        row: row.clone(),
        allocs: runs,
        rss,
    }
}

/// Runs every `peak_rss` row on every allocator (`reps` times each) in a
/// child of its own. Must run before anything else uses an allocator under
/// test.
fn peak_rss_runs(
    rows: &[Row],
    allocs: &[(&'static str, &Runner)],
    reps: usize,
) -> Vec<Vec<PeakRss>> {
    rows.iter()
        .map(|row| {
            if !row.peak_rss || reps == 0 {
                return Vec::new();
            }
            let t = Instant::now();
            let rss = rss::measure(row, allocs, reps);
            eprintln!(
                "  (row {} peak RSS, {reps} child run(s) per allocator: {:.1} s)",
                row.id,
                t.elapsed().as_secs_f64()
            );
            rss
        })
        .collect()
}

/// Writes the plot, and copies it to docs/plots when asked.
fn write_plot(opts: &Opts, results: &[RowResult]) {
    let mode = opts.args.mode;
    let svg = report::output_path(mode, "compare", "svg");
    let title = format!(
        "strata-benches compare ({} mode): time relative to the fastest allocator, per workload",
        mode.name()
    );
    let written = std::fs::create_dir_all(report::output_dir())
        .map_err(|e| e.to_string())
        .and_then(|()| plot::compare_svg(&svg, results, &title));
    if let Err(e) = written {
        eprintln!("compare: {e}");
        return;
    }
    println!("plot: {}", svg.display());
    if opts.write_docs {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plots");
        let copied = std::fs::create_dir_all(&docs)
            .and_then(|()| std::fs::copy(&svg, docs.join("compare.svg")));
        match copied {
            Ok(_) => println!("plot copied to {}", docs.join("compare.svg").display()),
            Err(e) => eprintln!(
                "compare: could not copy the plot to {}: {e}",
                docs.display()
            ),
        }
    }
}

/// A filter selects a row by id ("4b"), by number ("5" = 5a..5d), or by a
/// case-insensitive piece of its name or title ("larson", "calloc").
fn selects(filter: &str, row: &Row) -> bool {
    let f = filter.to_ascii_lowercase();
    if f.chars().all(|c| c.is_ascii_digit()) {
        return row.id.trim_end_matches(|c: char| c.is_ascii_alphabetic()) == f;
    }
    row.id == f
        || row.name.to_ascii_lowercase().contains(&f)
        || row.title.to_ascii_lowercase().contains(&f)
}

fn header(opts: &Opts, allocs: &[(&'static str, &Runner)], rows: &[Row]) {
    let names: Vec<&str> = allocs.iter().map(|a| a.0).collect();
    let m = opts.args.mode;
    let reps = opts
        .reps
        .map_or(format!("{} reps (fewer on heavy rows)", m.reps()), |r| {
            format!("{r} reps")
        });
    let longer: Vec<String> = rows
        .iter()
        .filter(|r| r.budget != m.budget())
        .map(|r| format!("row {}: {:?}", r.id, r.budget))
        .collect();
    let longer = if longer.is_empty() {
        String::new()
    } else {
        format!(" ({})", longer.join(", "))
    };
    println!(
        "strata-benches compare: {} mode ({}), {reps}, budget per run {:?}{longer}",
        m.name(),
        opts.args.why,
        m.budget()
    );
    println!(
        "allocators: {} | {} CPUs, Linux {}, load average {}",
        names.join(", "),
        cli::cpus(),
        cli::kernel(),
        cli::loadavg()
    );
    println!(
        "All allocators share ONE process and are called directly through GlobalAlloc; per repetition \
         every allocator runs once (rotating order); ns/op is the median over repetitions.\n\
         faults/op and cpu time are whole-process getrusage deltas. \"RSS delta\" is the process's RSS \
         growth during a run (peak VmHWM minus VmRSS at start, max over runs): memory an allocator kept \
         from earlier rows is not counted again, so it is NOT that allocator's peak RSS. \"peak RSS \
         alone\" is: the row run by that allocator alone in a forked child, VmHWM (after clear_refs 5) \
         at its end, median of the child runs; \"its growth\" = that peak minus the child's RSS when \
         the workload started. * = best median on the row.\n"
    );
}

fn main() {
    let opts = parse_args();
    let mode = opts.args.mode;
    let allocs: [(&'static str, &Runner); 4] = [
        (SUBJECT, &run_with(&STRATA)),
        (BASELINE, &run_with(&GLIBC)),
        ("mimalloc", &run_with(&MIMALLOC)),
        ("jemalloc", &run_with(&JEMALLOC)),
    ];
    let filters = &opts.args.filters;
    let rows: Vec<Row> = suite::suite(mode)
        .into_iter()
        .filter(|r| filters.is_empty() || filters.iter().any(|f| selects(f, r)))
        .map(|mut r| {
            r.reps = opts.reps.unwrap_or(r.reps);
            r
        })
        .collect();
    header(&opts, &allocs, &rows);

    let started = Instant::now();
    let rss_reps = if opts.peak_rss { mode.pick(3, 1, 1) } else { 0 };
    let mut rss = peak_rss_runs(&rows, &allocs, rss_reps).into_iter();
    let mut results = Vec::new();
    for row in &rows {
        let t = Instant::now();
        let result = run_row(row, &allocs, rss.next().unwrap_or_default());
        println!("{}", rows::row_table(&result));
        eprintln!("  (row {} took {:.1} s)", row.id, t.elapsed().as_secs_f64());
        results.push(result);
    }
    println!("{}", summary::compare_summary(&results));

    let csv = opts
        .args
        .csv
        .clone()
        .unwrap_or_else(|| report::output_path(mode, "results", "csv"));
    report::save_csv("compare", &csv, &rows::rows_csv(&results, mode.name()));
    write_plot(&opts, &results);
    println!(
        "{} rows x {} allocators in {:.1} s ({} mode), load average now {}",
        results.len(),
        allocs.len(),
        started.elapsed().as_secs_f64(),
        mode.name(),
        cli::loadavg()
    );
}
