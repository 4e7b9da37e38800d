//! What strata catches, through the C ABI: every probe of `tests/c/probes.c`
//! (double frees, invalid frees, overflows, writes after free, ...) runs in
//! a process of its own under `LD_PRELOAD` of the library under test, and
//! its verdict must be the one expected of this build: the default build
//! (`cargo test -p strata-malloc --test probes`) or the checked build
//! (`... --features checked`). The table of docs/safety.md, beside glibc and
//! the peers, comes from `tests/probes.sh`.
//!
//! The preload reaches the probe alone: the shell and `timeout` that start
//! it run on glibc, so a report or a crash is the probe's. Each probe also
//! runs clean (no preload, glibc's `malloc`) as a control, and the test
//! prints both columns and their scores (`-- --nocapture`): what strata
//! catches beside what glibc does, in one run.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{run, tail, Alloc, Scratch};

/// What a probe's process must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Ran to its end, nothing said.
    Silent,
    /// Stopped by strata with this message after `strata: free(0x...): `.
    Reported(&'static str),
    /// Killed by this signal (a guard page).
    Signal(i32),
    /// Not asserted: depends on more than the build (see the table's note).
    Either,
}

use Expect::{Either, Reported, Signal, Silent};

const NEVER: Expect = Reported("pointer was never allocated by strata");
const INSIDE: Expect = Reported("pointer is inside a block, not at its start");
const DOUBLE: Expect = Reported("block is not allocated (double free?)");
const OVERFLOW: Expect = Reported("bytes past the end of the block were written (heap overflow)");
const WRITTEN: Expect = Reported("freed memory was written (use after free)");

/// Each probe with its verdict in the default build and in the checked
/// build. A change of what strata catches shows here first: update the row,
/// and the table of docs/safety.md (`tests/probes.sh`).
const PROBES: &[(&str, Expect, Expect)] = &[
    ("double_free_immediate", DOUBLE, DOUBLE),
    ("double_free_interleaved", DOUBLE, DOUBLE),
    ("double_free_4k", DOUBLE, DOUBLE),
    ("double_free_after_other_sizes", DOUBLE, DOUBLE),
    ("double_free_large", DOUBLE, DOUBLE),
    ("free_stack", NEVER, NEVER),
    ("free_static", NEVER, NEVER),
    ("free_interior", INSIDE, INSIDE),
    ("free_past_last_object", INSIDE, INSIDE),
    ("overflow_1", Silent, OVERFLOW),
    ("overflow_32", Silent, OVERFLOW),
    // Default build: whether the run past the block meets unmapped memory
    // depends on how far the heap has grown, not on a check.
    ("overrun_1m_large", Either, Signal(libc::SIGSEGV)),
    ("uaf_write_then_malloc", Silent, WRITTEN),
    ("zero_size_write", Silent, OVERFLOW),
    ("zero_size_double_free", DOUBLE, DOUBLE),
    ("realloc_freed", DOUBLE, DOUBLE),
];

fn expected(row: &(&str, Expect, Expect)) -> Expect {
    if cfg!(feature = "checked") {
        row.2
    } else {
        row.1
    }
}

fn probes_binary(dir: &Path) -> std::path::PathBuf {
    common::require("cc", "apt-get install gcc libc6-dev");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/probes.c");
    let exe = dir.join("probes");
    common::compile_c(&src, &exe, &[]);
    exe
}

/// Runs probe `name` of `exe` in a process of its own, with strata preloaded
/// into it (`strata`) or not, and `env` set: the shell and `timeout` that
/// start it never get the preload. A probe that hangs (a deadlock after a
/// corrupted heap) is killed after 60 s (exit 124); no core files.
fn run_probe(exe: &Path, name: &str, strata: bool, env: &[(&str, &str)]) -> Output {
    let preload = if strata {
        common::strata_so()
            .to_str()
            .expect("a UTF-8 path")
            .to_owned()
    } else {
        String::new()
    };
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        r#"ulimit -c 0
if [ -n "$0" ]; then exec timeout 60 env LD_PRELOAD="$0" "$1" "$2"; fi
exec timeout 60 "$1" "$2""#,
    ])
    .arg(preload)
    .arg(exe)
    .arg(name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Glibc: the shell's own environment has no LD_PRELOAD.
    run(&mut cmd, Alloc::Glibc, None).0
}

