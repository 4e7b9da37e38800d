//! `alloc_zeroed` must return all-zero memory even when it reuses memory the
//! program dirtied: from the thread cache, from other threads, from spans that
//! were coalesced with their neighbours, and from big blocks whose pages were
//! only partly written (strata clears only the pages that are resident).

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use common::{assert_zero, long_tests, Rng, KIB, MIB};
use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::sync::mpsc;
use std::thread;

const DIRT: u8 = 0xAB;

const SIZES: [usize; 11] = [
    8,
    24,
    100,
    4 * KIB,
    40 * KIB,
    255 * KIB,
    300 * KIB,
    MIB,
    8 * MIB,
    64 * MIB,
    200 * MIB,
];

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("valid layout")
}

/// The bytes of a live block.
fn bytes<'a>(p: *mut u8, size: usize) -> &'a mut [u8] {
    // SAFETY: every caller passes a live block of at least `size` bytes that
    // it owns, and does not use the slice after freeing the block.
    unsafe { std::slice::from_raw_parts_mut(p, size) }
}

fn alloc_dirty(l: Layout) -> *mut u8 {
    // SAFETY: every layout used here has a non-zero size.
    let p = unsafe { alloc(l) };
    assert!(!p.is_null(), "alloc({l:?}) failed");
    bytes(p, l.size()).fill(DIRT);
    p
}

fn alloc_zero_checked(l: Layout, what: &str) -> *mut u8 {
    // SAFETY: every layout used here has a non-zero size.
    let p = unsafe { alloc_zeroed(l) };
    assert!(!p.is_null(), "alloc_zeroed({l:?}) failed");
    assert_eq!(p as usize % l.align(), 0, "{what}: misaligned");
    assert_zero(bytes(p, l.size()), &format!("{what}: alloc_zeroed({l:?})"));
    p
}

fn free(p: *mut u8, l: Layout) {
    // SAFETY: `p` was returned by alloc/alloc_zeroed with layout `l` and is
    // freed exactly once.
    unsafe { dealloc(p, l) };
}

/// How many objects of one size are kept live at once, so small sizes go
/// through whole thread-cache lists and big ones stay cheap.
fn batch(size: usize) -> usize {
    (MIB / size).clamp(1, 256)
}

#[test]
fn zeroed_after_dirty_reuse_same_size() {
    for size in SIZES {
        for align in [8, 4096] {
            let l = layout(size, align);
            let n = batch(size);
            let reps = if size > 8 * MIB { 2 } else { 3 };
            for rep in 0..reps {
                let dirty: Vec<_> = (0..n).map(|_| alloc_dirty(l)).collect();
                // Free in a different order each time.
                for (k, &p) in dirty.iter().enumerate() {
                    if (k + rep) % 2 == 0 {
                        free(p, l);
                    }
                }
                for (k, &p) in dirty.iter().enumerate().rev() {
                    if (k + rep) % 2 == 1 {
                        free(p, l);
                    }
                }
                let what = format!("size {size} align {align} rep {rep}");
                let zeroed: Vec<_> = (0..n).map(|_| alloc_zero_checked(l, &what)).collect();
                for p in zeroed {
                    bytes(p, size).fill(DIRT);
                    free(p, l);
                }
            }
        }
    }
}

#[test]
fn zeroed_interleaved_sizes() {
    let mut rng = Rng::new(42);
    let steps = if long_tests() { 20_000 } else { 2_000 };
    // (pointer, layout, dirty?) of live blocks.
    let mut live: Vec<(*mut u8, Layout)> = Vec::new();
    for step in 0..steps {
        // Mostly small sizes, sometimes spans up to 8 MiB.
        let size = match rng.below(10) {
            0..=5 => SIZES[rng.below(4)] + rng.below(3) * 8,
            6..=8 => SIZES[3 + rng.below(4)] + rng.below(5) * 4096,
            _ => SIZES[7 + rng.below(2)] + rng.below(3) * 4096,
        };
        let l = layout(size, [8, 16, 64, 4096][rng.below(4)]);
        let what = format!("step {step}");
        let p = if rng.below(2) == 0 {
            alloc_dirty(l)
        } else {
            alloc_zero_checked(l, &what)
        };
        bytes(p, size).fill(DIRT);
        live.push((p, l));
        // Free a random subset so reuse comes from many sizes and orders.
        while live.len() > 24 || (!live.is_empty() && rng.below(3) == 0) {
            let (p, l) = live.swap_remove(rng.below(live.len()));
            free(p, l);
        }
    }
    for (p, l) in live {
        free(p, l);
    }
}

