//! Where each allocator's memory goes on the larson-like workload (row 10):
//! runs it on one allocator (`strata`, `glibc`, `mimalloc` or `jemalloc`,
//! called through `GlobalAlloc` as the main job does) and prints the
//! process's peak RSS growth, then every mapping whose resident size
//! changed (growth and resident KiB), so that an allocator's own tables,
//! thread stacks and the binary's data can be told from its heap.
//!
//! ```text
//! cargo run --release -p strata-benches --example peer_probe -- strata
//! cargo run --release -p strata-benches --example peer_probe -- jemalloc
//! ```
//!
//! Neighbouring anonymous mappings merge into one line. To see each of
//! them, run it under strace and name strace's output file: at the end it
//! reads the file and prints the resident KiB of every anonymous `mmap`
//! the process made.
//!
//! ```text
//! PROBE_STRACE=/tmp/st strace -f -o /tmp/st -e trace=mmap \
//!     target/release/examples/peer_probe strata
//! ```

use std::alloc::{GlobalAlloc, System};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use strata_benches::measure::{hwm_kib, mappings_kib, rss_kib, Deadline};
use strata_benches::workloads;

static STRATA: strata::Strata = strata::Strata;
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "strata".into());
    let a: &(dyn GlobalAlloc + Sync) = match which.as_str() {
        "glibc" => &System,
        "mimalloc" => &MIMALLOC,
        "jemalloc" => &JEMALLOC,
        _ => &STRATA,
    };
    let dl = Deadline::after(Duration::from_secs(60));
    let before = mappings_kib();
    let base = rss_kib().unwrap_or(0);
    workloads::larson(a, 2, 1_000, 200_000, 5, dl);
    println!(
        "{which} growth {} KiB (peak RSS over the start)",
        hwm_kib().unwrap_or(0).saturating_sub(base)
    );
    for (name, kib) in mappings_kib() {
        let old = before.iter().find(|(n, _)| *n == name).map_or(0, |m| m.1);
        if kib != old {
            println!("  {:>+6} {kib:>6} KiB  {name}", kib as i64 - old as i64);
        }
    }
    strace_regions();
}

/// With `PROBE_STRACE=file`: the resident KiB of every anonymous mapping
/// strace logged in `file` (`mmap(NULL, size, ...) = addr`, also when
/// strace split the call over two lines for another thread's).
fn strace_regions() {
    let Some(file) = std::env::var_os("PROBE_STRACE") else {
        return;
    };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut pending: HashMap<&str, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        let pid = line.split_whitespace().next().unwrap_or("");
        let size = if line.contains("mmap resumed") {
            match pending.remove(pid) {
                Some(s) => s,
                None => continue,
            }
        } else if line.contains("mmap(NULL") && line.contains("MAP_ANONYMOUS") {
            let s: usize = line
                .split(',')
                .nth(1)
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if line.contains("unfinished") {
                pending.insert(pid, s);
                continue;
            }
            s
        } else {
            continue;
        };
        let addr = line
            .rsplit("= 0x")
            .next()
            .and_then(|a| usize::from_str_radix(a.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || addr == 0 || !seen.insert(addr) {
            continue;
        }
        let mut vec = vec![0u8; size.div_ceil(4096)];
        // SAFETY: mincore only reads the page tables of [addr, addr + size)
        // and writes one byte per page into `vec`, which has that many; an
        // address no longer mapped makes it fail (ENOMEM), not fault.
        let rc = unsafe { libc::mincore(addr as *mut libc::c_void, size, vec.as_mut_ptr()) };
        let resident = vec.iter().filter(|b| **b & 1 != 0).count() * 4;
        if rc == 0 && resident > 0 {
            println!("  mmap {addr:#x} size {size:>12} resident {resident:>6} KiB");
        }
    }
}