/// What a probe's run shows, in the words of `tests/probes.sh` and of the
/// table in docs/safety.md: "yes (SIGABRT, message)", "no", "hang", ...
fn verdict(out: &Output) -> String {
    let msg = if out.stderr.is_empty() {
        ""
    } else {
        ", message"
    };
    let completed = String::from_utf8_lossy(&out.stdout).contains("completed");
    match (out.status.code(), out.status.signal()) {
        (Some(124), _) => "hang".into(),
        (_, Some(sig)) => format!("yes ({}{msg})", signal_name(sig)),
        (Some(0), _) if !out.stderr.is_empty() => "yes (message)".into(),
        (Some(0), _) if completed => "no".into(),
        (Some(0), _) => "? (exit 0, no output)".into(),
        (Some(rc), _) => format!("yes (exit {rc}{msg})"),
        (None, None) => "?".into(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGTRAP => "SIGTRAP".into(),
        libc::SIGFPE => "SIGFPE".into(),
        _ => format!("signal {sig}"),
    }
}

#[test]
fn every_probe_is_listed_here() {
    let dir = Scratch::new("probes-list");
    let exe = probes_binary(dir.path());
    let (out, _) = run(Command::new(&exe).arg("list"), Alloc::Glibc, None);
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let here: Vec<&str> = PROBES.iter().map(|r| r.0).collect();
    assert_eq!(listed, here);
}

#[test]
fn strata_catches_what_this_build_should() {
    let dir = Scratch::new("probes");
    let exe = probes_binary(dir.path());
    let build = if cfg!(feature = "checked") {
        "strata checked"
    } else {
        "strata"
    };
    let mut wrong = Vec::new();
    let mut table = format!("| probe | clean (glibc) | {build} |\n|---|---|---|\n");
    let (mut glibc_caught, mut strata_caught) = (0, 0);
    for row in PROBES {
        let (name, want) = (row.0, expected(row));
        // The control: the same probe with no preload. It must end (no
        // hang) and say nothing of strata's: a sign the preload reached
        // only the runs meant to have it.
        let clean = run_probe(&exe, name, false, &[]);
        let clean_verdict = verdict(&clean);
        if clean_verdict == "hang" || String::from_utf8_lossy(&clean.stderr).contains("strata") {
            wrong.push(format!(
                "{name}, clean (control): {clean_verdict}\n  stderr: {}",
                tail(&clean.stderr).trim()
            ));
        }
        let out = run_probe(&exe, name, true, &[]);
        let strata_verdict = verdict(&out);
        glibc_caught += clean_verdict.starts_with("yes") as usize;
        strata_caught += strata_verdict.starts_with("yes") as usize;
        table += &format!("| `{name}` | {clean_verdict} | {strata_verdict} |\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let completed = String::from_utf8_lossy(&out.stdout).contains("completed");
        let ok = out.status.code() != Some(124)
            && match want {
                Silent => out.status.success() && completed && stderr.is_empty(),
                Reported(msg) => {
                    out.status.signal() == Some(libc::SIGABRT)
                        && stderr.contains("strata: free(0x")
                        && stderr.contains(&format!("): {msg}\n"))
                }
                Signal(sig) => out.status.signal() == Some(sig),
                Either => true,
            };
        if !ok {
            wrong.push(format!(
                "{name}: expected {want:?}, got {:?}{}\n  stderr: {}",
                out.status,
                if completed { " (ran to its end)" } else { "" },
                tail(&out.stderr).trim()
            ));
        }
    }
    println!(
        "{table}\ncaught: clean (glibc) {glibc_caught} of {n}, {build} {strata_caught} of {n}",
        n = PROBES.len()
    );
    assert!(
        wrong.is_empty(),
        "{build}: {} probe(s) not as expected (if strata now catches more, \
         update PROBES and docs/safety.md):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// With guarded sampling at a rate of 1 (every small allocation guarded
/// while a slot is free), the probes on small blocks are stopped with a
/// report of the guarded pool, whichever end of its page a block went to:
/// a fault at the guard page (`SIGSEGV`) or a check on free (`SIGABRT`).
#[test]
fn guarded_sampling_catches_small_block_misuse() {
    let dir = Scratch::new("probes-guarded");
    let exe = probes_binary(dir.path());
    let caught = [
        "double_free_immediate",
        "double_free_interleaved",
        "double_free_after_other_sizes",
        "overflow_1",
        "overflow_32",
        "uaf_write_then_malloc",
        "realloc_freed",
    ];
    let mut wrong = Vec::new();
    for name in caught {
        let out = run_probe(
            &exe,
            name,
            true,
            &[
                ("STRATA_GUARDED_RATE", "1"),
                ("STRATA_GUARDED_MAX_PER_SEC", "unlimited"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stopped = matches!(out.status.signal(), Some(libc::SIGSEGV | libc::SIGABRT));
        if !stopped
            || !stderr.contains("strata: guarded block: ")
            || !stderr.contains("strata: allocated by thread ")
        {
            wrong.push(format!(
                "{name}: {:?}\n  stderr: {}",
                out.status,
                tail(&out.stderr).trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
