//! Heap profiling through the C ABI: a C program with two allocation
//! sites of known live bytes (`tests/c/profile_sites.c`) under
//! `LD_PRELOAD`, sampled at 1 MiB (`STRATA_PROFILE_INTERVAL`), its profile
//! written by `strata_profile_dump` and at exit (`STRATA_PROFILE`); each
//! site's estimated live bytes must be within 10% of the truth, read from
//! the collapsed stacks, from the pprof profiles (decoded by the testkit's
//! reader, always) and by `go tool pprof` where `go` is on PATH. And
//! CPython, whose profile must name CPython's own allocation functions.

mod common;

use common::{assert_success, compile_c, have, run, Alloc, Scratch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: f64 = (1 << 20) as f64;

/// Bytes per site (stacks naming it) in a collapsed-stacks file.
fn per_site(file: &Path, sites: &[&'static str]) -> HashMap<&'static str, f64> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    let mut m = HashMap::new();
    for line in text.lines() {
        let (stack, v) = line.rsplit_once(' ').expect("`stack bytes`");
        let v: f64 = v.parse().unwrap();
        for &site in sites {
            if stack.split(';').any(|f| f == site) {
                *m.entry(site).or_insert(0.0) += v;
            }
        }
    }
    m
}

fn check(what: &str, got: Option<&f64>, truth: f64) {
    let got = got.copied().unwrap_or(0.0);
    let err = (got - truth) / truth;
    eprintln!(
        "{what}: estimated {:.1} MiB, truth {:.1} MiB ({:+.1}%)",
        got / MIB,
        truth / MIB,
        err * 100.0
    );
    assert!(err.abs() <= 0.10, "{what}: {:+.1}% off", err * 100.0);
}

/// `go tool pprof -top -cum` of a profile, or None without `go`.
fn pprof_top(profile: &Path, index: &str) -> Option<String> {
    if !have("go") {
        eprintln!(
            "SKIPPED the pprof check: no `go` on PATH (the testkit's reader checked the profile)"
        );
        return None;
    }
    let out = Command::new("go")
        .args(["tool", "pprof", "-top", "-cum"])
        .arg(format!("-sample_index={index}"))
        .arg(profile)
        .output()
        .expect("go tool pprof");
    assert!(
        out.status.success(),
        "pprof failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `cum` column of the line naming `function` in pprof's `-top`.
fn pprof_cum(top: &str, function: &str) -> Option<f64> {
    let line = top
        .lines()
        .find(|l| l.split_whitespace().nth(5) == Some(function))?;
    let s = line.split_whitespace().nth(3)?;
    let i = s.find(|c: char| c.is_ascii_alphabetic())?;
    let v: f64 = s[..i].parse().ok()?;
    let unit = match &s[i..] {
        "B" => 1.0,
        "kB" => 1024.0,
        "MB" => MIB,
        "GB" => MIB * 1024.0,
        _ => return None,
    };
    Some(v * unit)
}

/// The profile files a run left under `prefix` (`<prefix>.<pid>...`).
fn files_with(dir: &Path, ending: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ending))
        .collect();
    v.sort();
    v
}

#[test]
fn c_sites_are_estimated_within_ten_percent() {
    if !have("cc") {
        eprintln!("SKIPPED: no C compiler `cc` on PATH");
        return;
    }
    let dir = Scratch::new("profile-c");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/profile_sites.c");
    let exe = dir.path().join("profile_sites");
    compile_c(&src, &exe, &["-ldl"]);
    let explicit = dir.path().join("explicit.pb.gz");
    let mut cmd = Command::new(&exe);
    cmd.arg(&explicit)
        .env("STRATA_PROFILE", dir.path().join("atexit"))
        .env("STRATA_PROFILE_INTERVAL", "1m");
    let (out, took) = run(&mut cmd, Alloc::Strata, None);
    assert_success("profile_sites", Alloc::Strata, &out);
    eprintln!("profile_sites under strata with profiling: {took:?}");

    let sites = ["site_a", "site_b"];
    let inuse = files_with(dir.path(), ".inuse.collapsed");
    assert_eq!(inuse.len(), 1, "one profile at exit: {inuse:?}");
    let live = per_site(&inuse[0], &sites);
    check("site A live (at exit)", live.get("site_a"), 300.0 * MIB);
    check("site B live (at exit)", live.get("site_b"), 100.0 * MIB);
    let peak = per_site(&files_with(dir.path(), ".peak.collapsed")[0], &sites);
    check("site A at the peak", peak.get("site_a"), 300.0 * MIB);

    for profile in [explicit, files_with(dir.path(), ".heap.pb.gz")[0].clone()] {
        let cum = strata_testkit::pprof::read(&profile)
            .and_then(|p| p.cum_by_function("inuse_space"))
            .unwrap_or_else(|e| panic!("{profile:?}: {e}"));
        let bytes = |site: &str| cum.get(site).map(|&v| v as f64);
        check(
            "profile: site A live",
            bytes("site_a").as_ref(),
            300.0 * MIB,
        );
        check(
            "profile: site B live",
            bytes("site_b").as_ref(),
            100.0 * MIB,
        );
        if let Some(top) = pprof_top(&profile, "inuse_space") {
            eprintln!("{top}");
            check(
                "pprof: site A live",
                pprof_cum(&top, "site_a").as_ref(),
                300.0 * MIB,
            );
            check(
                "pprof: site B live",
                pprof_cum(&top, "site_b").as_ref(),
                100.0 * MIB,
            );
        }
    }
}

/// CPython under strata with `STRATA_PROFILE`: its peak profile names
/// CPython's own functions (the object constructors that call `malloc`,
/// and the interpreter loop above them), so a C program's profile is
/// readable without any help from it. `PYTHONMALLOC=malloc`: CPython's own
/// small-object allocator takes its memory in 256 KiB arenas straight from
/// `mmap`, which no `malloc` profiler sees.
#[test]
fn cpython_profile_names_its_functions() {
    let python = ["python3", "python"].into_iter().find(|p| have(p));
    let Some(python) = python else {
        eprintln!("SKIPPED: no python3 on PATH");
        return;
    };
    let dir = Scratch::new("profile-py");
    let script = "d = {i: str(i) * 10 for i in range(200000)}\n\
                  l = [list(range(50)) for _ in range(20000)]\n\
                  print(len(d), len(l))\n";
    let mut cmd = Command::new(python);
    cmd.args(["-c", script])
        .env("PYTHONMALLOC", "malloc")
        .env("STRATA_PROFILE", dir.path().join("py"))
        .env("STRATA_PROFILE_INTERVAL", "256k");
    let (out, _) = run(&mut cmd, Alloc::Strata, None);
    assert_success("python", Alloc::Strata, &out);
    // A pyenv shim is a shell script: every process of the run leaves its
    // own profile; CPython's is the one naming its functions.
    let wanted = [
        "_PyEval_EvalFrameDefault",
        "PyUnicode_New",
        "new_keys_object",
        "PyLong_FromLong",
        "list_extend",
    ];
    let found = files_with(dir.path(), ".peak.collapsed")
        .into_iter()
        .any(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let hit = wanted.iter().filter(|w| text.contains(*w)).count();
            eprintln!(
                "{f:?}: {} stacks, {hit} of {wanted:?}",
                text.lines().count()
            );
            hit >= 3
        });
    assert!(found, "no profile names CPython's allocation functions");
}

/// `STRATA_PROFILE_SIGNAL=USR2`: each signal writes a numbered profile
/// (from the profiler's own thread; the handler only wakes it).
#[test]
fn a_signal_writes_a_numbered_profile() {
    let dir = Scratch::new("profile-signal");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "kill -USR2 $$; sleep 0.5; kill -USR2 $$; sleep 0.5"])
        .env("STRATA_PROFILE", dir.path().join("p"))
        .env("STRATA_PROFILE_SIGNAL", "USR2");
    let (out, _) = run(&mut cmd, Alloc::Strata, None);
    assert_success("sh", Alloc::Strata, &out);
    let names: Vec<String> = files_with(dir.path(), ".heap.pb.gz")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for n in [".1.heap.pb.gz", ".2.heap.pb.gz"] {
        assert!(names.iter().any(|f| f.ends_with(n)), "no *{n} in {names:?}");
    }
}
