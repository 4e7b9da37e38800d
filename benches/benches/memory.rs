//! Memory behaviour: strata's memory targets (T1..T8) measured side by side
//! with glibc (`std::alloc::System`), mimalloc and jemalloc.
//!
//! Every scenario runs for every allocator in a child process of its own
//! (`fork`, result back through a pipe, `_exit`), so RSS, page faults and the
//! allocator's internal state never leak from one allocator to the next. The
//! allocator under test is called directly through `GlobalAlloc`; this
//! binary's own global allocator stays the system one, and the parent never
//! touches strata, mimalloc or jemalloc.
//!
//! ```text
//! cargo bench -p strata-benches --bench memory              # full, ~2-3 min
//! cargo bench -p strata-benches --bench memory -- --quick   # ~30 s
//! cargo bench -p strata-benches --bench memory -- T3 decay  # only T3 and T6..T6f
//! cargo bench -p strata-benches --bench memory -- decay --write-docs  # also docs/plots/memory-decay.svg
//! ```
//!
//! Without `--bench` (which `cargo bench` passes), e.g. under
//! `cargo test --all-targets`, it does a few-second smoke run; `--full`
//! forces the full run. Results: the tables and a SUMMARY against the
//! targets of `strata_benches::targets::MEMORY` on stdout,
//! `<target>/strata-bench/memory.csv` and `memory-summary.csv`, and when
//! the decay scenarios ran, their RSS over time as
//! `<target>/strata-bench/memory-decay.svg`.

use std::alloc::System;
use std::ptr::null_mut;
use std::time::Instant;

use mimalloc::MiMalloc;
use strata::Strata;
use strata_benches::child::{run_interleaved, ChildResult};
use strata_benches::cli::{self, Args};
use strata_benches::judge::judge;
use strata_benches::memory::{self, Hooks, Kind, Spec};
use strata_benches::mode::Mode;
use strata_benches::plot;
use strata_benches::report::{self, scenarios, summary};
use strata_benches::results::ScenarioResult;
use strata_benches::targets;
use tikv_jemallocator::Jemalloc;

extern "C" {
    /// mimalloc's "return what you can to the OS" (the `mimalloc` crate does
    /// not re-export it; the C library it links has it).
    fn mi_collect(force: bool);
}

fn strata_release() {
    strata::release_free_memory();
}

fn glibc_release() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

fn mimalloc_release() {
    // SAFETY: mi_collect has no preconditions.
    unsafe { mi_collect(true) };
}

fn jemalloc_release() {
    for name in [c"thread.tcache.flush", c"arena.4096.purge"] {
        // SAFETY: both controls take no input and return nothing (all
        // pointers null); 4096 is MALLCTL_ARENAS_ALL.
        unsafe { tikv_jemalloc_sys::mallctl(name.as_ptr(), null_mut(), null_mut(), null_mut(), 0) };
    }
}

fn strata_background() {
    strata::start_background_release();
}

fn jemalloc_background() {
    let mut on = true;
    // SAFETY: `background_thread` takes a bool, read from `on`; nothing is
    // returned (old pointers null).
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"background_thread".as_ptr(),
            null_mut(),
            null_mut(),
            (&mut on as *mut bool).cast(),
            std::mem::size_of::<bool>(),
        )
    };
}

const STRATA_HOOKS: Hooks = Hooks {
    release: Some(strata_release),
    populate: Some(strata::populate),
    background: Some(strata_background),
};

/// One allocator configuration: runs a scenario in the current (child) process.
struct Entry {
    name: &'static str,
    release: &'static str,
    run: fn(&Spec) -> ChildResult,
}

const STRATA: Entry = Entry {
    name: "strata",
    release: "strata::release_free_memory()",
    run: |s| s.run(&Strata, &STRATA_HOOKS),
};
const STRATA_NO_DECAY: Entry = Entry {
    name: "strata (no decay)",
    release: "set_decay_ms(u64::MAX)",
    run: |s| {
        strata::set_decay_ms(u64::MAX);
        s.run(&Strata, &STRATA_HOOKS)
    },
};
const STRATA_NO_POPULATE: Entry = Entry {
    name: "strata (no populate)",
    release: "",
    run: |s| {
        let hooks = Hooks {
            populate: None,
            ..STRATA_HOOKS
        };
        s.run(&Strata, &hooks)
    },
};
const GLIBC: Entry = Entry {
    name: "glibc",
    release: "malloc_trim(0)",
    run: |s| {
        let hooks = Hooks {
            release: Some(glibc_release),
            populate: None,
            background: None,
        };
        s.run(&System, &hooks)
    },
};
const MIMALLOC: Entry = Entry {
    name: "mimalloc",
    release: "mi_collect(true)",
    run: |s| {
        let hooks = Hooks {
            release: Some(mimalloc_release),
            populate: None,
            background: None,
        };
        s.run(&MiMalloc, &hooks)
    },
};
const JEMALLOC: Entry = Entry {
    name: "jemalloc",
    release: "mallctl arena.<all>.purge",
    run: |s| {
        let hooks = Hooks {
            release: Some(jemalloc_release),
            populate: None,
            background: Some(jemalloc_background),
        };
        s.run(&Jemalloc, &hooks)
    },
};

