//! The alignment matrix: every power-of-two alignment from 1 B to 1 GiB with
//! sizes around it, through `alloc`, `alloc_zeroed` and `realloc`; and layouts
//! that cannot be satisfied, which must give a null pointer.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use common::{assert_zero, check, fill, GIB, MIB};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};

/// Live bytes (sizes rounded up to their alignment) one matrix cell may hold.
const MAX_TOTAL: usize = 5 * GIB / 2;
/// Blocks up to this size are filled and checked completely; bigger ones only
/// at their first, middle and last bytes.
const FULL_CHECK: usize = 4 * MIB;

fn aligns() -> impl Iterator<Item = usize> {
    (0..=30).map(|shift| 1usize << shift)
}

fn sizes_for(align: usize) -> Vec<usize> {
    let mut v = if align >= 64 * MIB {
        vec![1, align]
    } else {
        vec![1, align - 1, align, align + 1, 3 * align / 2, 4096, 100_000]
    };
    v.retain(|&s| s > 0 && s.next_multiple_of(align) <= MAX_TOTAL);
    v.sort_unstable();
    v.dedup();
    v
}

/// How many blocks of one layout are kept live at once.
fn copies_for(size: usize, align: usize) -> usize {
    (MAX_TOTAL / size.next_multiple_of(align)).clamp(1, 6)
}

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

/// Writes a tag at the first, middle and last byte (or the whole pattern if the
/// block is small enough), so that overlapping blocks are noticed.
fn mark(b: &mut [u8], seed: u64) {
    let size = b.len();
    if size <= FULL_CHECK {
        fill(b, seed);
    } else {
        b[0] = seed as u8;
        b[size / 2] = (seed >> 8) as u8;
        b[size - 1] = (seed >> 16) as u8;
    }
}

/// Checks what `mark` wrote into a block of `size` bytes, of which `b` is a
/// prefix (what survived a realloc).
fn check_mark(b: &[u8], size: usize, seed: u64, what: &str) {
    let keep = b.len();
    if size <= FULL_CHECK {
        check(b, seed, what);
    } else {
        let tags = [
            (0, seed as u8),
            (size / 2, (seed >> 8) as u8),
            (size - 1, (seed >> 16) as u8),
        ];
        for (off, tag) in tags.into_iter().filter(|&(off, _)| off < keep) {
            assert_eq!(b[off], tag, "{what}: tag at byte {off} of {:p}", b.as_ptr());
        }
    }
}

fn assert_disjoint(blocks: &[(*mut u8, usize)], what: &str) {
    let mut ranges: Vec<(usize, usize)> = blocks
        .iter()
        .map(|&(p, s)| (p as usize, p as usize + s))
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "{what}: blocks {:#x?} and {:#x?} overlap",
            w[0],
            w[1]
        );
    }
}

fn assert_aligned(p: *mut u8, align: usize, what: &str) {
    assert!(!p.is_null(), "{what}: null pointer");
    assert_eq!(
        p as usize % align,
        0,
        "{what}: {p:p} is not aligned to {align:#x}"
    );
}

/// Allocates several blocks of each matrix layout (alignments up to
/// `max_align`) with `zeroed` or plain `alloc`, checks alignment, contents and
/// disjointness, and frees them. `max_copies` bounds the blocks of one layout
/// live at once (zeroed huge blocks may be cleared by writing them).
fn run_matrix(zeroed: bool, max_align: usize, max_copies: usize) {
    let mut seed = 1u64;
    for align in aligns().filter(|&a| a <= max_align) {
        for size in sizes_for(align) {
            let l = layout(size, align);
            let what = format!(
                "{} size {size:#x} align {align:#x}",
                if zeroed { "alloc_zeroed" } else { "alloc" }
            );
            let mut blocks = Vec::new();
            let copies = if size > 32 * MIB {
                max_copies
            } else {
                copies_for(size, align)
            };
            for _ in 0..copies.min(copies_for(size, align)) {
                // SAFETY: the layout has a non-zero size.
                let p = unsafe {
                    if zeroed {
                        alloc_zeroed(l)
                    } else {
                        alloc(l)
                    }
                };
                assert_aligned(p, align, &what);
                if zeroed {
                    // SAFETY: the block is live, owned here and at least this long.
                    let b = unsafe { bytes(p, size) };
                    if size <= FULL_CHECK {
                        assert_zero(b, &what);
                    } else {
                        assert_eq!(
                            [b[0], b[size / 2], b[size - 1]],
                            [0, 0, 0],
                            "{what}: not zero"
                        );
                    }
                }
                seed += 1;
                // SAFETY: `p` was just allocated with `size` bytes.
                mark(unsafe { bytes(p, size) }, seed);
                blocks.push((p, size, seed));
            }
            let ranges: Vec<_> = blocks.iter().map(|&(p, s, _)| (p, s)).collect();
            assert_disjoint(&ranges, &what);
            for &(p, size, seed) in &blocks {
                // SAFETY: `p` is live with `size` bytes until the dealloc below.
                check_mark(unsafe { bytes(p, size) }, size, seed, &what);
                // Leave the block dirty so that later zeroed blocks reuse dirty memory.
                // SAFETY: `p` was allocated above with layout `l` and is freed once.
                unsafe { dealloc(p, l) };
            }
        }
    }
}

