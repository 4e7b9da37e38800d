//! Building more of the workspace from inside a test: a `cargo` command
//! with the profile, target directory and target triple of the running test
//! executable (so that nothing is built twice in another configuration),
//! and the paths of the artifacts it reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the running test executable says the build lives.
struct Layout {
    /// `dev`, `release`, or a custom profile.
    profile: String,
    /// The target directory, when the executable sits in the usual layout.
    target_dir: Option<PathBuf>,
    /// The target triple, when built with `--target`.
    triple: Option<String>,
}

fn layout() -> Layout {
    let exe = std::env::current_exe().expect("current_exe");
    // <target-dir>[/<triple>]/<profile-dir>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test exe is in <profile>/deps");
    let dir_name = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let profile = match dir_name {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    };
    let above = profile_dir.parent();
    let is_target_dir = |p: &Path| p.join("CACHEDIR.TAG").exists();
    let (target_dir, triple) = match above {
        Some(a) if is_target_dir(a) => (Some(a.to_path_buf()), None),
        Some(a) => match a.parent() {
            Some(root) if is_target_dir(root) => (
                Some(root.to_path_buf()),
                a.file_name().and_then(|n| n.to_str()).map(String::from),
            ),
            _ => (None, None),
        },
        None => (None, None),
    };
    Layout {
        profile,
        target_dir,
        triple,
    }
}

/// Runs `cargo <subcommand> <args>` in `dir` with the running test's
/// profile, target directory and triple (and JSON messages), and returns
/// the paths of the artifacts it reported, panicking if the build failed.
/// Arguments for rustc go after a `--` in `args`, as on the command line.
pub fn build(dir: &Path, subcommand: &str, args: &[&str]) -> Vec<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let l = layout();
    let (ours, rustc) = match args.iter().position(|&a| a == "--") {
        Some(i) => (&args[..i], &args[i..]),
        None => (args, &[][..]),
    };
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir)
        .arg(subcommand)
        .args(ours)
        .arg("--message-format=json-render-diagnostics")
        .args(["--profile", &l.profile]);
    if let Some(dir) = &l.target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    if let Some(t) = &l.triple {
        cmd.args(["--target", t]);
    }
    cmd.args(rustc).stderr(Stdio::inherit());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cargo:?} {subcommand}: {e}"));
    assert!(
        out.status.success(),
        "cargo {subcommand} {} failed",
        args.join(" ")
    );
    // Each compiler-artifact message names its files (and executable).
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .flat_map(|l| l.split('"'))
        .filter(|s| s.starts_with('/') && Path::new(s).is_file())
        .map(PathBuf::from)
        .collect()
}

/// The artifact whose path ends with `suffix`, from what [`build`] returned.
pub fn artifact(paths: &[PathBuf], suffix: &str) -> PathBuf {
    paths
        .iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .cloned()
        .unwrap_or_else(|| panic!("cargo reported no {suffix} artifact: {paths:?}"))
}
