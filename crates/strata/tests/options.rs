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
    assert_eq!(strata::option_names().count(), 15);

    // Back to what the other tests expect.
    strata::set_decay_ms(before.decay_ms);
    strata::set_dirty_max(before.dirty_max);
    strata::set_thread_cache_bytes(before.thread_cache_bytes);
    strata::set_thread_caches_total(before.thread_caches_total);
}

#[test]
fn the_profilers_interval_and_walker_are_settings() {
    let _g = SERIAL.lock().unwrap();
    assert_eq!(get("profile_interval"), (2u64 << 20).to_string());
    strata::set_option("STRATA_PROFILE_INTERVAL", "512k").unwrap();
    assert_eq!(strata::profile::interval(), 512 << 10);
    assert_eq!(get("profile_interval"), (512u64 << 10).to_string());
    assert_eq!(
        strata::set_option("profile_interval", "2q"),
        Err(OptionError::Malformed {
            expected: "a size in bytes: 4096, 64k, 8m or 2g"
        })
    );
    assert_eq!(strata::profile::interval(), 512 << 10);
    strata::set_option("profile_interval", "2m").unwrap();
    assert_eq!(strata::profile::interval(), 2 << 20);

    assert_eq!(
        strata::get_option("stack_walker"),
        Ok(OptionValue::Word("strata"))
    );
    strata::set_option("STRATA_STACK_WALKER", "system").unwrap();
    assert_eq!(
        strata::get_option("STRATA_STACK_WALKER"),
        Ok(OptionValue::Word("system"))
    );
    assert_eq!(
        strata::set_option("stack_walker", "fast"),
        Err(OptionError::Malformed {
            expected: "`strata` or `system`"
        })
    );
    assert_eq!(get("stack_walker"), "system");
    strata::set_option("stack_walker", "strata").unwrap();
    assert_eq!(get("stack_walker"), "strata");

    // Neither the prefix nor the signal is set in this process.
    assert_eq!(get("profile"), "off");
    assert_eq!(get("profile_signal"), "off");
    assert!(matches!(
        strata::set_option("profile", ""),
        Err(OptionError::Malformed { .. })
    ));
    assert!(matches!(
        strata::set_option("profile", &"x".repeat(strata::OptionText::MAX + 1)),
        Err(OptionError::Malformed { .. })
    ));
    assert_eq!(
        strata::set_option("profile_signal", "HUP"),
        Err(OptionError::Malformed {
            expected: "a signal (USR1, USR2, PROF, URG, SIGUSR2 or a number 1..64), or 0 or `off`"
        })
    );
    assert_eq!(get("profile"), "off");
    assert_eq!(get("profile_signal"), "off");
    assert!(!strata::profile::is_on());
}

/// Signals the test's own handler counted.
static OWN_HANDLER_RAN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn own_handler(_: libc::c_int) {
    OWN_HANDLER_RAN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// The `.heap.pb.gz` files in `dir`, sorted.
fn heap_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".heap.pb.gz"))
        .collect();
    v.sort();
    v
}

/// `STRATA_PROFILE` and `STRATA_PROFILE_SIGNAL` set at run time, in a
/// child (they dump at exit and take signals): the prefix turns profiling
/// on; the signal's handler moves from USR2 to USR1, USR2 gets back the
/// handler it had before, and `off` gives USR1 back its own.
#[test]
fn the_profile_prefix_and_signal_move_at_run_time() {
    const NAME: &str = "the_profile_prefix_and_signal_move_at_run_time";
    let pid = std::process::id();
    if in_child(NAME) {
        let dir = std::path::PathBuf::from(std::env::var("OPTIONS_TEST_DIR").unwrap());
        // SAFETY: a handler that only touches an atomic.
        unsafe {
            libc::signal(
                libc::SIGUSR1,
                own_handler as *const () as libc::sighandler_t,
            );
            libc::signal(
                libc::SIGUSR2,
                own_handler as *const () as libc::sighandler_t,
            );
        }
        let prefix = dir.join("p");
        let prefix = prefix.to_str().unwrap();
        strata::set_option("STRATA_PROFILE", prefix).unwrap();
        assert!(strata::profile::is_on());
        assert_eq!(get("profile"), prefix);
        let dumps = |n: usize| {
            wait_for(&format!("{n} dumps"), || heap_files(&dir).len() == n);
        };
        let raise = |sig| {
            // SAFETY: raising a signal with a handler installed.
            unsafe { libc::raise(sig) };
        };

        strata::set_option("profile_signal", "USR2").unwrap();
        assert_eq!(get("profile_signal"), "USR2");
        raise(libc::SIGUSR2);
        dumps(1);
        strata::set_option("STRATA_PROFILE_SIGNAL", "SIGUSR1").unwrap();
        assert_eq!(get("profile_signal"), "USR1");
        raise(libc::SIGUSR1);
        dumps(2);
        assert_eq!(OWN_HANDLER_RAN.load(std::sync::atomic::Ordering::SeqCst), 0);
        // USR2 has its handler back: no dump.
        raise(libc::SIGUSR2);
        assert_eq!(OWN_HANDLER_RAN.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A number names a signal too; 0 removes strata's handler.
        strata::set_option("profile_signal", &libc::SIGUSR2.to_string()).unwrap();
        assert_eq!(get("profile_signal"), "USR2");
        strata::set_option("profile_signal", "0").unwrap();
        assert_eq!(get("profile_signal"), "off");
        raise(libc::SIGUSR1);
        raise(libc::SIGUSR2);
        assert_eq!(OWN_HANDLER_RAN.load(std::sync::atomic::Ordering::SeqCst), 3);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(heap_files(&dir).len(), 2, "{:?}", heap_files(&dir));
        // `off`: no prefix, sampling off, no dump at exit.
        strata::set_option("profile", "off").unwrap();
        assert_eq!(get("profile"), "off");
        assert!(!strata::profile::is_on());
        return;
    }
    let dir = std::env::temp_dir().join(format!("strata-options-profile-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    child(NAME, &[("OPTIONS_TEST_DIR", dir.to_str().unwrap())]);
    let files = heap_files(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].ends_with(".1.heap.pb.gz") && files[1].ends_with(".2.heap.pb.gz"));
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
        // The profiler's settings are checked as well.
        ("STRATA_PROFILE_INTERVAL", "2q"),
        ("STRATA_PROFILE_SIGNAL", "HUP?"),
        ("STRATA_STACK_WALKER", "fast"),
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
    assert!(line("STRATA_PROFILE_INTERVAL=").contains("=2q ignored: expected a size in bytes"));
    assert_eq!(
        line("STRATA_PROFILE_SIGNAL="),
        "strata: STRATA_PROFILE_SIGNAL=HUP? ignored: expected a signal (USR1, USR2, PROF, URG, \
         SIGUSR2 or a number 1..64), or 0 or `off`; off stays"
    );
    assert_eq!(
        line("STRATA_STACK_WALKER="),
        "strata: STRATA_STACK_WALKER=fast ignored: expected `strata` or `system`; strata stays"
    );
    assert_eq!(lines.len(), 6, "warnings about good variables:\n{stderr}");
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
