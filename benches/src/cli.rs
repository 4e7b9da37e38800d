//! The command line both bench binaries take (`compare` and `memory`: the
//! mode, `--csv`, filters), and the facts about the machine their headers
//! print.

use std::path::PathBuf;

use crate::mode::Mode;

/// True when environment variable `key` is set to something other than ""
/// or "0".
pub fn env_on(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// What the command line asked for, beyond a bench's own flags.
#[derive(Clone, Debug)]
pub struct Args {
    /// How big a run.
    pub mode: Mode,
    /// Why that mode, for the header ("--quick", "cargo bench"...).
    pub why: &'static str,
    /// `--csv PATH`: where the CSV goes instead of the default.
    pub csv: Option<PathBuf>,
    /// The arguments that are not flags, as given.
    pub filters: Vec<String>,
}

/// Parses the process's arguments for bench `tool`.
///
/// `own` is offered every argument the common flags do not cover, with the
/// arguments after it (to take a value from), and says whether it was one
/// of the bench's own flags; any other `-` argument is reported and ignored,
/// and the rest are filters. `-h`/`--help` prints `usage` and exits.
/// Without `--bench` (which `cargo bench` passes), e.g. under `cargo test
/// --all-targets`, the mode is [`Mode::Smoke`] unless a flag says otherwise.
pub fn parse(
    tool: &str,
    usage: &str,
    mut own: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> bool,
) -> Args {
    let env_quick = env_on("STRATA_BENCH_QUICK");
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
                println!("{usage}");
                std::process::exit(0);
            }
            s if own(s, &mut args) => {}
            s if s.starts_with('-') => eprintln!("{tool}: ignoring unknown argument {s}"),
            s => filters.push(s.to_string()),
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
    Args {
        mode,
        why,
        csv,
        filters,
    }
}

/// The first word of a text file such as `/proc/loadavg` ("?" when it
/// cannot be read).
pub fn first_word(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The 1-minute load average: other work on the machine skews every number.
pub fn loadavg() -> String {
    first_word("/proc/loadavg")
}

/// The kernel release.
pub fn kernel() -> String {
    first_word("/proc/sys/kernel/osrelease")
}

/// The CPUs this process may run on (0 when unknown).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}
