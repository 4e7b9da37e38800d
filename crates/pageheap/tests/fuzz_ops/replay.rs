//! Replaying kept fuzz inputs in `cargo test`, shared by the page heap's and
//! the central layer's `fuzz_regressions.rs` (included with `#[path]`, like
//! `os.rs`): every file under `fuzz/regressions/<target>/`.

use std::path::PathBuf;

/// Where the kept inputs of fuzz target `target` live.
pub fn regressions_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target)
}

/// Runs `replay` on every file kept under `fuzz/regressions/<target>/`
/// (which must hold at least one) and fails naming the files that fail.
/// `describe` renders an input's operations, shown only when a replay fails.
pub fn replay_kept(target: &str, describe: impl Fn(&[u8]) -> String, replay: impl Fn(&[u8])) {
    let dir = regressions_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz/regressions/{target} exists: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no kept inputs to replay");
    let mut failed = Vec::new();
    for f in files {
        let data = std::fs::read(&f).unwrap();
        // Shown only if the replay fails.
        eprintln!("replaying {}: {}", f.display(), describe(&data));
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay(&data))).is_err() {
            failed.push(f);
        }
    }
    assert!(failed.is_empty(), "kept inputs that fail: {failed:?}");
}

/// Checks that every hand-made input of `target` round-trips through
/// `encode`/`decode` and matches its file under `fuzz/regressions/`.
pub fn check_kept_files<T: PartialEq + std::fmt::Debug>(
    target: &str,
    crate_name: &str,
    kept: Vec<(&'static str, T)>,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> T,
) {
    for (name, ops) in kept {
        let bytes = encode(&ops);
        assert_eq!(decode(&bytes), ops, "{name} does not round-trip");
        let kept = std::fs::read(regressions_dir(target).join(name)).unwrap_or_default();
        assert!(
            kept == bytes,
            "{name} is stale: run `cargo test -p {crate_name} --test \
             fuzz_regressions -- --ignored write_kept_files`"
        );
    }
}

/// Writes the hand-made inputs of `target` into `fuzz/regressions/`.
pub fn write_kept_files<T>(
    target: &str,
    kept: Vec<(&'static str, T)>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    for (name, ops) in kept {
        std::fs::write(regressions_dir(target).join(name), encode(&ops)).unwrap();
    }
}
