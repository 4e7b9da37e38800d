//! `alloc_zeroed` must return all-zero memory even when it reuses memory the
//! program dirtied: from the thread cache, from other threads, from spans that
//! were coalesced with their neighbours, and from big blocks whose pages were
//! only partly written (strata clears only the pages that are resident).

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use common::{assert_zero, long_tests, Rng, KIB, MIB};
use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
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

/// A block from `alloc` or `alloc_zeroed`, owned until dropped (`dealloc`).
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Block {
    /// `alloc`, then every byte set to [`DIRT`].
    fn dirty(layout: Layout) -> Block {
        let mut b = Block::raw(layout, false);
        b.bytes().fill(DIRT);
        b
    }

    /// `alloc_zeroed`, with alignment and every byte checked.
    fn zeroed(layout: Layout, what: &str) -> Block {
        let mut b = Block::raw(layout, true);
        assert_eq!(
            b.ptr.as_ptr() as usize % layout.align(),
            0,
            "{what}: misaligned"
        );
        assert_zero(b.bytes(), &format!("{what}: alloc_zeroed({layout:?})"));
        b
    }

    /// `alloc` or `alloc_zeroed`, contents untouched.
    fn raw(layout: Layout, zeroed: bool) -> Block {
        // SAFETY: every layout used here has a non-zero size.
        let p = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        let ptr = NonNull::new(p).unwrap_or_else(|| panic!("allocation of {layout:?} failed"));
        Block { ptr, layout }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the block is live (freed only on drop), `layout.size()` bytes
        // long, and borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `raw` with this layout, freed exactly once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
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
                let mut dirty: Vec<Option<Block>> = (0..n).map(|_| Some(Block::dirty(l))).collect();
                // Free in a different order each time.
                for (k, b) in dirty.iter_mut().enumerate() {
                    if (k + rep) % 2 == 0 {
                        drop(b.take());
                    }
                }
                for b in dirty.iter_mut().rev() {
                    drop(b.take());
                }
                let what = format!("size {size} align {align} rep {rep}");
                let zeroed: Vec<_> = (0..n).map(|_| Block::zeroed(l, &what)).collect();
                for mut b in zeroed {
                    b.bytes().fill(DIRT);
                }
            }
        }
    }
}

#[test]
fn zeroed_interleaved_sizes() {
    let mut rng = Rng::new(42);
    let steps = if long_tests() { 20_000 } else { 2_000 };
    let mut live: Vec<Block> = Vec::new();
    for step in 0..steps {
        // Mostly small sizes, sometimes spans up to 8 MiB.
        let size = match rng.below(10) {
            0..=5 => SIZES[rng.below(4)] + rng.below(3) * 8,
            6..=8 => SIZES[3 + rng.below(4)] + rng.below(5) * 4096,
            _ => SIZES[7 + rng.below(2)] + rng.below(3) * 4096,
        };
        let l = layout(size, [8, 16, 64, 4096][rng.below(4)]);
        let what = format!("step {step}");
        let mut b = if rng.below(2) == 0 {
            Block::dirty(l)
        } else {
            Block::zeroed(l, &what)
        };
        b.bytes().fill(DIRT);
        live.push(b);
        // Free a random subset so reuse comes from many sizes and orders.
        while live.len() > 24 || (!live.is_empty() && rng.below(3) == 0) {
            drop(live.swap_remove(rng.below(live.len())));
        }
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
            // Several neighbours, all dirty.
            let mut blocks: Vec<Option<Block>> = (0..6).map(|_| Some(Block::dirty(l1))).collect();
            let what = format!("unit {unit} align {align} round {round}");
            // Free the first four (adjacent ones can coalesce) in scrambled order.
            for k in [1, 3, 0, 2] {
                drop(blocks[k].take());
            }
            // Reuse them as one bigger block, then as pieces again.
            let l2 = layout(2 * unit + round * 4096, align);
            let mut big = Block::zeroed(l2, &format!("{what}: double block"));
            let mut one = Block::zeroed(l1, &format!("{what}: single block"));
            big.bytes().fill(DIRT);
            one.bytes().fill(DIRT);
            drop((big, one));
            drop(blocks);
            let mut all = Block::zeroed(layout(6 * unit, align), &format!("{what}: six blocks"));
            all.bytes().fill(DIRT);
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
fn touch_sparsely(b: &mut [u8], first: usize, at: usize) -> usize {
    let mut touched = 0;
    for page in (first..b.len() / 4096).step_by(97) {
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
            let mut b = Block::raw(l, rep % 2 == 1);
            assert!(touch_sparsely(b.bytes(), first, at) > 150);
            drop(b);
            let what =
                format!("size {size:#x} align {align} rep {rep} (pages {first}+97k, byte {at})");
            let mut q = Block::zeroed(l, &what);
            // Dirty it sparsely again (other pages) for the next round.
            touch_sparsely(q.bytes(), (first + 50) % 97, 4095 - at);
        }
        // A smaller block carved from the freed one, dirtied, then the full size again.
        drop(Block::dirty(layout(size / 4, align)));
        Block::zeroed(
            l,
            &format!("size {size:#x} after a dirty quarter-size block"),
        );
    }
}

#[test]
fn zeroed_huge_mappings_reused_at_other_sizes() {
    // Freed huge blocks (>= 32 MiB) are kept as mappings and resized for the
    // next huge request: growing, shrinking, and at other alignments.
    let sizes = [200, 64, 100, 33, 32, 150, 40, 64, 200].map(|m| m * MIB);
    for (i, size) in sizes.into_iter().enumerate() {
        let size = size + (i % 3) * 4096 + (i % 2) * 123;
        let align = [8, 4096, 2 * MIB, 64 * MIB][i % 4];
        let l = layout(size, align);
        let mut b = Block::zeroed(l, &format!("huge block {i}"));
        if i % 2 == 0 {
            b.bytes().fill(DIRT);
        } else {
            touch_sparsely(b.bytes(), i, 4095 - i);
        }
        // A huge block at the same time, so the cache holds several mappings.
        let mut other = Block::dirty(layout(33 * MIB + i * 8192, 8));
        other.bytes()[0] = 1;
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
