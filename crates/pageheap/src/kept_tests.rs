//! Large blocks parked for reuse outside the heap lock ([`crate::kept`]).

use std::sync::Barrier;

use strata_os::FakeOs;

use crate::heap::BadPointer;
use crate::kept::{KEPT_MAX_PAGES, KEPT_SLOTS};
use crate::{PageHeap, PAGE_SIZE};

/// A heap that has seen its lock waited for, so that frees park (its
/// first decay pass, due at once, has run: the fake clock stands still
/// until a test moves it, so no pass forgets the contention meanwhile).
fn contended() -> PageHeap<FakeOs> {
    let heap = PageHeap::new(FakeOs::new());
    heap.os().advance_ms(10_000);
    heap.tick();
    heap.kept.note_contention();
    heap
}

fn alloc(heap: &PageHeap<FakeOs>, len: usize) -> usize {
    let p = heap
        .alloc_large(len, PAGE_SIZE, false)
        .expect("memory")
        .as_ptr();
    // SAFETY: a live block of `len` bytes.
    unsafe { std::ptr::write_bytes(p, 0xA5, len) };
    p as usize
}

#[test]
fn a_freed_block_parks_and_serves_the_next_allocation_it_fits() {
    let heap = contended();
    let len = 64 * PAGE_SIZE;
    let a = alloc(&heap, len);
    let in_use = heap.stats().in_use_bytes;
    // SAFETY: a live block, given up.
    unsafe { heap.free_large(a).unwrap() };
    assert_eq!(heap.kept.pages(), 64, "the block parked");
    let s = heap.stats();
    assert_eq!(s.in_use_bytes, in_use - len, "a parked block is not in use");
    assert!(
        s.free_dirty_bytes >= len,
        "a parked block is free dirty memory"
    );
    // Up to an eighth shorter takes it back, whole.
    let b = alloc(&heap, 57 * PAGE_SIZE);
    assert_eq!(b, a);
    assert_eq!(heap.large_size(b), Ok(len));
    assert_eq!(heap.kept.pages(), 0);
    assert_eq!(heap.stats().large_allocs, 2, "a block taken back counts");
    // SAFETY: as above.
    unsafe { heap.free_large(b).unwrap() };
    // Shorter than that, or longer, it does not fit.
    assert_eq!(heap.kept.take(56), None);
    assert_eq!(heap.kept.take(65), None);
    assert_eq!(heap.kept.pages(), 64);
    heap.check_invariants().unwrap();
}

#[test]
fn zeroed_and_aligned_requests_leave_parked_blocks_alone() {
    let heap = contended();
    let len = 32 * PAGE_SIZE;
    let a = alloc(&heap, len);
    // SAFETY: a live block, given up.
    unsafe { heap.free_large(a).unwrap() };
    let z = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr();
    assert_ne!(z as usize, a, "a zeroed block is not a parked (dirty) one");
    // SAFETY: the block is `len` bytes.
    assert!(unsafe { std::slice::from_raw_parts(z, len) }
        .iter()
        .all(|&b| b == 0));
    assert_eq!(heap.kept.pages(), 32);
    // An alignment past a page is the heap's to find.
    let aligned = heap.alloc_large(len, 16 * PAGE_SIZE, false).unwrap();
    assert_eq!(aligned.as_ptr() as usize % (16 * PAGE_SIZE), 0);
    heap.check_invariants().unwrap();
}

#[test]
fn a_second_free_of_a_parked_block_is_refused() {
    let heap = contended();
    let a = alloc(&heap, 16 * PAGE_SIZE);
    // SAFETY: a live block, given up; then the same address again.
    unsafe {
        heap.free_large(a).unwrap();
        assert_eq!(heap.free_large(a), Err(BadPointer::NotInUse));
    }
    assert_eq!(heap.kept.pages(), 16, "parked once");
    // Taken back, it frees again.
    assert_eq!(alloc(&heap, 16 * PAGE_SIZE), a);
    // SAFETY: live again, given up.
    unsafe { heap.free_large(a).unwrap() };
    heap.check_invariants().unwrap();
}

