//! Memory comes back: freed memory is reused by later allocations (big spans,
//! small objects, the caches of threads that exited, the blocks a growing
//! vector leaves behind), so the resident set does not grow with the number
//! of allocate/free cycles.
//!
//! The resident set is read from `/proc/self/statm` (Linux); elsewhere the
//! tests only exercise the paths. Each bound is a fraction of what the cycles
//! would leave resident if freed memory were never reused, and far above what
//! reuse leaves. The tests of this binary run one at a time so that they do
//! not see each other's memory.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use common::{check, fill, long_tests, Rng, KIB, MIB};
use std::alloc::{alloc, dealloc, Layout};
use std::sync::Mutex;
use std::thread;

static SERIAL: Mutex<()> = Mutex::new(());

/// (virtual size, resident set) of this process in bytes, if known.
fn vm_and_rss() -> Option<(usize, usize)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut f = statm.split_whitespace().map(|v| v.parse::<usize>().ok());
    let (size, resident) = (f.next()??, f.next()??);
    // statm counts pages; 4 KiB is a lower bound on the page size, so on a
    // system with bigger pages the growth is underestimated, never overstated.
    Some((size * 4096, resident * 4096))
}

/// Runs `cycle` once to warm up, then `n` more times, and asserts that the
/// resident set grew by less than `max_rss_growth` (and the address space
/// by less than `max_vm_growth`) over those `n` cycles.
fn assert_bounded(
    what: &str,
    n: usize,
    max_rss_growth: usize,
    max_vm_growth: usize,
    mut cycle: impl FnMut(usize),
) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    cycle(0);
    let before = vm_and_rss();
    for i in 1..=n {
        cycle(i);
    }
    let (Some((vm0, rss0)), Some((vm1, rss1))) = (before, vm_and_rss()) else {
        eprintln!("{what}: /proc/self/statm not readable; memory growth not checked");
        return;
    };
    let (rss_growth, vm_growth) = (rss1.saturating_sub(rss0), vm1.saturating_sub(vm0));
    assert!(
        rss_growth < max_rss_growth,
        "{what}: resident set grew by {} MiB over {n} cycles (bound {} MiB): freed memory is not reused",
        rss_growth / MIB,
        max_rss_growth / MIB
    );
    assert!(
        vm_growth < max_vm_growth,
        "{what}: address space grew by {} MiB over {n} cycles (bound {} MiB): freed spans are not reused",
        vm_growth / MIB,
        max_vm_growth / MIB
    );
}

/// Allocates `size` bytes, writes one byte in every 4 KiB page, checks them
/// and frees the block.
fn touch_block(size: usize, align: usize, tag: u8) {
    let l = Layout::from_size_align(size, align).expect("valid layout");
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc(l) };
    assert!(!p.is_null(), "alloc({l:?}) failed");
    // SAFETY: `p` is a live block of `size` bytes, owned here until freed below.
    let b = unsafe { std::slice::from_raw_parts_mut(p, size) };
    for page in b.chunks_mut(4096) {
        page[0] = tag;
    }
    assert!(
        b.chunks(4096).all(|page| page[0] == tag),
        "block of {size} bytes lost a write"
    );
    // SAFETY: `p` was allocated above with `l` and is freed once.
    unsafe { dealloc(p, l) };
}

#[test]
fn big_blocks_are_reused() {
    let n = if long_tests() { 200 } else { 40 };
    // Without reuse: n * 64 MiB resident and mapped.
    assert_bounded("64 MiB blocks", n, 512 * MIB, GIB_AS_USIZE, |i| {
        touch_block(
            64 * MIB + (i % 3) * 8192,
            [8, 4096, 2 * MIB][i % 3],
            i as u8,
        );
    });
}

const GIB_AS_USIZE: usize = 1024 * MIB;

#[test]
fn mixed_size_blocks_are_reused() {
    let n = if long_tests() { 100 } else { 20 };
    let mut rng = Rng::new(3);
    // Each cycle holds ~64 MiB of blocks of 8 B .. 2 MiB at once, then frees
    // them in random order. Without reuse: n * 64 MiB.
    assert_bounded("mixed sizes", n, 512 * MIB, GIB_AS_USIZE, |i| {
        let mut live: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut total = 0;
        let mut k = 0u64;
        while total < 64 * MIB {
            let bits = rng.below(22);
            let size = 8 + rng.below(1 << bits);
            let seed = ((i as u64) << 32) | k;
            let mut v = vec![0u8; size];
            fill(&mut v, seed);
            live.push((seed, v));
            total += size;
            k += 1;
        }
        rng.shuffle(&mut live);
        for (seed, v) in live {
            check(&v, seed, "mixed-size block before free");
        }
    });
}

