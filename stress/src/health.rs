//! Checks of strata's own accounting (`strata::stats()`), of release
//! (`strata::release_free_memory()`), and of the process's resident memory
//! (`VmRSS` in `/proc/self/status`).

use std::time::{Duration, Instant};

use strata::Stats;

const MIB: usize = 1024 * 1024;

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`, ...).
pub fn proc_status_bytes(field: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kb: usize = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Resident memory now, in bytes.
pub fn rss() -> Option<usize> {
    proc_status_bytes("VmRSS")
}

/// Peak resident memory, in bytes.
pub fn peak_rss() -> Option<usize> {
    proc_status_bytes("VmHWM")
}

/// Formats bytes as MiB with one decimal.
pub fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

/// Checks that a snapshot of strata's accounting is consistent, and that it
/// accounts for the `live_bytes` (of which `live_huge_bytes` in huge blocks)
/// the engine holds. Call while no other thread allocates.
pub fn check_stats(s: &Stats, live_bytes: usize, live_huge_bytes: usize) -> Result<(), String> {
    let mut bad = Vec::new();
    if s.in_use_bytes > s.mapped_bytes {
        bad.push("in_use_bytes > mapped_bytes".to_string());
    }
    // The page heap takes this snapshot under its lock, and keeps every
    // mapped page in exactly one of these states.
    let parts = s.in_use_bytes + s.free_dirty_bytes + s.free_clean_bytes + s.huge_cached_bytes;
    if parts != s.mapped_bytes {
        bad.push(format!(
            "in_use + free_dirty + free_clean + huge_cached = {parts} != mapped_bytes"
        ));
    }
    if s.huge_in_use_bytes > s.in_use_bytes {
        bad.push("huge_in_use_bytes > in_use_bytes".to_string());
    }
    if s.allocated_bytes > s.in_use_bytes {
        bad.push("allocated_bytes > in_use_bytes".to_string());
    }
    if live_bytes > s.in_use_bytes {
        bad.push(format!(
            "the stress engine holds {live_bytes} bytes, more than in_use_bytes"
        ));
    }
    if live_huge_bytes > s.huge_in_use_bytes {
        bad.push(format!(
            "the stress engine holds {live_huge_bytes} bytes in huge blocks, more than \
             huge_in_use_bytes"
        ));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "strata::stats() is inconsistent: {}; stats: {s:?}",
            bad.join("; ")
        ))
    }
}

/// Calls `strata::release_free_memory()` until `free_dirty_bytes` is at most
/// `max_dirty` and no huge mapping is cached, for up to two seconds: threads
/// that just exited may still be flushing their caches. Returns the last
/// snapshot, or an error naming it.
pub fn release_and_check(max_dirty: usize) -> Result<Stats, String> {
    let start = Instant::now();
    loop {
        let released = strata::release_free_memory();
        let s = strata::stats();
        if s.free_dirty_bytes <= max_dirty && s.huge_cached_bytes == 0 {
            return Ok(s);
        }
        if start.elapsed() > Duration::from_secs(2) {
            return Err(format!(
                "after release_free_memory() (last call released {released} bytes), \
                 free_dirty_bytes = {} (limit {}), huge_cached_bytes = {}; stats: {s:?}",
                s.free_dirty_bytes, max_dirty, s.huge_cached_bytes
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that resident memory went back down after everything was freed
/// and released: at most `baseline` (RSS before the run) plus what strata
/// still reports in use or as metadata, plus `slack`. Retries for up to a
/// second (the kernel's counters lag a little). Returns the RSS seen.
pub fn check_rss_dropped(baseline: usize, slack: usize) -> Result<usize, String> {
    let start = Instant::now();
    loop {
        let s = strata::stats();
        let bound = baseline + s.in_use_bytes + s.metadata_bytes + slack;
        let Some(now) = rss() else {
            return Ok(0);
        };
        if now <= bound {
            return Ok(now);
        }
        if start.elapsed() > Duration::from_secs(1) {
            return Err(format!(
                "VmRSS is {} after freeing everything and releasing, more than the bound {} \
                 (RSS at start {} + in_use {} + metadata {} + slack {}); stats: {s:?}",
                mib(now),
                mib(bound),
                mib(baseline),
                mib(s.in_use_bytes),
                mib(s.metadata_bytes),
                mib(slack)
            ));
        }
        strata::release_free_memory();
        std::thread::sleep(Duration::from_millis(50));
    }
}
