//! The strata main job: every workload of `strata_benches::suite` on strata,
//! glibc, mimalloc, jemalloc and tcmalloc (when the system has its shared
//! library), side by side in one process, each allocator called directly
//! (none of them is this binary's `#[global_allocator]`; the process itself
//! keeps the system allocator), and through two interfaces: Rust's
//! `GlobalAlloc` (glibc as `std::alloc::System`) and C's malloc/free
//! (`strata::raw`, glibc's `malloc`, `mi_malloc`, jemalloc's `malloc`,
//! `tc_malloc`; see `strata_benches::api`). Every repetition runs every
//! allocator through both, in rotating order.
//!
//! ```text
//! cargo bench -p strata-benches --bench compare              # full, 2-3 min
//! cargo bench -p strata-benches --bench compare -- --quick   # a third of that
//! STRATA_BENCH_QUICK=1 cargo bench -p strata-benches --bench compare
//! cargo bench -p strata-benches --bench compare -- 5 larson  # only rows whose id/title match
//! cargo bench -p strata-benches --bench compare -- --api c   # only the C view
//! cargo bench -p strata-benches --bench compare -- --write-docs  # also docs/plots/compare.svg
//! ```
//!
//! Rows with `peak_rss` (larson-like, xmalloc-test, mstress, rptest) also
//! run once per allocator and interface in a forked child of their own, for
//! each allocator's peak RSS. Those children are forked first, while this process is still
//! single-threaded and has not used any allocator under test; the timed
//! rows come after. Results: the tables and a SUMMARY per interface against
//! its targets (`strata_benches::targets::compare`) on stdout,
//! `<target>/strata-bench/results.csv`, `compare.svg` (Rust view) and
//! `compare-c.svg` (C view).
//!
//! Without `--bench` (which `cargo bench` passes), e.g. under
//! `cargo test --all-targets`, it does a few-second smoke run instead; `--full`
//! forces the full run. Unknown flags are ignored.

use std::alloc::{GlobalAlloc, System};
use std::ffi::c_void;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Instant;

use mimalloc::MiMalloc;
use strata::Strata;
use strata_benches::api::{Api, CMalloc, LibcMalloc, StrataMalloc, Unsized};
use strata_benches::cli::{self, Args};
use strata_benches::measure::{interleaved, Deadline};
use strata_benches::plot;
use strata_benches::report::{self, rows, summary};
use strata_benches::results::{AllocRuns, RowResult};
use strata_benches::rss::{self, PeakRss};
use strata_benches::suite::{self, Row, Runner};
use strata_benches::targets::{BASELINE, SUBJECT};
use strata_benches::tcmalloc::{self, Tcmalloc};
use tikv_jemallocator::Jemalloc;

/// mimalloc's C functions, from the library the `mimalloc` crate links.
#[derive(Clone, Copy)]
struct MiMallocC;

// SAFETY: mimalloc's own C functions (mimalloc.h).
unsafe impl CMalloc for MiMallocC {
    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        // SAFETY: mi_malloc accepts any size.
        unsafe { libmimalloc_sys::mi_malloc(size).cast() }
    }
    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        // SAFETY: mi_zalloc accepts any size (calloc(1, size)).
        unsafe { libmimalloc_sys::mi_zalloc(size).cast() }
    }
    #[inline(always)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        // SAFETY: a power-of-two alignment.
        unsafe { libmimalloc_sys::mi_malloc_aligned(size, align).cast() }
    }
    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: the caller's live block from mimalloc.
        unsafe { libmimalloc_sys::mi_realloc(p.cast::<c_void>(), size).cast() }
    }
    #[inline(always)]
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's block from mimalloc.
        unsafe { libmimalloc_sys::mi_free(p.cast::<c_void>()) }
    }
}

/// jemalloc's C functions, from the library `tikv-jemallocator` links (the
/// symbols carry its `_rjem_` prefix, so they do not replace glibc's).
#[derive(Clone, Copy)]
struct JemallocC;

// SAFETY: jemalloc's own C functions (jemalloc.h).
unsafe impl CMalloc for JemallocC {
    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        // SAFETY: malloc accepts any size.
        unsafe { tikv_jemalloc_sys::malloc(size).cast() }
    }
    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        // SAFETY: calloc accepts any sizes.
        unsafe { tikv_jemalloc_sys::calloc(1, size).cast() }
    }
    #[inline(always)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        // SAFETY: a power-of-two alignment; jemalloc does not require the
        // size to be a multiple of it.
        unsafe { tikv_jemalloc_sys::aligned_alloc(align, size).cast() }
    }
    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        // SAFETY: the caller's live block from jemalloc.
        unsafe { tikv_jemalloc_sys::realloc(p.cast::<c_void>(), size).cast() }
    }
    #[inline(always)]
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's block from jemalloc.
        unsafe { tikv_jemalloc_sys::free(p.cast::<c_void>()) }
    }
}