#[test]
fn alignment_matrix_alloc() {
    run_matrix(false, GIB, usize::MAX);
}

#[test]
fn alignment_matrix_alloc_zeroed() {
    // Twice: the second pass reuses the blocks the first pass left dirty. Huge
    // zeroed blocks are kept one at a time (their disjointness is covered by
    // the plain matrix), so an allocator that clears them by writing stays quick.
    run_matrix(true, GIB, 1);
    run_matrix(true, 32 * MIB, 1);
}

#[test]
fn alignment_matrix_realloc() {
    let mut seed = 1000u64;
    for align in aligns() {
        let steps: Vec<usize> = if align >= 64 * MIB {
            vec![1, align, 1]
        } else {
            vec![1, 4096, align + 1, 3 * align, 100_000, align.max(2) - 1, 1]
        };
        let what =
            |from: usize, to: usize| format!("realloc align {align:#x}: {from:#x} -> {to:#x}");
        // SAFETY: the layout has a non-zero size.
        let mut p = unsafe { alloc(layout(steps[0], align)) };
        assert_aligned(p, align, "first block");
        seed += 1;
        // SAFETY: `p` was just allocated with `steps[0]` bytes.
        mark(unsafe { bytes(p, steps[0]) }, seed);
        for w in steps.windows(2) {
            let (old, new) = (w[0], w[1]);
            // SAFETY: `p` is live with layout (old, align); `new` is non-zero and
            // far below isize::MAX.
            let q = unsafe { realloc(p, layout(old, align), new) };
            assert_aligned(q, align, &what(old, new));
            p = q;
            // SAFETY: `p` is live with `new` bytes, and `old.min(new)` <= `new`.
            let kept = unsafe { bytes(p, old.min(new)) };
            check_mark(kept, old, seed, &what(old, new));
            seed += 1;
            // SAFETY: `p` is live with `new` bytes.
            mark(unsafe { bytes(p, new) }, seed);
        }
        // SAFETY: `p` is live with the layout of the last step.
        unsafe { dealloc(p, layout(*steps.last().unwrap(), align)) };
    }
}

/// Layouts no allocator can satisfy: near isize::MAX, beyond the address
/// space, or aligned beyond any user address.
fn impossible_layouts() -> Vec<Layout> {
    let max = isize::MAX as usize;
    vec![
        layout(max - 4095, 4096),
        layout(max, 1),
        layout(max - 7, 8),
        layout(max - (2 * MIB - 1), 2 * MIB),
        layout(max / 2 + 1, 16),
        layout(1 << 48, 8),
        layout(1 << 48, 1 << 30),
        layout(1, 1 << 62),
        layout(4096, 1 << 62),
    ]
}

#[test]
fn impossible_layouts_return_null() {
    for l in impossible_layouts() {
        // SAFETY: the layout has a non-zero size; a non-null result is freed.
        let p = unsafe { alloc(l) };
        assert!(p.is_null(), "alloc({l:?}) returned {p:p}, expected null");
        // SAFETY: as above.
        let p = unsafe { alloc_zeroed(l) };
        assert!(
            p.is_null(),
            "alloc_zeroed({l:?}) returned {p:p}, expected null"
        );
    }
    // The allocator still works afterwards.
    let v = vec![7u8; 1000];
    assert!(v.iter().all(|&b| b == 7));
}

