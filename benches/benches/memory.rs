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
//! cargo bench -p strata-benches --bench memory -- T3 decay  # only T3 and T6
//! ```
//!
//! Without `--bench` (which `cargo bench` passes), e.g. under
//! `cargo test --all-targets`, it does a few-second smoke run; `--full`
//! forces the full run. Results: `<target>/strata-bench/memory.csv` (and
//! `memory-summary.csv`).

use std::alloc::System;
use std::path::PathBuf;
use std::ptr::null_mut;
use std::time::Instant;

use mimalloc::MiMalloc;
use strata::Strata;
use strata_benches::child::{run_in_child, ChildResult};
use strata_benches::memory::report::{self, Outcome, ScenarioResult};
use strata_benches::memory::{self, targets, Hooks, Spec};
use strata_benches::report::output_dir;
use strata_benches::suite::Mode;
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

const STRATA_HOOKS: Hooks = Hooks {
    release: Some(strata_release),
    populate: Some(strata::populate),
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

struct Opts {
    mode: Mode,
    why: &'static str,
    csv: Option<PathBuf>,
    filters: Vec<String>,
}

const USAGE: &str = "usage: memory [--quick | --full | --smoke] [--csv PATH] [FILTER...]
  --quick     smaller counts, one run each, T6 for 2 s (also STRATA_BENCH_QUICK=1)
  --full      full run even without --bench
  --smoke     a few seconds, tiny counts (default without --bench, e.g. under cargo test)
  --csv PATH  CSV output (default: <target>/strata-bench/memory.csv)
  FILTER      run only matching scenarios: an id (T3) or part of a name (decay)";

fn parse_args() -> Opts {
    let env_quick = std::env::var("STRATA_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (mut quick, mut full, mut smoke, mut bench) = (env_quick, false, false, false);
    let (mut csv, mut filters) = (None, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--full" => full = true,
            "--smoke" => smoke = true,
            "--bench" => bench = true,
            "--csv" => csv = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => eprintln!("memory: ignoring unknown argument {s}"),
            s => filters.push(s.to_ascii_lowercase()),
        }
    }
    let (mode, why) = if smoke {
        (Mode::Smoke, "--smoke")
    } else if quick {
        let why = if env_quick {
            "STRATA_BENCH_QUICK"
        } else {
            "--quick"
        };
        (Mode::Quick, why)
    } else if full || bench {
        (Mode::Full, if full { "--full" } else { "cargo bench" })
    } else {
        (
            Mode::Smoke,
            "no --bench: assuming cargo test; pass --full for the real run",
        )
    };
    Opts {
        mode,
        why,
        csv,
        filters,
    }
}

fn selects(filters: &[String], spec: &Spec) -> bool {
    filters.is_empty()
        || filters
            .iter()
            .any(|f| spec.id.eq_ignore_ascii_case(f) || spec.name.to_ascii_lowercase().contains(f))
}

fn first_word(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn header(opts: &Opts, specs: &[Spec]) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let ids: Vec<&str> = specs.iter().map(|s| s.id).collect();
    println!(
        "strata-benches memory: {} mode ({}), scenarios {}",
        opts.mode.name(),
        opts.why,
        ids.join(" ")
    );
    println!(
        "{cpus} CPUs, Linux {}, THP {}, load average {}",
        first_word("/proc/sys/kernel/osrelease"),
        thp.trim(),
        first_word("/proc/loadavg")
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

/// Runs `spec` on every entry, `spec.reps` times each, interleaved with a
/// rotating start so slow drifts in machine load hit every allocator alike.
fn run_scenario(spec: &Spec) -> ScenarioResult {
    let list = entries(spec);
    let mut outcomes: Vec<Outcome> = list
        .iter()
        .map(|e| Outcome {
            alloc: e.name,
            runs: Vec::new(),
        })
        .collect();
    for rep in 0..spec.reps {
        for k in 0..list.len() {
            let i = (k + rep) % list.len();
            let run = list[i].run;
            let t = Instant::now();
            let r = run_in_child(spec.timeout, || run(spec));
            eprintln!(
                "  {} {:<20} run {}: {:.2} s{}",
                spec.id,
                list[i].name,
                rep + 1,
                t.elapsed().as_secs_f64(),
                r.as_ref()
                    .err()
                    .map_or(String::new(), |e| format!(" FAILED: {e}"))
            );
            outcomes[i].runs.push(r);
        }
    }
    ScenarioResult {
        spec: spec.clone(),
        outcomes,
    }
}

fn write(path: &PathBuf, text: &str) {
    let res = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text));
    match res {
        Ok(()) => println!("CSV: {}", path.display()),
        Err(e) => eprintln!("memory: could not write {}: {e}", path.display()),
    }
}

fn main() {
    let opts = parse_args();
    let specs: Vec<Spec> = memory::specs(opts.mode)
        .into_iter()
        .filter(|s| selects(&opts.filters, s))
        .collect();
    header(&opts, &specs);
    let started = Instant::now();
    let mut results = Vec::new();
    for spec in &specs {
        let result = run_scenario(spec);
        println!("{}", report::table(&result));
        results.push(result);
    }
    let verdicts = targets::evaluate(&results);
    println!("{}", targets::summary_table(&verdicts));

    let csv = opts.csv.clone().unwrap_or_else(|| {
        let name = if opts.mode == Mode::Smoke {
            "memory-smoke.csv"
        } else {
            "memory.csv"
        };
        output_dir().join(name)
    });
    write(&csv, &report::to_csv(&results, opts.mode.name()));
    write(
        &csv.with_file_name(format!(
            "{}-summary.csv",
            csv.file_stem()
                .map_or("memory".into(), |s| s.to_string_lossy())
        )),
        &targets::summary_csv(&verdicts, opts.mode.name()),
    );
    println!(
        "{} scenarios in {:.1} s ({} mode), load average now {}",
        results.len(),
        started.elapsed().as_secs_f64(),
        opts.mode.name(),
        first_word("/proc/loadavg")
    );
}
