//! Large blocks that cannot grow in place move their pages to the new block
//! (`Os::move_pages`) instead of leaving the caller to copy them, and the
//! old span comes back clean: it reads as zero and holds no memory.

use strata_os::{FakeOs, SystemOs};
use strata_pageheap::{PageHeap, HUGE_MIN, MOVE_MIN, PAGE_SIZE};

/// Writes a byte derived from each page's index into every page.
fn fill(p: usize, len: usize) {
    for off in (0..len).step_by(PAGE_SIZE) {
        // SAFETY: the caller's live block of `len` bytes.
        unsafe { ((p + off) as *mut u8).write((off / PAGE_SIZE) as u8 | 1) };
    }
}

fn check(p: usize, len: usize) {
    for off in (0..len).step_by(PAGE_SIZE) {
        // SAFETY: a live block of at least `len` bytes.
        let b = unsafe { ((p + off) as *const u8).read() };
        assert_eq!(
            b,
            (off / PAGE_SIZE) as u8 | 1,
            "page {} lost",
            off / PAGE_SIZE
        );
    }
}

/// Pages of `[p, p + len)` resident now.
fn resident_pages(p: usize, len: usize) -> usize {
    let page = 4096;
    let mut v = vec![0u8; len / page];
    // SAFETY: the range is mapped (a heap span); mincore only reads.
    assert_eq!(
        unsafe { libc::mincore(p as *mut _, len, v.as_mut_ptr()) },
        0
    );
    v.iter().filter(|&&b| b & 1 == 1).count()
}

/// A block of `len` bytes with a live block right after it, so it cannot
/// grow in place. A fresh heap carves its first growth in address order.
fn blocked_block<O: strata_os::Os>(heap: &PageHeap<O>, len: usize) -> (usize, usize) {
    let a = heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize;
    let b = heap
        .alloc_large(PAGE_SIZE, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    assert_eq!(b, a + len, "a fresh heap carves its first blocks in order");
    (a, b)
}

#[test]
fn a_blocked_large_block_grows_by_moving_its_pages() {
    let heap = PageHeap::new(SystemOs::new());
    let len = 2 * MOVE_MIN;
    let (a, b) = blocked_block(&heap, len);
    fill(a, len);
    let before = heap.stats();
    // SAFETY: `a` is our live block, allocated with page alignment.
    let q = unsafe { heap.resize_large(a, len + len / 2, PAGE_SIZE) }
        .expect("a block of MOVE_MIN or more grows by moving")
        .as_ptr() as usize;
    assert_ne!(q, a, "it could not grow in place");
    check(q, len);
    let after = heap.stats();
    assert_eq!(after.large_moves, before.large_moves + 1);
    assert!(
        after.free_clean_bytes >= before.free_clean_bytes + len,
        "the old span is free and clean: {before:?} -> {after:?}"
    );
    assert_eq!(resident_pages(a, len), 0, "the old pages hold no memory");
    // The old place reads as zero, and a zeroed request may take it as is.
    let z = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr() as usize;
    // SAFETY: a live block of `len` bytes.
    let s = unsafe { std::slice::from_raw_parts(z as *const u8, len) };
    assert!(s.iter().all(|&x| x == 0));
    // SAFETY: live blocks of this heap, freed once.
    unsafe {
        for p in [q, b, z] {
            heap.free_large(p).unwrap();
        }
    }
    heap.check_invariants().unwrap();
}

#[test]
fn small_blocks_and_os_layers_that_cannot_move_leave_the_copy_to_the_caller() {
    // Under MOVE_MIN: the caller copies.
    let heap = PageHeap::new(SystemOs::new());
    let len = MOVE_MIN / 2;
    let (a, b) = blocked_block(&heap, len);
    // SAFETY: our live block.
    assert!(unsafe { heap.resize_large(a, 2 * len, PAGE_SIZE) }.is_none());
    // An OS layer without `move_pages` (the fake): never moved, and the
    // block stays where it is (the fake maps each growth separately, so
    // there may or may not be room after it: in place or not at all).
    let fake = PageHeap::new(FakeOs::new());
    let len = 2 * MOVE_MIN;
    let c = fake.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize;
    let d = fake
        .alloc_large(PAGE_SIZE, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    fill(c, len);
    // SAFETY: our live block.
    let grown = unsafe { fake.resize_large(c, 2 * len, PAGE_SIZE) };
    assert!(
        grown.is_none_or(|q| q.as_ptr() as usize == c),
        "moved without move_pages"
    );
    check(c, len);
    assert_eq!(fake.stats().large_moves, 0);
    // SAFETY: live blocks, freed once.
    unsafe {
        for p in [a, b] {
            heap.free_large(p).unwrap();
        }
        for p in [c, d] {
            fake.free_large(p).unwrap();
        }
    }
    fake.check_invariants().unwrap();
}

/// Growing into a huge block copies (the huge block must stay one mapping
/// so `mremap` can resize it), gives the old pages back at once, and the
/// huge block then grows by `mremap`.
#[test]
fn growth_into_a_huge_block_releases_the_old_pages_and_remaps_later() {
    let heap = PageHeap::new(SystemOs::new());
    let len = 2 * MOVE_MIN;
    let (a, b) = blocked_block(&heap, len);
    fill(a, len);
    // SAFETY: our live block.
    let q = unsafe { heap.resize_large(a, HUGE_MIN, PAGE_SIZE) }
        .unwrap()
        .as_ptr() as usize;
    check(q, len);
    assert_eq!(resident_pages(a, len), 0, "the old pages hold no memory");
    let remaps = heap.stats().huge_remaps;
    // SAFETY: `q` is our live huge block.
    let r = unsafe { heap.resize_large(q, 2 * HUGE_MIN, PAGE_SIZE) }
        .expect("a huge block grows by mremap")
        .as_ptr() as usize;
    check(r, len);
    assert_eq!(heap.stats().huge_remaps, remaps + 1);
    // SAFETY: live blocks, freed once.
    unsafe {
        heap.free_large(r).unwrap();
        heap.free_large(b).unwrap();
    }
}