/// One allocator through one interface, as the main job runs it.
struct Entrant {
    alloc: &'static str,
    api: Api,
    run: Box<Runner>,
}

/// `alloc` through `api`: `sized` itself, or `c` seen through C's
/// functions.
fn entrant<A, C>(alloc: &'static str, api: Api, sized: A, c: C) -> Entrant
where
    A: GlobalAlloc + Sync + 'static,
    C: CMalloc + 'static,
{
    let run: Box<Runner> = match api {
        Api::Sized => Box::new(move |row: &Row, dl| row.run(&sized, dl)),
        Api::Unsized => {
            let c = Unsized(c);
            Box::new(move |row: &Row, dl| row.run(&c, dl))
        }
    };
    Entrant { alloc, api, run }
}

/// Every allocator through each interface in `apis`, the subject first;
/// tcmalloc when its library loaded.
fn entrants(apis: &[Api], tc: Option<&'static Tcmalloc>) -> Vec<Entrant> {
    let mut all = Vec::new();
    for &api in apis {
        all.push(entrant(SUBJECT, api, Strata, StrataMalloc));
        all.push(entrant(BASELINE, api, System, LibcMalloc));
        all.push(entrant("mimalloc", api, MiMalloc, MiMallocC));
        all.push(entrant("jemalloc", api, Jemalloc, JemallocC));
        if let Some(tc) = tc {
            all.push(entrant("tcmalloc", api, tc, tc));
        }
    }
    all
}

/// `(name, runner)` of the entrants through `api`.
fn through(entrants: &[Entrant], api: Api) -> Vec<(&'static str, &Runner)> {
    entrants
        .iter()
        .filter(|e| e.api == api)
        .map(|e| (e.alloc, &*e.run))
        .collect()
}

struct Opts {
    args: Args,
    reps: Option<usize>,
    write_docs: bool,
    peak_rss: bool,
    apis: Vec<Api>,
}

const USAGE: &str =
    "usage: compare [--quick | --full | --smoke] [--reps N] [--csv PATH] [--api rust|c] [FILTER...]
  --quick        about a third of the full run (also STRATA_BENCH_QUICK=1)
  --full         full run even without --bench
  --smoke        a few seconds, tiny counts (default when run without --bench, e.g. by cargo test)
  --reps N       repetitions per allocator on every row
  --csv PATH     CSV output (default: <target>/strata-bench/results.csv)
  --api rust|c   only the Rust view (GlobalAlloc) or only the C view (malloc/free); default both
  --write-docs   also copy the plots to docs/plots/ (also STRATA_BENCH_WRITE_DOCS=1)
  --no-rss       skip the per-allocator child runs for peak RSS
  FILTER         run only matching rows: an id (4b), a number (5 = 5a..5d) or part of a name (calloc)";

fn parse_args() -> Opts {
    let (mut reps, mut write_docs, mut peak_rss) =
        (None, cli::env_on("STRATA_BENCH_WRITE_DOCS"), true);
    let mut apis = Api::ALL.to_vec();
    let args = cli::parse("compare", USAGE, |flag, rest| {
        match flag {
            "--reps" => reps = rest.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0),
            "--write-docs" => write_docs = true,
            "--no-rss" => peak_rss = false,
            "--api" => {
                let want = rest.next().unwrap_or_default();
                apis = Api::ALL.into_iter().filter(|a| a.label() == want).collect();
                if apis.is_empty() {
                    eprintln!("compare: --api takes rust or c, not {want:?}; running both");
                    apis = Api::ALL.to_vec();
                }
            }
            _ => return false,
        }
        true
    });
    Opts {
        args,
        reps,
        write_docs,
        peak_rss,
        apis,
    }
}

/// Runs `row` on every entrant, `reps` times each, interleaved
/// ([`interleaved`]): every allocator through every interface in one
/// rotation. An entrant whose run hits the budget is not repeated on this
/// row. `rss(api)` is the row's peak RSS through `api` from the child runs
/// (empty when not measured). One result per interface.
fn run_row(
    row: &Row,
    entrants: &[Entrant],
    apis: &[Api],
    mut rss: impl FnMut(Api) -> Vec<PeakRss>,
) -> Vec<RowResult> {
    let mut runs: Vec<AllocRuns> = entrants
        .iter()
        .map(|e| AllocRuns {
            alloc: e.alloc,
            samples: Vec::with_capacity(row.reps),
        })
        .collect();
    let mut stop = vec![false; entrants.len()];
    for (_, i) in interleaved(entrants.len(), row.reps) {
        if stop[i] {
            continue;
        }
        let run = || (entrants[i].run)(row, Deadline::after(row.budget));
        let sample = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|e| {
            eprintln!(
                "compare: row {} on {} ({} view) panicked (message above)",
                row.id,
                entrants[i].alloc,
                entrants[i].api.label()
            );
            resume_unwind(e)
        });
        stop[i] = sample.truncated();
        runs[i].samples.push(sample);
    }
    apis.iter()
        .map(|&api| RowResult {
            row: row.clone(),
            api,
            allocs: entrants
                .iter()
                .zip(&runs)
                .filter(|(e, _)| e.api == api)
                .map(|(_, r)| r.clone())
                .collect(),
            rss: rss(api),
        })
        .collect()
}

