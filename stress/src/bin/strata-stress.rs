//! The long mode of the stress suite: rounds of the stress engine for
//! `STRATA_STRESS_SECS` seconds (default 60), one progress line per round and
//! a summary at the end; exits non-zero on any failure.
//!
//! ```sh
//! STRATA_STRESS_SECS=600 cargo run --release -p strata-stress --bin strata-stress
//! ```
//!
//! `STRATA_STRESS_SEED` (decimal or `0x` hex) repeats a run's choices.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

fn main() -> ExitCode {
    let secs = match std::env::var("STRATA_STRESS_SECS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(s) => s,
            Err(_) => {
                eprintln!("strata-stress: STRATA_STRESS_SECS={v:?} is not a number of seconds");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => 60,
    };
    let seed = strata_stress::seed_from_env().unwrap_or_else(strata_stress::fresh_seed);
    let cfg = strata_stress::Config::long(seed, secs);
    println!(
        "strata-stress: long mode for {secs} s, {}..={} threads, live memory at most {} MiB, \
         seed {seed:#018x} (repeat with STRATA_STRESS_SEED={seed:#x})",
        cfg.min_threads,
        cfg.max_threads,
        cfg.budget >> 20
    );
    let result = std::panic::catch_unwind(|| strata_stress::run(&cfg, |r| println!("{r}")));
    match result {
        Ok(Ok(summary)) => {
            println!("strata-stress: PASSED\n{summary}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("strata-stress: FAILED: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("strata-stress: FAILED: a thread panicked (see above); seed {seed:#018x}");
            ExitCode::FAILURE
        }
    }
}
