//! A program as a user outside the project would write it: strata as the global
//! allocator of an ordinary multi-threaded program that uses collections,
//! aligned and zeroed allocations. It checks everything it allocates and exits
//! 0 with a one-line summary, or panics (non-zero exit) on the first mismatch.
//!
//! ```text
//! cargo run --release -p strata --example outside_program
//! ```

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

const MIB: usize = 1 << 20;

/// The byte at offset `i` of the pattern `seed`.
fn pat(seed: u64, i: usize) -> u8 {
    let x =
        (i as u64 / 8).wrapping_mul(0x0100_0000_01B3) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x.to_le_bytes()[i % 8]
}

fn fill(buf: &mut [u8], seed: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pat(seed, i);
    }
}

fn check(buf: &[u8], seed: u64, what: &str) {
    if let Some(i) = buf.iter().enumerate().position(|(i, &b)| b != pat(seed, i)) {
        panic!(
            "{what}: byte {i} of {} is {:#04x}, expected {:#04x}",
            buf.len(),
            buf[i],
            pat(seed, i)
        );
    }
}

/// Threads allocate buffers of 8 B .. 1 MiB and send them to each other; the
/// receivers check and free them. Returns the number of buffers checked.
fn cross_thread_frees() -> usize {
    let n = 4;
    let per_thread = 5_000;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<(u64, Vec<u8>)>()).unzip();
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let txs = txs.clone();
            thread::spawn(move || {
                let mut got = 0;
                for i in 0..per_thread {
                    let size = 8usize << ((i * 7 + t) % 18); // 8 B .. 1 MiB
                    let seed = ((t as u64) << 32) | i as u64;
                    let mut v = vec![0u8; size];
                    fill(&mut v, seed);
                    txs[(t + 1 + i % (n - 1)) % n].send((seed, v)).unwrap();
                    while let Ok((s, v)) = rx.try_recv() {
                        check(&v, s, "buffer from another thread");
                        got += 1;
                    }
                }
                drop(txs);
                for (s, v) in rx {
                    check(&v, s, "buffer from another thread");
                    got += 1;
                }
                got
            })
        })
        .collect();
    drop(txs);
    let got: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(got, n * per_thread, "buffers lost between threads");
    got
}

/// 2,000 short-lived threads in waves of 100; each returns 100 of its buffers.
fn short_lived_threads() -> usize {
    let total = 2_000;
    for wave in 0..total / 100 {
        let handles: Vec<_> = (0..100)
            .map(|k| {
                let seed = (wave * 100 + k) as u64;
                thread::spawn(move || {
                    let mut keep = Vec::new();
                    for i in 0..300 {
                        let mut b = vec![0u8; 1 + (i * 37 + k) % 3000];
                        fill(&mut b, seed + i as u64);
                        if i % 3 == 0 {
                            keep.push((seed + i as u64, b));
                        }
                    }
                    keep.into_iter()
                        .map(|(s, b)| (s, b.into_boxed_slice()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            let kept = h.join().unwrap();
            assert_eq!(kept.len(), 100);
            for (s, b) in kept {
                check(&b, s, "buffer returned by a thread");
            }
        }
    }
    total
}

/// Every alignment from 1 B to 4 MiB, with sizes around it, plain, zeroed and
/// reallocated. Returns the number of allocations made.
fn alignments() -> usize {
    let mut count = 0;
    for shift in 0..=22 {
        let align = 1usize << shift;
        let mut live = Vec::new();
        for size in [1, align, align + 1, 3 * align / 2 + 1, 4096] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: the layout has a non-zero size.
            let (p, z) = unsafe { (alloc(l), alloc_zeroed(l)) };
            assert!(!p.is_null() && !z.is_null(), "allocation of {l:?} failed");
            assert!(
                p as usize % align == 0 && z as usize % align == 0,
                "{l:?} misaligned"
            );
            // SAFETY: `z` is a live zeroed block of `size` bytes.
            let zs = unsafe { std::slice::from_raw_parts(z, size) };
            assert!(zs.iter().all(|&b| b == 0), "alloc_zeroed({l:?}) not zero");
            // SAFETY: `p` is a live block of `size` bytes, owned here.
            fill(
                unsafe { std::slice::from_raw_parts_mut(p, size) },
                size as u64,
            );
            // SAFETY: `p` is live with layout `l`; the new size is small.
            let q = unsafe { realloc(p, l, 2 * size + 8) };
            assert!(
                !q.is_null() && q as usize % align == 0,
                "realloc of {l:?} failed"
            );
            // SAFETY: `q` is live with at least `size` bytes.
            check(
                unsafe { std::slice::from_raw_parts(q, size) },
                size as u64,
                "realloc prefix",
            );
            let l2 = Layout::from_size_align(2 * size + 8, align).unwrap();
            live.push((q, l2));
            live.push((z, l));
            count += 3;
        }
        let mut ranges: Vec<_> = live
            .iter()
            .map(|(p, l)| (*p as usize, *p as usize + l.size()))
            .collect();
        ranges.sort_unstable();
        assert!(
            ranges.windows(2).all(|w| w[0].1 <= w[1].0),
            "overlapping blocks at align {align}"
        );
        for (p, l) in live {
            // SAFETY: each block is live with its layout and freed once.
            unsafe { dealloc(p, l) };
        }
    }
    count
}

/// A Vec<u8> pushed to 64 MB, checked at the end.
fn vec_growth() -> usize {
    let n = 64_000_000;
    let mut v = Vec::new();
    for i in 0..n {
        v.push(pat(99, i));
    }
    check(&v, 99, "Vec<u8> grown to 64 MB");
    n
}

/// Zeroed allocations right after the same sizes were freed dirty.
fn zeroed_after_dirty_reuse() -> usize {
    let mut count = 0;
    for size in [
        8,
        24,
        100,
        4096,
        40_000,
        255 * 1024,
        300 * 1024,
        MIB,
        8 * MIB,
        64 * MIB,
    ] {
        for _ in 0..3 {
            drop(vec![0xABu8; size]);
            let v = vec![0u8; size];
            assert!(
                v.iter().all(|&b| b == 0),
                "vec![0; {size}] after dirty reuse is not zero"
            );
            count += 1;
        }
    }
    count
}

/// A HashMap with 1M entries, checked and dropped.
fn big_hash_map() -> usize {
    let n = 1_000_000u64;
    let m: HashMap<u64, String> = (0..n).map(|i| (i * 2_654_435_761, i.to_string())).collect();
    assert_eq!(m.len(), n as usize);
    for i in 0..n {
        assert_eq!(m[&(i * 2_654_435_761)], i.to_string(), "HashMap entry {i}");
    }
    n as usize
}

fn main() {
    let start = Instant::now();
    let sent = cross_thread_frees();
    let threads = short_lived_threads();
    let aligned = alignments();
    let grown = vec_growth();
    let zeroed = zeroed_after_dirty_reuse();
    let entries = big_hash_map();
    println!(
        "outside_program: ok: {sent} cross-thread buffers, {threads} short-lived threads, \
         {aligned} aligned blocks, Vec of {grown} bytes, {zeroed} zeroed reuses, \
         HashMap of {entries} entries in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}