/// Runs every `peak_rss` row on every entrant (`reps` times each) in a
/// child of its own: per row, the peak RSS per interface. Must run before
/// anything else uses an allocator under test.
fn peak_rss_runs(
    rows: &[Row],
    entrants: &[Entrant],
    apis: &[Api],
    reps: usize,
) -> Vec<Vec<(Api, Vec<PeakRss>)>> {
    rows.iter()
        .map(|row| {
            if !row.peak_rss || reps == 0 {
                return Vec::new();
            }
            let t = Instant::now();
            let rss = apis
                .iter()
                .map(|&api| (api, rss::measure(row, &through(entrants, api), reps)))
                .collect();
            eprintln!(
                "  (row {} peak RSS, {reps} child run(s) per allocator and view: {:.1} s)",
                row.id,
                t.elapsed().as_secs_f64()
            );
            rss
        })
        .collect()
}

/// Writes the plot of one view's results as `name`.svg, and copies it to
/// docs/plots when asked.
fn write_plot(opts: &Opts, results: &[RowResult], api: Api) {
    let mode = opts.args.mode;
    let name = match api {
        Api::Sized => "compare".to_string(),
        Api::Unsized => format!("compare-{}", api.label()),
    };
    let title = format!(
        "strata-benches compare ({} mode, {}): time relative to the fastest allocator",
        mode.name(),
        api.title()
    );
    let view: Vec<RowResult> = results.iter().filter(|r| r.api == api).cloned().collect();
    report::save_plot("compare", mode, &name, opts.write_docs, |svg| {
        plot::compare_svg(svg, &view, &title)
    });
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

fn header(opts: &Opts, entrants: &[Entrant], rows: &[Row]) {
    let mut names: Vec<&str> = Vec::new();
    for e in entrants {
        if !names.contains(&e.alloc) {
            names.push(e.alloc);
        }
    }
    let views: Vec<&str> = opts.apis.iter().map(|a| a.title()).collect();
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
    println!("views: {}", views.join("; "));
    println!(
        "All allocators share ONE process and are called directly, through each view's interface; per \
         repetition every allocator runs once through each (rotating order); ns/op is the median over \
         repetitions.\n\
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
    // Loaded before any child is forked, so that every child has it.
    let tc = match Tcmalloc::load() {
        Ok(tc) => Some(tc),
        Err(e) => {
            println!(
                "tcmalloc: not run ({e}); Debian/Ubuntu: apt-get install libtcmalloc-minimal4 \
                 (it is opened at run time from {})",
                tcmalloc::LIBRARY
            );
            None
        }
    };
    let entrants = entrants(&opts.apis, tc);
    let filters = &opts.args.filters;
    let rows: Vec<Row> = suite::suite(mode)
        .into_iter()
        .filter(|r| filters.is_empty() || filters.iter().any(|f| selects(f, r)))
        .map(|mut r| {
            r.reps = opts.reps.unwrap_or(r.reps);
            r
        })
        .collect();
    header(&opts, &entrants, &rows);

    let started = Instant::now();
    let rss_reps = if opts.peak_rss { mode.pick(3, 1, 1) } else { 0 };
    let mut rss = peak_rss_runs(&rows, &entrants, &opts.apis, rss_reps).into_iter();
    let mut results = Vec::new();
    for row in &rows {
        let t = Instant::now();
        let mut peaks = rss.next().unwrap_or_default();
        let take = |api| {
            let i = peaks.iter().position(|(a, _)| *a == api);
            i.map_or_else(Vec::new, |i| peaks.swap_remove(i).1)
        };
        for result in run_row(row, &entrants, &opts.apis, take) {
            println!("{}", rows::row_table(&result));
            results.push(result);
        }
        eprintln!("  (row {} took {:.1} s)", row.id, t.elapsed().as_secs_f64());
    }
    println!("{}", summary::compare_summary(&results));

    let csv = opts
        .args
        .csv
        .clone()
        .unwrap_or_else(|| report::output_path(mode, "results", "csv"));
    report::save_csv("compare", &csv, &rows::rows_csv(&results, mode.name()));
    for &api in &opts.apis {
        write_plot(&opts, &results, api);
    }
    println!(
        "{} rows x {} allocators x {} views in {:.1} s ({} mode), load average now {}",
        rows.len(),
        entrants.len() / opts.apis.len().max(1),
        opts.apis.len(),
        started.elapsed().as_secs_f64(),
        mode.name(),
        cli::loadavg()
    );
}
