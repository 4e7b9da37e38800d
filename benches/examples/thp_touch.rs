//! What a first touch costs on this machine, with and without transparent
//! huge pages: maps `MiB` of fresh anonymous memory (2 MiB aligned), hints
//! it `MADV_HUGEPAGE` or `MADV_NOHUGEPAGE`, writes one byte per 4 KiB page
//! and prints the rate. The two kinds alternate for `rounds` rounds.
//!
//! `cargo run --release -p strata-benches --example thp_touch -- 256 4`
//!
//! The heap's huge-page policy (crates/pageheap/src/grow.rs,
//! `DEFAULT_HUGE_PAGES_AFTER`) rests on this measurement: on a VM whose host
//! takes back the guest's free memory in 2 MiB blocks (virtio-balloon free
//! page reporting), a huge page is made of exactly such memory, and its
//! first touch is the host's fault too.

use std::time::Instant;

const MIB: usize = 1 << 20;
const HUGE: usize = 2 * MIB;

fn touch(len: usize, huge: bool) -> f64 {
    // SAFETY: a fresh private anonymous mapping, written only inside its
    // bounds, unmapped at the end.
    unsafe {
        let map = libc::mmap(
            core::ptr::null_mut(),
            len + HUGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap of {len} bytes");
        let p = (map as usize).next_multiple_of(HUGE) as *mut u8;
        let advice = if huge {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        libc::madvise(p.cast(), len, advice);
        let t = Instant::now();
        for off in (0..len).step_by(4096) {
            p.add(off).write_volatile(1);
        }
        let secs = t.elapsed().as_secs_f64();
        libc::munmap(map, len + HUGE);
        secs
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments: MiB rounds"))
        .collect();
    let mib = args.first().copied().unwrap_or(256);
    let rounds = args.get(1).copied().unwrap_or(4);
    let len = mib * MIB;
    println!("first touch of {mib} MiB, one byte per 4 KiB page");
    for r in 0..rounds {
        for huge in [true, false] {
            let s = touch(len, huge);
            println!(
                "round {r} {:>9}: {:7.1} ms, {:5.2} GB/s",
                if huge { "huge" } else { "4 KiB" },
                s * 1e3,
                len as f64 / s / 1e9
            );
        }
    }
}
