//! Real programs under `LD_PRELOAD=libstrata_malloc.so`, each compared with
//! the same run on glibc's allocator: CPython running some of its own test
//! suite, sqlite3 building and querying an indexed table, and git committing,
//! packing and checking a repository of a few thousand files.
//!
//! A missing program fails the test with what to install: these are the
//! allocator's acceptance tests, and a silent skip would hide a gap.

mod common;

use common::{assert_success, require, run, Alloc, Scratch};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

// ---- CPython ---------------------------------------------------------------

/// Test modules of CPython's own suite: containers, strings, regular
/// expressions, JSON, threads. About 20 s per run here.
/// `STRATA_PYTHON_TESTS` (modules separated by spaces or commas) runs others
/// instead: the kernel matrix runs three, as emulation is slow.
const PYTHON_TESTS: &[&str] = &[
    "test_list",
    "test_dict",
    "test_set",
    "test_unicode",
    "test_json",
    "test_re",
    "test_threading",
    "test_bytes",
    "test_struct",
    "test_collections",
];

/// The verdict part of a `python -m test` report: everything from the
/// "== Tests result" line on, without the line that holds the duration.
fn python_verdict(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("== Tests result:"))
        .unwrap_or_else(|| panic!("no test result in:\n{}", common::tail(&out.stdout)));
    lines[start..]
        .iter()
        .filter(|l| !l.starts_with("Total duration:") && !l.trim().is_empty())
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn cpython_test_suite_matches_glibc() {
    require("python3", "apt-get install python3");
    let probe = Command::new("python3")
        .args(["-c", "import test.libregrtest"])
        .status()
        .expect("running python3");
    assert!(
        probe.success(),
        "python3's `test` package is missing; install it: apt-get install libpython3-testsuite \
         (or python3.X-testsuite / libpython3.X-testsuite for your version)"
    );
    let python_tests: Vec<String> = match std::env::var("STRATA_PYTHON_TESTS") {
        Ok(list) => list
            .split([' ', ','])
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect(),
        Err(_) => PYTHON_TESTS.iter().map(|m| m.to_string()).collect(),
    };
    assert!(
        !python_tests.is_empty(),
        "STRATA_PYTHON_TESTS names no module"
    );
    let mut verdicts = Vec::new();
    for alloc in [Alloc::Glibc, Alloc::Strata] {
        let dir = Scratch::new("python");
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "test", "--timeout", "300"])
            // Fails under any allocator where the interpreter imports
            // `threading` at start-up (pyenv's builds do): about the
            // environment, not the allocator.
            .args(["-i", "test_import_from_another_thread"])
            .args(&python_tests)
            .current_dir(dir.path())
            .env("TMPDIR", dir.path());
        let (out, took) = run(&mut cmd, alloc, None);
        eprintln!("python3 -m test under {alloc:?}: {took:?}");
        assert_no_strata_report(&out);
        // Both runs must pass, not merely agree: two failures that look
        // alike (a module missing, a test broken by the environment) would
        // otherwise hide whatever strata does wrong.
        assert_success("python3 -m test", alloc, &out);
        let verdict = python_verdict(&out);
        assert!(
            verdict.iter().any(|l| l.contains("SUCCESS")),
            "python3 -m test under {alloc:?} did not report SUCCESS:\n{}",
            verdict.join("\n")
        );
        verdicts.push(verdict);
    }
    assert_eq!(
        verdicts[0], verdicts[1],
        "python3 -m test: glibc (left) and strata (right) disagree"
    );
}

// ---- sqlite3 ---------------------------------------------------------------

/// The workload: 300 000 rows from a recursive CTE, three indexes,
/// aggregates, a self-join, updates and deletes, and an integrity check.
const SQL: &str = include_str!("data/workload.sql");

