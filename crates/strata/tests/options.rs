//! Settings by name at run time (`strata::set_option` / `get_option`), the
//! Rust setters they reach, and the start-up warnings of `STRATA_VERBOSE=1`.
//! Settings are process-wide: the tests that change them take `SERIAL`, and
//! those about start-up or exit run in a child process of their own.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata::{OptionError, OptionValue};

static SERIAL: Mutex<()> = Mutex::new(());

fn get(name: &str) -> String {
    strata::get_option(name).unwrap().to_string()
}

#[test]
fn every_run_time_setting_reads_back_and_takes_effect() {
    let _g = SERIAL.lock().unwrap();
    let before = strata::config();

    strata::set_option("decay_ms", "250").unwrap();
    assert_eq!(get("STRATA_DECAY_MS"), "250");
    assert_eq!(strata::config().decay_ms, 250);
    assert_eq!(
        strata::stats().decay_ms,
        250,
        "the page heap did not get it"
    );
    strata::set_option("STRATA_DECAY_MS", "never").unwrap();
    assert_eq!(
        strata::get_option("decay_ms"),
        Ok(OptionValue::Word("never"))
    );
    assert_eq!(strata::stats().decay_ms, u64::MAX);

    strata::set_option("dirty_max", "8m").unwrap();
    assert_eq!(get("dirty_max"), (8u64 << 20).to_string());
    strata::set_option("dirty_max", "unlimited").unwrap();
    assert_eq!(strata::config().dirty_max, usize::MAX);

    strata::set_option("memory_limit", "2g").unwrap();
    assert_eq!(get("memory_limit"), (2u64 << 30).to_string());
    assert!(strata::memory_limit().is_some_and(|l| l <= 2 << 30));
    strata::set_option("memory_limit", "none").unwrap();
    assert_eq!(get("memory_limit"), "none");

    strata::set_option("thread_cache_bytes", "4096k").unwrap();
    assert_eq!(strata::config().thread_cache_bytes, 4 << 20);
    strata::set_option("thread_caches_total", "96m").unwrap();
    assert_eq!(get("thread_caches_total"), (96u64 << 20).to_string());

    strata::set_option("huge_pages_after", "1g").unwrap();
    assert_eq!(strata::config().huge_pages_after, 1 << 30);
    strata::set_option("huge_pages_after", "never").unwrap();
    assert_eq!(get("huge_pages_after"), "never");

    strata::set_option("show_stats", "0").unwrap();
    assert_eq!(get("show_stats"), "0");

    // Guarded sampling: on at a rate, off again (the rest of its tests run
    // in processes of their own: crates/strata/tests/guarded.rs).
    strata::set_option("guarded_rate", "5000").unwrap();
    assert_eq!(strata::guarded::rate(), 5000);
    assert_eq!(get("STRATA_GUARDED_RATE"), "5000");
    strata::set_option("guarded_rate", "off").unwrap();
    assert_eq!(get("guarded_rate"), "off");
    assert_eq!(get("guarded_max_per_sec"), "2000");
    strata::set_option("STRATA_GUARDED_MAX_PER_SEC", "unlimited").unwrap();
    assert_eq!(strata::guarded::max_per_sec(), 0);
    assert_eq!(get("guarded_max_per_sec"), "unlimited");
    strata::set_option("guarded_max_per_sec", "2000").unwrap();
    assert_eq!(strata::config().guarded_max_per_sec, 2000);

    // Refusals change nothing.
    assert_eq!(
        strata::set_option("decay_ms", "1k"),
        Err(OptionError::Malformed {
            expected: "milliseconds (a number) or `never`"
        })
    );
    assert!(matches!(
        strata::set_option("thread_cache_bytes", ""),
        Err(OptionError::Malformed { .. })
    ));
    assert_eq!(strata::set_option("decay", "1"), Err(OptionError::Unknown));
    assert_eq!(strata::get_option("decay"), Err(OptionError::Unknown));
    assert_eq!(
        strata::set_option("verbose", "1"),
        Err(OptionError::StartupOnly)
    );
    assert_eq!(get("verbose"), "0");
    assert_eq!(get("decay_ms"), "never");
    // Every name the list gives is known.
    for name in strata::option_names() {
        assert!(strata::get_option(name).is_ok(), "{name}");
    }
    assert_eq!(strata::option_names().count(), 11);

    // Back to what the other tests expect.
    strata::set_decay_ms(before.decay_ms);
    strata::set_dirty_max(before.dirty_max);
    strata::set_thread_cache_bytes(before.thread_cache_bytes);
    strata::set_thread_caches_total(before.thread_caches_total);
}

