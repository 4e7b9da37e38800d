//! Where strata's memory is at the peak of a peak-RSS row: runs the
//! larson-like (row 10), xmalloc-test (row 11) or mstress (row 12) workload
//! on strata (called through `GlobalAlloc`, as the main job does; the process
//! itself keeps the system allocator) while a sampler thread reads
//! `strata::stats()` and the process's RSS every half millisecond, and prints
//! the breakdown at the sample with the highest RSS.
//!
//! ```text
//! cargo run --release -p strata-benches --example rss_probe -- larson
//! cargo run --release -p strata-benches --example rss_probe -- mstress
//! cargo run --release -p strata-benches --example rss_probe -- xmalloc
//! cargo run --release -p strata-benches --example rss_probe -- randomfree  # faults
//! ```
//!
//! Figures in KiB. `span free` counts free objects inside partly used spans,
//! of which `uncarved` were never handed out (their pages may not be
//! resident); `dirty` is free spans waiting for decay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use strata::Strata;
use strata_benches::measure::{hwm_kib, rss_kib, Deadline};
use strata_benches::workloads;

static STRATA: Strata = Strata;

#[derive(Clone, Copy)]
struct Snap {
    rss: u64,
    s: strata::Stats,
    /// Per class with transfer or span-free objects: (size, stats).
    classes: [(usize, strata::ClassStats); 100],
}

impl Default for Snap {
    fn default() -> Self {
        Snap {
            rss: 0,
            s: strata::Stats::default(),
            classes: [(0, strata::ClassStats::default()); 100],
        }
    }
}

fn snap() -> Snap {
    let mut classes = [(0, strata::ClassStats::default()); 100];
    for (c, slot) in classes.iter_mut().enumerate().skip(1) {
        if let Some(cs) = strata::class_stats(c as u8) {
            *slot = cs;
        }
    }
    Snap {
        rss: rss_kib().unwrap_or(0),
        s: strata::stats(),
        classes,
    }
}

fn kib(b: usize) -> usize {
    b >> 10
}

fn print(label: &str, p: &Snap, base: u64) {
    let s = &p.s;
    println!(
        "{label}: rss {} KiB (+{} over start) | in-use spans {} = allocated {} + thread caches {} \
         + transfer {} + span free {} (uncarved {}) | free dirty {} clean {} | metadata {} | caches {}",
        p.rss,
        p.rss.saturating_sub(base),
        kib(s.in_use_bytes),
        kib(s.allocated_bytes),
        kib(s.thread_cache_bytes),
        kib(s.transfer_cache_bytes),
        kib(s.span_free_bytes),
        kib(s.uncarved_bytes),
        kib(s.free_dirty_bytes),
        kib(s.free_clean_bytes),
        kib(s.metadata_bytes),
        s.thread_caches,
    );
    if std::env::var_os("PROBE_CLASSES").is_some() {
        for (size, c) in p
            .classes
            .iter()
            .filter(|(_, c)| c.spans > 0 || c.transfer_objects > 0)
        {
            println!(
                "    class {size:>6} B: spans {:>5} span free {:>6} KiB (uncarved {:>5}) transfer {:>6} KiB",
                c.spans,
                kib(c.span_free_objects * size),
                kib(c.uncarved_objects * size),
                kib(c.transfer_objects * size)
            );
        }
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "mstress".into());
    let dl = Deadline::after(Duration::from_secs(60));
    let base = rss_kib().unwrap_or(0);
    let done = AtomicBool::new(false);
    let peak = Mutex::new(Snap::default());
    let peak_used = Mutex::new(Snap::default());
    std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let snap = snap();
                let mut p = peak.lock().expect("peak");
                if snap.rss > p.rss {
                    *p = snap;
                }
                let mut q = peak_used.lock().expect("peak");
                if snap.s.in_use_bytes + snap.s.free_dirty_bytes
                    > q.s.in_use_bytes + q.s.free_dirty_bytes
                {
                    *q = snap;
                }
                drop((p, q));
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        let t = std::time::Instant::now();
        match which.as_str() {
            "larson" => {
                workloads::larson(&STRATA, 2, 1_000, 200_000, 5, dl);
            }
            "randomfree" => {
                // Row 3's shape, one round: page faults of a fresh heap.
                let s = workloads::random_free(&STRATA, 100_000, 1, dl);
                println!("randomfree: {} minor faults", s.minflt);
            }
            "xmalloc" => {
                workloads::xmalloc_test(&STRATA, 2, 2, 500_000, dl);
            }
            _ => {
                workloads::mstress(&STRATA, 4, 10, 50_000, 4096, dl);
            }
        }
        eprintln!("{which}: {:?}", t.elapsed());
        done.store(true, Ordering::Relaxed);
    });
    println!(
        "{which}: start rss {base} KiB, VmHWM {} KiB",
        hwm_kib().unwrap_or(0)
    );
    print("at peak rss", &peak.lock().expect("peak"), base);
    print(
        "at peak spans (in use + dirty)",
        &peak_used.lock().expect("peak"),
        base,
    );
    print("at end", &snap(), base);
    if std::env::var_os("PROBE_SMAPS").is_some() {
        print_smaps();
    }
}

/// `PROBE_SMAPS=1`: the process's mappings holding 32 KiB or more now,
/// largest first (which of strata's mappings, thread stacks, the binary).
fn print_smaps() {
    let mut maps: Vec<(u64, String)> = strata_benches::measure::mappings_kib()
        .into_iter()
        .filter(|m| m.1 >= 32)
        .map(|(name, kib)| (kib, name))
        .collect();
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    for (kib, name) in maps {
        println!("  {kib:>7} KiB  {name}");
    }
}
