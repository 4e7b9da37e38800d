//! glibc's introspection functions (`mallinfo2`, `mallinfo`,
//! `malloc_info`, `malloc_stats`) and strata's own (`include/strata.h`)
//! from C: `tests/c/introspect.c` under `LD_PRELOAD`, and the same program
//! linked with `libstrata_malloc.a` and run on its own. Also that a static
//! C program is served by strata (`tests/c/static_link.c`). Skipped, with a
//! message, only if there is no `cc`.

mod common;

use common::{assert_success, have, run, Alloc, Scratch};
use std::path::{Path, PathBuf};
use std::process::Command;

fn c_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

fn no_cc() -> bool {
    if have("cc") {
        return false;
    }
    eprintln!("SKIPPED: no C compiler `cc` on PATH; install gcc or clang to run the C tests");
    true
}

/// What a program linked with a Rust static library needs besides it
/// (`rustc --print native-static-libs` for the gnu targets).
const NATIVE_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// Compiles `src` into `dir`, for `LD_PRELOAD` or linked with the static
/// library.
fn build(dir: &Path, src: &str, static_lib: bool) -> PathBuf {
    let include = format!("-I{}", common::include_dir().display());
    let exe = dir.join(format!(
        "{}{}",
        src.trim_end_matches(".c"),
        if static_lib { "-static" } else { "" }
    ));
    let (so, a) = (common::strata_so(), common::strata_static_lib());
    let mut extra = vec![include.as_str()];
    if static_lib {
        extra.push(a.to_str().unwrap());
        extra.extend_from_slice(NATIVE_LIBS);
    } else {
        // strata.h's functions: linked against the shared library (the
        // preload loads it first either way).
        extra.extend([so.to_str().unwrap(), "-ldl"]);
    }
    common::compile_c(&c_source(src), &exe, &extra);
    exe
}

/// The XML `introspect.c` printed between its markers: every tag closes in
/// order.
fn check_xml(stdout: &str) {
    let xml = stdout
        .split("XML-BEGIN\n")
        .nth(1)
        .and_then(|s| s.split("XML-END").next())
        .expect("no XML in the output");
    strata_testkit::xml::assert_well_nested(xml);
    assert!(
        xml.contains("<size from=\""),
        "no size class listed:\n{xml}"
    );
}

fn check_introspect_output(what: &str, out: &std::process::Output) {
    assert_success(what, Alloc::Strata, out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ALL OK") && stdout.contains(" 0 failed"),
        "{what} did not report success:\n{stdout}"
    );
    check_xml(&stdout);
}

#[test]
fn glibc_and_strata_introspection_agree_under_ld_preload() {
    if no_cc() {
        return;
    }
    let dir = Scratch::new("introspect");
    let exe = build(dir.path(), "introspect.c", false);
    let (out, _) = run(&mut Command::new(&exe), Alloc::Strata, None);
    check_introspect_output("introspect", &out);
}

#[test]
fn glibc_and_strata_introspection_agree_when_linked_statically() {
    if no_cc() {
        return;
    }
    let dir = Scratch::new("introspect-static");
    let exe = build(dir.path(), "introspect.c", true);
    // No LD_PRELOAD: strata is inside the program.
    let (out, _) = run(&mut Command::new(&exe), Alloc::Glibc, None);
    check_introspect_output("introspect (static)", &out);
}

#[test]
fn malloc_stats_prints_what_mallinfo2_says() {
    if no_cc() {
        return;
    }
    let dir = Scratch::new("introspect-stats");
    let exe = build(dir.path(), "introspect.c", false);
    let (out, _) = run(Command::new(&exe).arg("malloc_stats"), Alloc::Strata, None);
    assert_success("introspect malloc_stats", Alloc::Strata, &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mallinfo = |key: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .parse()
            .unwrap()
    };
    // glibc's lines: "system bytes     =    N", twice each.
    let values = |label: &str| -> Vec<u64> {
        stderr
            .lines()
            .filter(|l| l.starts_with(label))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect()
    };
    let (arena, uord, hblkhd) = (mallinfo("arena"), mallinfo("uordblks"), mallinfo("hblkhd"));
    assert!(uord >= 10 << 20, "{stdout}");
    assert!(stderr.starts_with("Arena 0:\n"), "{stderr}");
    assert_eq!(values("system bytes"), [arena, arena + hblkhd], "{stderr}");
    assert_eq!(values("in use bytes"), [uord, uord + hblkhd], "{stderr}");
    // Then strata's own report, from the same snapshot.
    assert!(stderr.contains("strata: statistics\n"), "{stderr}");
    let allocated: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("  allocated bytes (estimate): "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(allocated, uord + hblkhd);
}

#[test]
fn a_statically_linked_c_program_is_served_by_strata() {
    if no_cc() {
        return;
    }
    let dir = Scratch::new("static-link");
    let exe = build(dir.path(), "static_link.c", true);
    let mut cmd = Command::new(&exe);
    cmd.env("STRATA_SHOW_STATS", "1");
    let (out, _) = run(&mut cmd, Alloc::Glibc, None);
    assert_success("static_link", Alloc::Glibc, &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ALL OK"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strata: statistics"),
        "no STRATA_SHOW_STATS report at exit:\n{stderr}"
    );
    // Built without the library (glibc's malloc), the same checks fail:
    // they do tell strata from glibc.
    let plain = dir.path().join("static_link-plain");
    let status = Command::new("cc")
        .arg(c_source("static_link.c"))
        .arg(format!("-I{}", common::include_dir().display()))
        .args(["-DWITHOUT_STRATA", "-o"])
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    let (out, _) = run(&mut Command::new(&plain), Alloc::Glibc, None);
    assert!(
        !out.status.success(),
        "static_link passed without strata linked in: its checks prove nothing"
    );
}