/// Which allocators a scenario runs on.
fn entries(spec: &Spec) -> Vec<&'static Entry> {
    match spec.id {
        "T6" => vec![&STRATA, &STRATA_NO_DECAY, &GLIBC, &MIMALLOC, &JEMALLOC],
        "T7" => vec![&STRATA, &STRATA_NO_POPULATE, &GLIBC],
        _ => vec![&STRATA, &GLIBC, &MIMALLOC, &JEMALLOC],
    }
}

const USAGE: &str =
    "usage: memory [--quick | --full | --smoke] [--csv PATH] [--write-docs] [FILTER...]
  --quick       smaller counts, one run each, T6 for 2 s (also STRATA_BENCH_QUICK=1)
  --full        full run even without --bench
  --smoke       a few seconds, tiny counts (default without --bench, e.g. under cargo test)
  --csv PATH    CSV output (default: <target>/strata-bench/memory.csv)
  --write-docs  also copy the decay plot to docs/plots/ (also STRATA_BENCH_WRITE_DOCS=1)
  FILTER        run only matching scenarios: an id (T3) or part of a name (decay)";

/// A filter selects a scenario by id ("T3") or by a case-insensitive piece
/// of its name ("decay").
fn selects(filters: &[String], spec: &Spec) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| {
            spec.id.eq_ignore_ascii_case(f)
                || spec
                    .name
                    .to_ascii_lowercase()
                    .contains(&f.to_ascii_lowercase())
        })
}

fn header(args: &Args, specs: &[Spec]) {
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let ids: Vec<&str> = specs.iter().map(|s| s.id).collect();
    println!(
        "strata-benches memory: {} mode ({}), scenarios {}",
        args.mode.name(),
        args.why,
        ids.join(" ")
    );
    println!(
        "{} CPUs, Linux {}, THP {}, load average {}",
        cli::cpus(),
        cli::kernel(),
        thp.trim(),
        cli::loadavg()
    );
    let releases: Vec<String> = [&STRATA, &GLIBC, &MIMALLOC, &JEMALLOC]
        .iter()
        .map(|e| format!("{} = {}", e.name, e.release))
        .collect();
    println!("release: {}", releases.join(", "));
    println!(
        "Each (scenario, allocator, run) is a fresh child process; the allocator is called through \
         GlobalAlloc. Faults = getrusage ru_minflt deltas, RSS = VmRSS, peak = VmHWM after \
         clear_refs 5. Figures are medians over the runs; time spent in correctness checks is \
         excluded.\n"
    );
}

/// Runs `spec` on every entry, `spec.reps` times each, each run in a child
/// of its own, interleaved so slow drifts in machine load hit every
/// allocator alike.
fn run_scenario(spec: &Spec) -> ScenarioResult {
    let list = entries(spec);
    let names: Vec<&'static str> = list.iter().map(|e| e.name).collect();
    let run = |i: usize| (list[i].run)(spec);
    let progress = |i: usize, rep: usize, took: std::time::Duration, r: &ChildResult| {
        eprintln!(
            "  {} {:<20} run {}: {:.2} s{}",
            spec.id,
            names[i],
            rep + 1,
            took.as_secs_f64(),
            r.as_ref()
                .err()
                .map_or(String::new(), |e| format!(" FAILED: {e}"))
        );
    };
    ScenarioResult {
        spec: spec.clone(),
        outcomes: run_interleaved(&names, spec.reps, spec.timeout, run, progress),
    }
}

fn main() {
    let mut write_docs = cli::env_on("STRATA_BENCH_WRITE_DOCS");
    let args = cli::parse("memory", USAGE, |flag, _| {
        write_docs |= flag == "--write-docs";
        flag == "--write-docs"
    });
    let mode = args.mode;
    let specs: Vec<Spec> = memory::specs(mode)
        .into_iter()
        .filter(|s| selects(&args.filters, s))
        .collect();
    header(&args, &specs);
    let started = Instant::now();
    let mut results = Vec::new();
    for spec in &specs {
        let result = run_scenario(spec);
        println!("{}", scenarios::scenario_table(&result));
        results.push(result);
    }
    let verdicts = judge(&results, targets::MEMORY);
    println!("{}", summary::memory_summary(&verdicts));

    let csv = args
        .csv
        .clone()
        .unwrap_or_else(|| report::output_path(mode, "memory", "csv"));
    report::save_csv(
        "memory",
        &csv,
        &scenarios::scenarios_csv(&results, mode.name()),
    );
    let stem = csv
        .file_stem()
        .map_or("memory".into(), |s| s.to_string_lossy());
    report::save_csv(
        "memory",
        &csv.with_file_name(format!("{stem}-summary.csv")),
        &summary::memory_summary_csv(&verdicts, mode.name()),
    );
    write_decay_plot(mode, &results, write_docs);
    println!(
        "{} scenarios in {:.1} s ({} mode), load average now {}",
        results.len(),
        started.elapsed().as_secs_f64(),
        mode.name(),
        cli::loadavg()
    );
}

/// Draws the RSS over time of the decay scenarios that ran, and copies the
/// plot to docs/plots when asked.
fn write_decay_plot(mode: Mode, results: &[ScenarioResult], write_docs: bool) {
    let decay: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.spec.kind, Kind::Decay { .. }))
        .collect();
    if decay.is_empty() {
        return;
    }
    let title = format!(
        "strata-benches memory ({} mode): RSS after a freed 1 GiB burst, no release call",
        mode.name()
    );
    report::save_plot("memory", mode, "memory-decay", write_docs, |svg| {
        plot::decay_svg(svg, &decay, &title)
    });
}