/// The `strata-release` threads alive in this process.
fn release_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "strata-release")
        })
        .count()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_background_thread_starts_and_stops_by_name() {
    let _g = SERIAL.lock().unwrap();
    strata::set_decay_ms(40); // the thread wakes every 10 ms
    strata::set_option("background_release", "1").unwrap();
    assert_eq!(get("background_release"), "1");
    wait_for("a strata-release thread", || release_threads() == 1);
    strata::set_option("background_release", "off").unwrap();
    assert_eq!(get("background_release"), "0");
    wait_for("the strata-release thread to end", || {
        release_threads() == 0
    });
    // Started again at once after a stop: still one thread.
    strata::set_option("background_release", "1").unwrap();
    strata::stop_background_release();
    assert!(strata::start_background_release());
    wait_for("one strata-release thread", || release_threads() == 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(release_threads(), 1, "a stop and a start made two threads");
    strata::stop_background_release();
    wait_for("the strata-release thread to end", || {
        release_threads() == 0
    });
    strata::set_decay_ms(strata::Config::DEFAULT.decay_ms);
}

/// Runs this test binary's test `name` in a child with `env` (and no other
/// `STRATA_*` variable); returns its stderr.
fn child(name: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    // The marker is not a STRATA_* variable: verbose would name it.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("OPTIONS_TEST_CHILD", name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child {name}: {:?}\n{}{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn in_child(name: &str) -> bool {
    std::env::var("OPTIONS_TEST_CHILD").as_deref() == Ok(name)
}

#[test]
fn verbose_names_unknown_and_malformed_variables() {
    const NAME: &str = "verbose_names_unknown_and_malformed_variables";
    if in_child(NAME) {
        // The malformed value left the default; the good one was taken.
        let c = strata::config();
        assert_eq!(c.decay_ms, strata::Config::DEFAULT.decay_ms);
        assert_eq!(c.thread_cache_bytes, 64 << 10);
        assert!(c.verbose == (std::env::var("STRATA_VERBOSE").as_deref() == Ok("1")));
        return;
    }
    let env = [
        ("STRATA_DECAY_MS", "soon"),
        ("STRATA_DECAYMS", "5"),
        ("STRATA_THREAD_CACHE_BYTES", "64k"),
        ("STRATA_DIRTY_MAX", "8q"),
    ];
    let mut verbose = env.to_vec();
    verbose.push(("STRATA_VERBOSE", "1"));
    let stderr = child(NAME, &verbose);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("strata: "))
        .collect();
    let line = |var: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("strata: {var}")))
            .unwrap_or_else(|| panic!("no warning about {var}:\n{stderr}"))
            .to_string()
    };
    assert_eq!(
        line("STRATA_DECAY_MS="),
        "strata: STRATA_DECAY_MS=soon ignored: expected milliseconds (a number) or `never`; 1000 stays"
    );
    assert!(line("STRATA_DIRTY_MAX=").contains("=8q ignored: expected a size in bytes"));
    let unknown = line("STRATA_DECAYMS");
    assert!(
        unknown.contains("is not a strata setting") && unknown.contains("STRATA_DECAY_MS"),
        "{unknown}"
    );
    assert_eq!(lines.len(), 3, "warnings about good variables:\n{stderr}");
    // Without STRATA_VERBOSE=1, the same environment is silent.
    let quiet = child(NAME, &env);
    assert!(!quiet.contains("strata: "), "{quiet}");
}

#[test]
fn show_stats_can_be_turned_on_and_off_at_run_time() {
    const NAME: &str = "show_stats_can_be_turned_on_and_off_at_run_time";
    if in_child(NAME) {
        let on = std::env::var("OPTIONS_TEST_SHOW_STATS").unwrap();
        strata::set_option("show_stats", "1").unwrap();
        strata::set_option("show_stats", &on).unwrap();
        return;
    }
    let stderr = child(NAME, &[("OPTIONS_TEST_SHOW_STATS", "1")]);
    assert!(stderr.contains("strata: statistics"), "{stderr}");
    let stderr = child(NAME, &[("OPTIONS_TEST_SHOW_STATS", "0")]);
    assert!(!stderr.contains("strata: statistics"), "{stderr}");
}
