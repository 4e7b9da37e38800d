//! The `override` feature: a Rust program built with it exports `malloc`,
//! `free`, ... itself, so the C code linked into it is served by strata.
//! Builds `tests/c/c_dependency.c` into a static library with the system
//! `cc` and `ar`, builds `examples/c_dependency.rs` against it with
//! `--features override` (a cargo run of its own, so that no other test
//! binary of the workspace exports `malloc`), and runs it: the example
//! checks through `strata::stats()` that the C blocks were strata's.
//! Skipped, with a message, only if there is no `cc`.

use std::path::Path;
use std::process::Command;

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_rust_programs_c_dependency_allocates_from_strata() {
    if !have("cc") || !have("ar") {
        eprintln!(
            "SKIPPED: no C compiler `cc` (or `ar`) on PATH; install gcc or clang to run the override test"
        );
        return;
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("strata-override-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let object = dir.join("c_dependency.o");
    let status = Command::new("cc")
        .args(["-std=gnu11", "-O1", "-fno-builtin", "-fPIC", "-c"])
        .arg(format!(
            "-I{}",
            crate_dir.join("../malloc/include").display()
        ))
        .arg(crate_dir.join("tests/c/c_dependency.c"))
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap();
    assert!(status.success(), "cc failed on c_dependency.c");
    let status = Command::new("ar")
        .arg("rcs")
        .arg(dir.join("libstrata_cdep.a"))
        .arg(&object)
        .status()
        .unwrap();
    assert!(status.success(), "ar failed");

    let native = format!("native={}", dir.display());
    let built = strata_testkit::cargo::build(
        crate_dir,
        "rustc",
        &[
            "-p",
            "strata",
            "--example",
            "c_dependency",
            "--features",
            "override",
            "--",
            "-L",
            &native,
            "-l",
            "static=strata_cdep",
        ],
    );
    let exe = strata_testkit::cargo::artifact(&built, "/c_dependency");
    let out = Command::new(&exe)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{}: {:?}\n{stdout}{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{stdout}");
}