#[test]
fn with_every_slot_taken_a_block_goes_to_the_heap_and_is_still_checked() {
    let heap = contended();
    let len = KEPT_MAX_PAGES * PAGE_SIZE;
    let blocks: Vec<usize> = (0..KEPT_SLOTS + 1).map(|_| alloc(&heap, len)).collect();
    for &b in &blocks {
        // SAFETY: live blocks, given up.
        unsafe { heap.free_large(b).unwrap() };
    }
    assert_eq!(heap.kept.pages(), KEPT_SLOTS * KEPT_MAX_PAGES);
    let last = blocks[KEPT_SLOTS];
    // SAFETY: freed to the heap already: a bad free, refused.
    assert_eq!(unsafe { heap.free_large(last) }, Err(BadPointer::NotInUse));
    heap.check_invariants().unwrap();
    // Longer blocks never park.
    let big = alloc(&heap, len + PAGE_SIZE);
    let parked = heap.kept.pages();
    // SAFETY: as above.
    unsafe { heap.free_large(big).unwrap() };
    assert_eq!(heap.kept.pages(), parked);
    heap.check_invariants().unwrap();
}

#[test]
fn parked_blocks_go_back_on_release_and_at_the_decay_pass_after_the_delay() {
    let heap = contended();
    assert_eq!(heap.decay_ms(), 1_000);
    let a = alloc(&heap, 40 * PAGE_SIZE);
    // SAFETY: a live block, given up.
    unsafe { heap.free_large(a).unwrap() };
    heap.os().advance_ms(100);
    heap.tick();
    assert_eq!(heap.kept.pages(), 40, "too recent for the pass");
    heap.os().advance_ms(2_000);
    heap.tick();
    assert_eq!(
        heap.kept.pages(),
        0,
        "parked past the delay: back in the heap"
    );
    assert!(!heap.kept.contended(), "a pass forgets the contention");
    heap.check_invariants().unwrap();
    // SAFETY: freed (and since returned to the heap): refused.
    assert_eq!(unsafe { heap.free_large(a) }, Err(BadPointer::NotInUse));

    heap.kept.note_contention();
    let b = alloc(&heap, 40 * PAGE_SIZE);
    // SAFETY: as above.
    unsafe { heap.free_large(b).unwrap() };
    assert_eq!(heap.kept.pages(), 40);
    assert!(heap.release_free_memory() >= 40 * PAGE_SIZE);
    assert_eq!(heap.kept.pages(), 0);
    assert_eq!(heap.stats().in_use_bytes, 0);
    heap.check_invariants().unwrap();
    // The record, handed out again, frees as any other.
    let c = alloc(&heap, 40 * PAGE_SIZE);
    // SAFETY: as above.
    unsafe { heap.free_large(c).unwrap() };
}

#[test]
fn parked_blocks_serve_before_the_heap_grows() {
    let heap = contended();
    // Two blocks of 100 pages are neighbours in each 2 MiB the heap grew by.
    let blocks: Vec<usize> = (0..KEPT_SLOTS)
        .map(|_| alloc(&heap, 100 * PAGE_SIZE))
        .collect();
    for &b in &blocks {
        // SAFETY: live blocks, given up.
        unsafe { heap.free_large(b).unwrap() };
    }
    assert_eq!(heap.kept.pages(), KEPT_SLOTS * 100);
    let mapped = heap.stats().mapped_bytes;
    // Fits no parked block and no free span: the parked ones join the
    // heap, merge, and serve it.
    let big = alloc(&heap, 150 * PAGE_SIZE);
    assert_eq!(heap.stats().mapped_bytes, mapped, "the heap did not grow");
    assert_eq!(heap.kept.pages(), 0);
    assert!(blocks.contains(&big));
    heap.check_invariants().unwrap();
}

#[test]
fn without_contention_a_freed_block_goes_to_the_heap() {
    let heap = PageHeap::new(FakeOs::new());
    let a = alloc(&heap, 16 * PAGE_SIZE);
    // SAFETY: a live block, given up.
    unsafe { heap.free_large(a).unwrap() };
    assert_eq!(heap.kept.pages(), 0);
    assert_eq!(heap.stats().in_use_bytes, 0);
}

#[test]
fn of_two_racing_frees_of_one_block_one_passes() {
    let heap = contended();
    let start = Barrier::new(2);
    for round in 0..400 {
        // Parked blocks and blocks freed to the heap both: every slot
        // taken in the later rounds.
        let len = (8 + round % 3) * PAGE_SIZE;
        let a = alloc(&heap, len);
        let passed: usize = std::thread::scope(|s| {
            let free = || {
                start.wait();
                // SAFETY: one of the two frees gives a live block up; the
                // other is a double free the heap must refuse.
                usize::from(unsafe { heap.free_large(a) }.is_ok())
            };
            let t = s.spawn(free);
            free() + t.join().unwrap()
        });
        assert_eq!(passed, 1, "round {round}");
        if round % 50 == 0 {
            heap.kept.note_contention();
        }
    }
    heap.release_free_memory();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats().in_use_bytes, 0);
}
