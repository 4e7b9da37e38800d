//! What the integration tests share: building `libstrata_malloc.so` with the
//! profile the tests were built with, compiling C programs, running programs
//! with and without `LD_PRELOAD`, and scratch directories.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `.so` freshly built by cargo, with the profile (and target directory
/// and target triple) of the running test executable, and its features
/// (`--features checked`: the checked build). Built once per test binary.
pub fn strata_so() -> &'static Path {
    &built().0
}

/// The static library (`libstrata_malloc.a`) of the same build.
pub fn strata_static_lib() -> &'static Path {
    &built().1
}

fn built() -> &'static (PathBuf, PathBuf) {
    static LIBS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIBS.get_or_init(build_libs)
}

fn build_libs() -> (PathBuf, PathBuf) {
    // The running test's features: `--features checked` builds the
    // checked library.
    let args: &[&str] = if cfg!(feature = "checked") {
        &["-p", "strata-malloc", "--features", "checked"]
    } else {
        &["-p", "strata-malloc"]
    };
    let built = strata_testkit::cargo::build(Path::new(env!("CARGO_MANIFEST_DIR")), "build", args);
    (
        strata_testkit::cargo::artifact(&built, "/libstrata_malloc.so"),
        strata_testkit::cargo::artifact(&built, "/libstrata_malloc.a"),
    )
}

/// The directory of strata's public C header (`strata.h`).
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// Whether `prog` can be run (found on PATH or as a path).
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Fails the test, saying what to install, if `prog` is missing.
pub fn require(prog: &str, install_hint: &str) {
    assert!(
        have(prog),
        "`{prog}` is not installed; this test needs it. Install it: {install_hint}"
    );
}

/// Compiles the C file `src` to the executable `out` with the system `cc`.
pub fn compile_c(src: &Path, out: &Path, extra: &[&str]) {
    let flags = [
        "-std=gnu11",
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-fno-builtin",
        "-pthread",
    ];
    compile("cc", &flags, src, out, extra);
}

/// Compiles the C++ file `src` to the executable `out` with the system `c++`.
pub fn compile_cxx(src: &Path, out: &Path) {
    compile("c++", &["-O1", "-g", "-Wall", "-Wextra"], src, out, &[]);
}

fn compile(compiler: &str, flags: &[&str], src: &Path, out: &Path, extra: &[&str]) {
    let status = Command::new(compiler)
        .args(flags)
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(extra)
        .status()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(status.success(), "{compiler} failed on {}", src.display());
}

/// A directory under the system temp dir, unique to this process and
/// call, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "strata-malloc-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which allocator a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alloc {
    Glibc,
    Strata,
}

impl Alloc {
    /// Points `cmd` at this allocator: sets or clears `LD_PRELOAD`. The
    /// `STRATA_*` variables of the test's own environment are not passed
    /// on (so that runs do not depend on it); those set on `cmd` are.
    pub fn apply(self, cmd: &mut Command) -> &mut Command {
        let explicit: Vec<_> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("STRATA_") && !explicit.contains(&k) {
                cmd.env_remove(k);
            }
        }
        match self {
            Alloc::Glibc => cmd.env_remove("LD_PRELOAD"),
            Alloc::Strata => cmd.env("LD_PRELOAD", strata_so()),
        }
    }
}

/// Runs `cmd` to completion with `alloc`, returning its output and how long
/// it took. Standard input is empty unless `stdin` is given.
pub fn run(cmd: &mut Command, alloc: Alloc, stdin: Option<&[u8]>) -> (Output, Duration) {
    use std::io::Write;
    alloc.apply(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("piped stdin");
        w.write_all(input).expect("writing stdin");
    }
    let out = child.wait_with_output().expect("waiting for the child");
    (out, start.elapsed())
}

/// Panics with the program's output unless it exited 0.
pub fn assert_success(what: &str, alloc: Alloc, out: &Output) {
    assert!(
        out.status.success(),
        "{what} under {alloc:?} failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
}

/// The last 4 KiB of a program's output, as text.
pub fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let start = s.len().saturating_sub(4096);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}