#[test]
fn small_objects_are_reused() {
    let n = if long_tests() { 50 } else { 10 };
    let per_cycle = 256 * 1024;
    // Each cycle holds 256 Ki objects of 24..64 B (~11 MiB) at once.
    // Without reuse: n * 11 MiB = 110 MiB.
    assert_bounded("small objects", n, 48 * MIB, GIB_AS_USIZE, |i| {
        let objs: Vec<Box<[u64]>> = (0..per_cycle)
            .map(|k| vec![(i * per_cycle + k) as u64; 3 + k % 5].into_boxed_slice())
            .collect();
        for (k, o) in objs.iter().enumerate() {
            assert!(
                o.iter().all(|&x| x == (i * per_cycle + k) as u64),
                "small object {k}"
            );
        }
    });
}

#[test]
fn caches_of_exited_threads_are_reused() {
    let n = if long_tests() { 100 } else { 25 };
    let wave = 12;
    // Each thread frees 4 MiB of 1 KiB objects (a full thread cache) on its
    // own thread, then exits. Without reuse of exited threads' caches:
    // n * wave * 4 MiB = 1.2 GiB.
    assert_bounded(
        "caches of exited threads",
        n,
        400 * MIB,
        4 * GIB_AS_USIZE,
        |i| {
            let handles: Vec<_> = (0..wave)
                .map(|t| {
                    thread::spawn(move || {
                        let objs: Vec<Box<[u8]>> = (0..4096)
                            .map(|k| vec![(i + t + k) as u8; KIB].into_boxed_slice())
                            .collect();
                        for (k, o) in objs.iter().enumerate() {
                            assert_eq!(o[KIB - 1], (i + t + k) as u8, "object {k} of thread {t}");
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("cache-filling thread panicked");
            }
        },
    );
}

#[test]
fn growing_vectors_leave_reusable_blocks() {
    let n = if long_tests() { 40 } else { 8 };
    // Each cycle grows a Vec<u64> to 32 MiB by push (leaving ~32 MiB of freed
    // smaller blocks behind) and drops it. Without reuse: n * 64 MiB.
    assert_bounded("growing vectors", n, 256 * MIB, GIB_AS_USIZE, |i| {
        let mut v: Vec<u64> = Vec::new();
        for k in 0..(4 * MIB) as u64 {
            v.push(k ^ i as u64);
        }
        assert!(
            v.iter().enumerate().all(|(k, &x)| x == k as u64 ^ i as u64),
            "Vec<u64> contents"
        );
    });
}

/// A ring of blocks of every size, 8 B to 1 MiB, each replaced by one of
/// another size (most programs' buffers: only their first bytes written).
/// The free spans this leaves between the large blocks add up to more than
/// the heap's cap on free memory; the heap must learn that the program
/// takes such memory back, and keep it, instead of releasing it at every
/// free and faulting it in again at the next allocation.
#[test]
#[cfg_attr(
    feature = "checked",
    ignore = "the checked build takes every large block zeroed, from released memory by choice"
)]
fn replaced_blocks_of_every_size_are_not_released_and_faulted_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const RING: usize = 256;
    let mut rng = Rng::new(17);
    let mut ring: Vec<(*mut u8, Layout)> = Vec::with_capacity(RING);
    let mut step = |ring: &mut Vec<(*mut u8, Layout)>, k: usize| {
        let bits = 3 + rng.below(18); // sizes log-uniform in 8 B .. 1 MiB
        let size = (1usize << bits) + rng.below(1 << bits);
        let layout = Layout::from_size_align(size.min(MIB), 8).unwrap();
        // SAFETY: a non-zero layout; the block is ours until freed.
        let p = unsafe { alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: as above: its first and last bytes.
        unsafe {
            p.write(k as u8);
            p.add(layout.size() - 1).write(k as u8);
        }
        if k < ring.len() {
            let (old, old_layout) = ring[k];
            // SAFETY: a live block of ours, written at both ends above.
            unsafe {
                assert_eq!(
                    *old,
                    *old.add(old_layout.size() - 1),
                    "block {k} overwritten"
                );
                dealloc(old, old_layout);
            }
            ring[k] = (p, layout);
        } else {
            ring.push((p, layout));
        }
    };
    // Warm up: the heap reaches its working size and learns the swing.
    for i in 0..RING * 400 {
        step(&mut ring, i % RING);
    }
    let before = strata::stats().released_bytes_total;
    let steps = RING * 400;
    for i in 0..steps {
        step(&mut ring, i % RING);
    }
    let released = strata::stats().released_bytes_total - before;
    // Released at every free, this ring gave back over 10 KiB a step
    // (1.2 GB here); kept, nothing but what decay takes from other tests.
    assert!(
        released < 128 * MIB as u64,
        "{released} bytes released in {steps} replacements"
    );
    for (p, layout) in ring {
        // SAFETY: live blocks of ours.
        unsafe { dealloc(p, layout) };
    }
}
