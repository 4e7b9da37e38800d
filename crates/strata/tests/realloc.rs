//! `realloc` up and down across every size boundary, from 8 B through the
//! small size classes and page spans to 100 MiB and back, at several
//! alignments: at each step the whole block holds a fresh pattern, and after
//! each `realloc` the common prefix must have survived.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use common::{check, fill, long_tests, Rng, KIB, MIB};
use std::alloc::{alloc, dealloc, realloc, Layout};
use std::thread;

const ALIGNS: [usize; 5] = [8, 16, 64, 4096, 64 * KIB];

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("valid layout")
}

/// The bytes of a live block.
///
/// # Safety
/// `p` is a live block of at least `size` bytes owned by the caller, and the
/// slice is not used after the block is freed or reallocated.
unsafe fn bytes<'a>(p: *mut u8, size: usize) -> &'a mut [u8] {
    // SAFETY: forwarded contract.
    unsafe { std::slice::from_raw_parts_mut(p, size) }
}

/// Sizes from 8 B to `top`: each power of two with its neighbours and the
/// midpoint, the small/large boundary region around 256 KiB, and big spans.
fn ladder(top: usize) -> Vec<usize> {
    let mut v = vec![8];
    let mut p = 16;
    while p <= 2 * MIB {
        v.extend([p - 1, p, p + 1, p + p / 2]);
        p *= 2;
    }
    v.extend([
        255 * KIB,
        256 * KIB - 8,
        256 * KIB + 8,
        300 * KIB,
        4 * MIB - 1,
        4 * MIB + 1,
    ]);
    v.extend([4 * MIB, 10 * MIB + 4096, 32 * MIB, 100 * MIB]);
    v.retain(|&s| s <= top);
    v.sort_unstable();
    v.dedup();
    v
}

/// An allocation that is moved through a sequence of sizes with `realloc`,
/// holding the pattern `seed` over its whole current size.
struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    seed: u64,
}

impl Block {
    fn new(size: usize, align: usize, seed: u64) -> Block {
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc(layout(size, align)) };
        assert!(!ptr.is_null(), "alloc({size}, {align}) failed");
        assert_eq!(
            ptr as usize % align,
            0,
            "alloc({size}, {align}) misaligned: {ptr:p}"
        );
        // SAFETY: the block is live, owned here and at least this long.
        fill(unsafe { bytes(ptr, size) }, seed);
        Block {
            ptr,
            size,
            align,
            seed,
        }
    }

    /// Reallocates to `new`, checks alignment and the surviving prefix, then
    /// writes a fresh pattern over the whole new size.
    fn resize(&mut self, new: usize) {
        let (old, align) = (self.size, self.align);
        // SAFETY: `ptr` is live with layout (size, align); `new` is non-zero
        // and far below isize::MAX.
        let q = unsafe { realloc(self.ptr, layout(old, align), new) };
        let what = format!("realloc {old} -> {new} (align {align}) from {:p}", self.ptr);
        assert!(!q.is_null(), "{what}: returned null");
        assert_eq!(q as usize % align, 0, "{what}: {q:p} misaligned");
        self.ptr = q;
        self.size = new;
        // SAFETY: the block is live, owned here and at least this long.
        check(unsafe { bytes(q, old.min(new)) }, self.seed, &what);
        self.seed = self.seed.wrapping_add(1);
        // SAFETY: the block is live, owned here and at least this long.
        fill(unsafe { bytes(q, new) }, self.seed);
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // Not while unwinding from another failure: a second panic would abort
        // the whole test binary and hide the first report.
        if !thread::panicking() {
            // SAFETY: the block is live, owned here and at least this long.
            check(
                unsafe { bytes(self.ptr, self.size) },
                self.seed,
                "block before free",
            );
        }
        // SAFETY: `ptr` is live with this layout and is not used again.
        unsafe { dealloc(self.ptr, layout(self.size, self.align)) };
    }
}

// SAFETY: a Block owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for Block {}

/// Walks the ladder up to `top` and back down to 8 B.
fn up_and_down(align: usize, top: usize, seed: u64) {
    let sizes = ladder(top);
    let mut b = Block::new(sizes[0], align, seed);
    for &s in sizes.iter().skip(1) {
        b.resize(s);
    }
    for &s in sizes.iter().rev().skip(1) {
        b.resize(s);
    }
    assert_eq!(b.size, 8);
}

#[test]
fn realloc_ladder_up_and_down_every_alignment() {
    for (k, align) in ALIGNS.into_iter().enumerate() {
        up_and_down(align, 100 * MIB, k as u64 * 1000);
    }
}