#[test]
fn zeroed_after_coalescing_neighbours() {
    for (unit, align) in [
        (8 * MIB, 8),
        (300 * KIB, 8),
        (40 * KIB, 4096),
        (4096, 4096),
        (MIB, 2 * MIB),
    ] {
        for round in 0..3 {
            let l1 = layout(unit, align);
            // Several neighbours, all dirty, with a guard at the end.
            let blocks: Vec<_> = (0..6).map(|_| alloc_dirty(l1)).collect();
            let what = format!("unit {unit} align {align} round {round}");
            // Free the first four (adjacent ones can coalesce) in scrambled order.
            for &k in &[1usize, 3, 0, 2] {
                free(blocks[k], l1);
            }
            // Reuse them as one bigger block, then as pieces again.
            let l2 = layout(2 * unit + round * 4096, align);
            let big = alloc_zero_checked(l2, &format!("{what}: double block"));
            let one = alloc_zero_checked(l1, &format!("{what}: single block"));
            bytes(big, l2.size()).fill(DIRT);
            bytes(one, l1.size()).fill(DIRT);
            free(big, l2);
            free(one, l1);
            free(blocks[4], l1);
            free(blocks[5], l1);
            let l6 = layout(6 * unit, align);
            let all = alloc_zero_checked(l6, &format!("{what}: six blocks"));
            bytes(all, l6.size()).fill(DIRT);
            free(all, l6);
        }
    }
}

#[test]
fn vec_of_zeros_after_dirty_frees() {
    for size in SIZES {
        for rep in 0..3 {
            drop(vec![DIRT; size]);
            let v = vec![0u8; size];
            assert_zero(&v, &format!("vec![0u8; {size}] rep {rep}"));
            drop(vec![DIRT; (size / 8 + 1) * 8]);
            let w = vec![0u64; size / 8 + 1];
            // SAFETY: the u64 elements are plain bytes; the view lives as long as `w`.
            let wb = unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), w.len() * 8) };
            assert_zero(wb, &format!("vec![0u64; {}] rep {rep}", w.len()));
            drop(v);
        }
    }
}

/// Writes one byte into every 97th OS page of the block, starting at page
/// `first`, at offset `at` in the page.
fn touch_sparsely(p: *mut u8, size: usize, first: usize, at: usize) -> usize {
    let b = bytes(p, size);
    let mut touched = 0;
    for page in (first..size / 4096).step_by(97) {
        b[page * 4096 + at] = 0x5A;
        touched += 1;
    }
    touched
}

#[test]
fn partially_written_big_block_comes_back_zero() {
    let reps = if long_tests() { 40 } else { 5 };
    for (size, align) in [(64 * MIB, 8), (64 * MIB + 4096, 4096), (64 * MIB, 2 * MIB)] {
        let l = layout(size, align);
        for rep in 0..reps {
            let (first, at) = (rep * 13 % 97, rep * 1237 % 4096);
            // SAFETY: the layout has a non-zero size.
            let p = unsafe {
                if rep % 2 == 0 {
                    alloc(l)
                } else {
                    alloc_zeroed(l)
                }
            };
            assert!(!p.is_null());
            assert!(touch_sparsely(p, size, first, at) > 150);
            free(p, l);
            let what =
                format!("size {size:#x} align {align} rep {rep} (pages {first}+97k, byte {at})");
            let q = alloc_zero_checked(l, &what);
            // Dirty it sparsely again (other pages) for the next round.
            touch_sparsely(q, size, (first + 50) % 97, 4095 - at);
            free(q, l);
        }
        // A smaller block carved from the freed one, dirtied, then the full size again.
        let small = layout(size / 4, align);
        let s = alloc_dirty(small);
        free(s, small);
        let q = alloc_zero_checked(
            l,
            &format!("size {size:#x} after a dirty quarter-size block"),
        );
        free(q, l);
    }
}

#[test]
fn zeroed_reuse_of_objects_freed_by_another_thread() {
    let sizes = [8usize, 24, 100, 1000, 4096, 40 * KIB, 300 * KIB];
    let rounds = if long_tests() { 50 } else { 5 };
    let (tx, rx) = mpsc::sync_channel::<Vec<Box<[u8]>>>(2);
    let producer = thread::spawn(move || {
        for round in 0..rounds {
            for &size in &sizes {
                let n = batch(size).min(200);
                let batch: Vec<Box<[u8]>> = (0..n)
                    .map(|_| vec![DIRT; size].into_boxed_slice())
                    .collect();
                assert!(batch.iter().all(|b| b[0] == DIRT), "round {round}");
                tx.send(batch).expect("consumer alive");
            }
        }
    });
    let consumer = thread::spawn(move || {
        let mut k = 0;
        for batch in rx {
            let (size, n) = (batch[0].len(), batch.len());
            drop(batch); // cross-thread frees of dirty objects
            let fresh: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; size]).collect();
            for (i, v) in fresh.iter().enumerate() {
                assert_zero(v, &format!("batch {k} object {i} of size {size}"));
            }
            k += 1;
        }
        k
    });
    producer.join().expect("producer panicked");
    assert_eq!(
        consumer.join().expect("consumer panicked"),
        rounds * sizes.len()
    );
}