#[test]
fn sqlite3_workload_matches_glibc() {
    require("sqlite3", "apt-get install sqlite3");
    let mut outputs = Vec::new();
    for alloc in [Alloc::Glibc, Alloc::Strata] {
        let dir = Scratch::new("sqlite");
        let mut cmd = Command::new("sqlite3");
        cmd.arg("-bail").arg(dir.path().join("w.db"));
        let (out, took) = run(&mut cmd, alloc, Some(SQL.as_bytes()));
        eprintln!("sqlite3 under {alloc:?}: {took:?}");
        assert_success("sqlite3", alloc, &out);
        assert!(
            out.stderr.is_empty(),
            "sqlite3 under {alloc:?}: {}",
            common::tail(&out.stderr)
        );
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    assert!(
        outputs[0].trim_end().ends_with("\nok"),
        "integrity check:\n{}",
        outputs[0]
    );
    assert!(
        outputs[0].lines().count() > 100,
        "short output:\n{}",
        outputs[0]
    );
    assert_eq!(
        outputs[0], outputs[1],
        "sqlite3: glibc (left) and strata (right) disagree"
    );
}

// ---- git -------------------------------------------------------------------

/// Files in the repository's first commit.
const GIT_FILES: usize = 3000;

/// Writes the working tree for commit `round`: the initial files, then each
/// round rewrites some, adds some and deletes some.
fn write_tree(root: &Path, round: usize) {
    let name = |i: usize| root.join(format!("d{:02}/sub{}/f{i:05}.txt", i % 40, i % 3));
    if round == 0 {
        for i in 0..GIT_FILES {
            let p = name(i);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let body: String = (0..1 + i % 20)
                .map(|l| format!("file {i} line {l}: {}\n", (i * 31 + l * 17) % 1009))
                .collect();
            fs::write(p, body).unwrap();
        }
        return;
    }
    for i in (round..GIT_FILES).step_by(9) {
        let mut body = fs::read_to_string(name(i)).unwrap_or_default();
        body.push_str(&format!("round {round} appends to {i}\n"));
        fs::write(name(i), body).unwrap();
    }
    for i in (round * 7..GIT_FILES).step_by(61) {
        let _ = fs::remove_file(name(i));
    }
    for j in 0..100 {
        let i = GIT_FILES + round * 100 + j;
        fs::create_dir_all(name(i).parent().unwrap()).unwrap();
        fs::write(name(i), format!("new in round {round}: {j}\n")).unwrap();
    }
}

/// A git command in `repo` with a fixed identity, dates and configuration,
/// so that commit ids are the same in every run.
fn git(repo: &Path, home: &Path, round: usize, args: &[&str]) -> Command {
    let date = format!("2024-01-01T00:{round:02}:00Z");
    let mut cmd = Command::new("git");
    cmd.current_dir(repo)
        .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"])
        .args(args)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "strata")
        .env("GIT_AUTHOR_EMAIL", "strata@example.invalid")
        .env("GIT_COMMITTER_NAME", "strata")
        .env("GIT_COMMITTER_EMAIL", "strata@example.invalid")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date);
    cmd
}

/// Runs the whole git session with `alloc` and returns what it printed.
fn git_session(alloc: Alloc) -> String {
    let dir = Scratch::new("git");
    let (repo, home) = (dir.path().join("repo"), dir.path().join("home"));
    fs::create_dir_all(&repo).unwrap();
    fs::create_dir_all(&home).unwrap();
    let mut transcript = String::new();
    let mut step = |round: usize, args: &[&str], keep: &dyn Fn(&str) -> bool| {
        let (out, _) = run(&mut git(&repo, &home, round, args), alloc, None);
        assert_success(&format!("git {}", args.join(" ")), alloc, &out);
        assert_no_strata_report(&out);
        transcript.push_str(&format!("$ git {}\n", args.join(" ")));
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| keep(l))
        {
            transcript.push_str(line);
            transcript.push('\n');
        }
    };
    let all = |_: &str| true;
    step(0, &["init", "-q"], &all);
    for round in 0..6 {
        write_tree(&repo, round);
        step(round, &["add", "-A"], &all);
        step(
            round,
            &["commit", "-q", "-m", &format!("round {round}")],
            &all,
        );
    }
    step(6, &["gc", "-q", "--prune=now"], &all);
    step(6, &["fsck", "--full", "--strict"], &all);
    step(6, &["log", "--oneline"], &all);
    step(6, &["rev-parse", "HEAD", "HEAD^{tree}"], &all);
    step(6, &["ls-files"], &|l: &str| l.ends_with("0.txt"));
    step(6, &["diff", "--stat", "HEAD~5", "HEAD"], &|l: &str| {
        l.contains("changed")
    });
    step(6, &["grep", "-c", "round 3"], &|l: &str| {
        l.starts_with("d0")
    });
    // Pack sizes depend on threaded delta search; object counts do not.
    step(6, &["count-objects", "-v"], &|l: &str| {
        l.starts_with("count:") || l.starts_with("in-pack:") || l.starts_with("packs:")
    });
    transcript
}

#[test]
fn git_session_matches_glibc() {
    require("git", "apt-get install git");
    let start = std::time::Instant::now();
    let glibc = git_session(Alloc::Glibc);
    eprintln!("git session under Glibc: {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let strata = git_session(Alloc::Strata);
    eprintln!("git session under Strata: {:?}", start.elapsed());
    let log_lines = glibc
        .lines()
        .skip_while(|l| *l != "$ git log --oneline")
        .count();
    assert!(log_lines > 6, "no log in:\n{glibc}");
    assert!(glibc.contains("in-pack: "), "no pack in:\n{glibc}");
    assert_eq!(
        glibc, strata,
        "git: glibc (left) and strata (right) disagree"
    );
}

/// Fails if strata stopped a process over a bad free (its report goes to
/// stderr, starting with "strata:").
fn assert_no_strata_report(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("strata: free("),
        "strata refused a free:\n{}",
        common::tail(&out.stderr)
    );
}