#[test]
fn realloc_by_small_steps_within_and_across_classes() {
    for align in ALIGNS {
        let mut b = Block::new(1, align, align as u64);
        let mut size = 1;
        // +1 byte at a time through the smallest classes, then coarser.
        while size < 600 {
            size += 1;
            b.resize(size);
        }
        while size < 70_000 {
            size += 97;
            b.resize(size);
        }
        while size > 1009 {
            size -= 1009;
            b.resize(size);
        }
        while size > 1 {
            size -= 1;
            b.resize(size);
        }
    }
}

#[test]
fn realloc_random_jumps() {
    let mut rng = Rng::new(7);
    let steps = if long_tests() { 20_000 } else { 1_500 };
    let mut blocks: Vec<Block> = Vec::new();
    for i in 0..steps {
        // Sizes spread log-uniformly from 1 B to 4 MiB.
        let bits = rng.below(23);
        let size = 1 + rng.below(1 << bits);
        if blocks.len() < 16 || rng.below(2) == 0 {
            let align = ALIGNS[rng.below(ALIGNS.len())];
            blocks.push(Block::new(size, align, i as u64));
        } else {
            let k = rng.below(blocks.len());
            blocks[k].resize(size);
            if rng.below(4) == 0 {
                drop(blocks.swap_remove(k));
            }
        }
    }
}

#[test]
fn realloc_on_another_thread_than_alloc() {
    let threads = 4;
    let rounds = if long_tests() { 20 } else { 3 };
    for round in 0..rounds {
        // Blocks are allocated here, resized on worker threads, returned and
        // freed here (each realloc may free on a thread that did not allocate).
        let blocks: Vec<Block> = (0..threads * 8)
            .map(|i| {
                Block::new(
                    8 << (i % 16),
                    ALIGNS[i % ALIGNS.len()],
                    (round * 1000 + i) as u64,
                )
            })
            .collect();
        let mut per_thread: Vec<Vec<Block>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, b) in blocks.into_iter().enumerate() {
            per_thread[i % threads].push(b);
        }
        let handles: Vec<_> = per_thread
            .into_iter()
            .map(|mut mine| {
                thread::spawn(move || {
                    for (j, b) in mine.iter_mut().enumerate() {
                        for s in [3 * b.size + 1, 40_000 + j, 17, 300 * KIB, 64] {
                            b.resize(s);
                        }
                    }
                    mine
                })
            })
            .collect();
        for h in handles {
            let mine = h.join().expect("realloc thread panicked");
            for b in &mine {
                assert_eq!(b.size, 64);
            }
        }
    }
}

/// The checks above are only as good as the pattern: make sure it catches a
/// flipped byte, a copy shifted by 8 B or by whole pages, stale contents from
/// another seed, and zeroed memory.
#[test]
fn pattern_check_catches_corruption() {
    let n = 5 * 4096 + 123;
    let mut a = vec![0u8; n];
    fill(&mut a, 5);
    assert_eq!(common::first_mismatch(&a, 5), None);
    assert!(common::first_mismatch(&a, 6).is_some(), "another seed");
    assert_eq!(common::first_nonzero(&a), Some(0));
    let mut b = a.clone();
    b[n - 1] ^= 1;
    assert_eq!(
        common::first_mismatch(&b, 5),
        Some(n - 1),
        "flipped last byte"
    );
    for shift in [8, 4096, 8192] {
        let mut c = vec![0u8; n];
        c[..n - shift].copy_from_slice(&a[shift..]);
        assert_eq!(common::first_mismatch(&c, 5), Some(0), "shifted by {shift}");
    }
    assert!(common::first_mismatch(&vec![0u8; n], 5).is_some(), "zeroed");
    for i in [0, 7, 8, 4095, 4096, 4103, n - 1] {
        assert_eq!(common::pattern_byte(5, i), a[i], "pattern_byte({i})");
    }
}

/// The unsized `realloc` (C's) gives a small block that outgrows its class
/// room for a quarter more, so a block grown 16 bytes at a time is copied
/// about three times per doubling, not at each of the eight or so class
/// boundaries; a block that shrinks to no less than half its class stays
/// put. The contents survive every step. (The checked build moves every
/// block it resizes.)
#[cfg(not(feature = "checked"))]
#[test]
fn unsized_realloc_in_small_steps_moves_once_per_quarter() {
    let mut p = strata::raw::alloc(16, 8);
    let mut size = 16;
    // SAFETY (all): p is a live block of at least `size` bytes.
    unsafe { p.write_bytes(0xA5, size) };
    let mut moves = 0;
    while size < 64 * KIB {
        let q = unsafe { strata::raw::realloc(p, size + 16, 8) };
        assert!(!q.is_null());
        assert!(unsafe { std::slice::from_raw_parts(q, size) }
            .iter()
            .all(|&b| b == 0xA5));
        moves += usize::from(q != p);
        p = q;
        size += 16;
        unsafe { p.add(size - 16).write_bytes(0xA5, 16) };
    }
    // 12 doublings from 16 B: one move per class boundary is 79 moves; a
    // quarter more room at each move, 29.
    assert!(moves <= 48, "{moves} moves from 16 B to 64 KiB");
    // Shrinking within half of the class: in place.
    let usable = unsafe { strata::raw::usable_size(p) };
    let q = unsafe { strata::raw::realloc(p, usable / 2 + 1, 8) };
    assert_eq!(q, p);
    unsafe { strata::raw::free(q) };
}