#[test]
fn realloc_to_impossible_size_keeps_old_block() {
    let max = isize::MAX as usize;
    for align in [8, 64, 4096, 2 * MIB] {
        // 40 MiB is a huge block (a mapping of its own, resized by mremap).
        for old in [8, 64, 4096, 300 * 1024, 4 * MIB, 40 * MIB] {
            let l = layout(old, align);
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { alloc(l) };
            assert_aligned(p, align, "block to grow");
            let seed = (align * 31 + old) as u64;
            // SAFETY: the block is live, owned here and at least this long.
            fill(unsafe { bytes(p, old) }, seed);
            // Sizes that, rounded up to `align`, still fit in isize (as realloc
            // requires) but that no allocator can provide.
            for new in [max - 4095 - (align - 1).min(2 * MIB - 1), 1 << 48] {
                let new = new & !(align - 1);
                // SAFETY: `p` is live with layout `l`; `new` rounded up to `align`
                // is at most isize::MAX.
                let q = unsafe { realloc(p, l, new) };
                assert!(
                    q.is_null(),
                    "realloc({old:#x} align {align:#x} -> {new:#x}) returned {q:p}"
                );
                // SAFETY: the block is live, owned here and at least this long.
                check(
                    unsafe { bytes(p, old) },
                    seed,
                    "block after a failed realloc",
                );
            }
            // The old block is still valid: it can be grown for real and freed.
            let new = 2 * old + 100;
            // SAFETY: `p` is live with layout `l`.
            let q = unsafe { realloc(p, l, new) };
            assert_aligned(q, align, "realloc after a failed realloc");
            // SAFETY: `q` is live with at least `old` bytes, owned here.
            let kept = unsafe { bytes(q, old) };
            check(kept, seed, "contents after a failed then real realloc");
            // SAFETY: `q` is live with layout (new, align).
            unsafe { dealloc(q, layout(new, align)) };
        }
    }
}

#[test]
fn huge_realloc_keeps_alignment_and_contents() {
    // Huge blocks are resized by moving page tables; with a neighbour right
    // behind, growing cannot happen in place and the mapping must move to an
    // address that still has the alignment.
    let steps = [40 * MIB, 72 * MIB, 130 * MIB + 4096, 33 * MIB, MIB + 1];
    for align in [8, 4096, 64 * 1024, 2 * MIB, 16 * MIB, 64 * MIB] {
        let what =
            |from: usize, to: usize| format!("huge realloc align {align:#x}: {from:#x} -> {to:#x}");
        let l0 = layout(steps[0], align);
        // SAFETY: non-zero layouts.
        let (mut p, neighbour) = unsafe { (alloc(l0), alloc(l0)) };
        assert_aligned(p, align, "first huge block");
        assert_aligned(neighbour, align, "neighbour huge block");
        let mut seed = align as u64;
        // SAFETY: `p` and `neighbour` are live blocks of `steps[0]` bytes.
        unsafe {
            fill(bytes(p, steps[0]), seed);
            fill(bytes(neighbour, steps[0]), !seed);
        }
        for w in steps.windows(2) {
            let (old, new) = (w[0], w[1]);
            // SAFETY: `p` is live with layout (old, align); `new` is small enough.
            let q = unsafe { realloc(p, layout(old, align), new) };
            assert_aligned(q, align, &what(old, new));
            p = q;
            // SAFETY: `p` is live with `new` bytes.
            let b = unsafe { bytes(p, new) };
            check(&b[..old.min(new)], seed, &what(old, new));
            seed += 1;
            fill(b, seed);
        }
        // SAFETY: both blocks are live with these layouts; `neighbour` was not
        // touched by the reallocations of `p`.
        unsafe {
            check(
                bytes(neighbour, steps[0]),
                !(align as u64),
                "neighbour of a huge realloc",
            );
            dealloc(neighbour, l0);
            dealloc(p, layout(*steps.last().unwrap(), align));
        }
    }
}

/// C's `malloc` and `calloc` (`strata::raw`) at every size of the first
/// classes and around the largest small size, where the checked build's
/// marks push a request into a large block: never null, aligned as C
/// promises, usable in full, zero from `calloc`, and freed cleanly.
#[test]
fn c_entry_points_at_the_class_edges() {
    // The largest small size (`strata_central::MAX_SMALL`).
    let max = 256 << 10;
    let sizes = (0..=80).chain(max - 24..=max + 24);
    for size in sizes {
        for zeroed in [false, true] {
            let p = if zeroed {
                strata::raw::alloc_zeroed(size, 1)
            } else {
                strata::raw::malloc(size)
            };
            assert!(!p.is_null(), "size {size}, zeroed {zeroed}");
            assert_aligned(p, if size > 8 { 16 } else { 8 }, "C block");
            // SAFETY: a live block of at least `size` bytes, freed once.
            unsafe {
                let usable = strata::raw::usable_size(p);
                assert!(usable >= size, "size {size}: usable {usable}");
                let b = bytes(p, size);
                if zeroed {
                    assert!(b.iter().all(|&x| x == 0), "size {size} not zero");
                }
                b.fill(0xc5);
                strata::raw::free(p);
            }
        }
    }
}