/// A large block grown (and shrunk) a little at a time through the unsized
/// `realloc` stays where it is while its pages hold the new size, and
/// keeps its contents when it has to grow past them: the step that keeps
/// its pages is answered without the page heap's full path, and must
/// agree with it. (The checked build moves every block it resizes.)
#[cfg(not(feature = "checked"))]
#[test]
fn unsized_realloc_of_a_large_block_in_small_steps() {
    let byte = |i: usize| (i.wrapping_mul(131) >> 3) as u8;
    let mut size = 300 * KIB;
    let mut p = strata::raw::alloc(size, 8);
    assert!(!p.is_null());
    // SAFETY (all): p is a live block of at least `size` bytes.
    for i in 0..size {
        unsafe { p.add(i).write(byte(i)) };
    }
    let mut in_place = 0;
    while size < 2 * 1024 * KIB {
        let new = size + 1000;
        let usable = unsafe { strata::raw::usable_size(p) };
        let q = unsafe { strata::raw::realloc(p, new, 8) };
        assert!(!q.is_null());
        if new <= usable {
            assert_eq!(
                q, p,
                "{size} -> {new} moved within its {usable} usable bytes"
            );
            in_place += 1;
        }
        for i in (0..size).step_by(4093).chain([size - 1]) {
            assert_eq!(
                unsafe { q.add(i).read() },
                byte(i),
                "byte {i} after {size} -> {new}"
            );
        }
        assert!(unsafe { strata::raw::usable_size(q) } >= new);
        for i in size..new {
            unsafe { q.add(i).write(byte(i)) };
        }
        p = q;
        size = new;
    }
    assert!(in_place > 1000, "only {in_place} steps in place");
    // Shrinking by a little: in place, the contents kept.
    let q = unsafe { strata::raw::realloc(p, size - 1000, 8) };
    assert_eq!(q, p);
    assert_eq!(unsafe { q.add(size - 1001).read() }, byte(size - 1001));
    unsafe { strata::raw::free(q) };
}

/// A block the heap profiler sampled lives in a slot of its own that holds
/// its whole size class: resized within the class it stays put, and when it
/// later moves, every byte the program wrote since (up to the size it last
/// asked for, or the usable size it was told) goes with it. Nearly every
/// block is sampled here (a 64-byte interval). In a child process: the
/// profiler is the whole process's.
#[test]
fn sampled_blocks_keep_their_bytes_through_unsized_realloc() {
    const NAME: &str = "sampled_blocks_keep_their_bytes_through_unsized_realloc";
    if !common::in_child("STRATA_REALLOC_TEST", NAME, &[]) {
        return;
    }
    strata::profile::set_interval(64);
    strata::profile::start();
    let byte = |i: usize, round: usize| (i.wrapping_mul(31) ^ round) as u8;
    let mut rng = Rng::new(11);
    for round in 0..300 {
        let mut size = 1 + rng.below(64);
        let mut p = strata::raw::alloc(size, 8);
        assert!(!p.is_null());
        // SAFETY (all): p is a live block of at least `usable` bytes.
        let mut usable = unsafe { strata::raw::usable_size(p) };
        assert!(usable >= size);
        for i in 0..usable {
            unsafe { p.add(i).write(byte(i, round)) };
        }
        while size < 8 * KIB {
            let new = size + 1 + rng.below(96);
            let q = unsafe { strata::raw::realloc(p, new, 8) };
            assert!(!q.is_null());
            let kept = usable.min(new);
            for i in 0..kept {
                let got = unsafe { q.add(i).read() };
                assert_eq!(
                    got,
                    byte(i, round),
                    "byte {i} of {kept} after {size} -> {new}"
                );
            }
            p = q;
            size = new;
            usable = unsafe { strata::raw::usable_size(p) };
            assert!(usable >= size, "usable {usable} below {size}");
            for i in kept..usable {
                unsafe { p.add(i).write(byte(i, round)) };
            }
        }
        unsafe { strata::raw::free(p) };
    }
    assert!(
        strata::profile::stats().samples > 1000,
        "{:?}",
        strata::profile::stats()
    );
}
