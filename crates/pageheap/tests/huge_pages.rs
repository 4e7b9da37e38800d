//! The huge-page policy, read back from the kernel: which of the heap's
//! growth carries `MADV_HUGEPAGE` (the `hg` flag of its mapping in
//! `/proc/self/smaps`). By default only growth for a plain request of 4 MiB
//! or more asks, and only while the heap is under 64 MiB;
//! `set_huge_pages_after` makes all growth past a threshold ask too. The heap's first 8 MiB of growth and growth for zeroed requests
//! ask not to get them (the `nh` flag of `MADV_NOHUGEPAGE`), which matters
//! where the system backs every mapping with huge pages.

use strata_os::SystemOs;
use strata_pageheap::{PageHeap, DEFAULT_HUGE_PAGES_AFTER, PAGE_SIZE};
use strata_testkit::smaps::huge_page_hinted_bytes as hinted_bytes;
use strata_testkit::smaps::no_huge_page_bytes as refused_bytes;

const MIB: usize = 1 << 20;

fn block(heap: &PageHeap<SystemOs>, len: usize, zero: bool) -> usize {
    heap.alloc_large(len, PAGE_SIZE, zero)
        .expect("the heap grows")
        .as_ptr() as usize
}

#[test]
fn only_big_plain_requests_ask_for_huge_pages_unless_told() {
    assert_eq!(DEFAULT_HUGE_PAGES_AFTER, usize::MAX);
    // Requests of whole 2 MiB multiples: each grows the heap by exactly its
    // own size, so each block is its own growth, with no neighbour's rest.
    let heap = PageHeap::new(SystemOs::new());
    let mut blocks = Vec::new();
    // 40 MiB of 2 MiB plain requests: past the old 16 MiB threshold, and
    // none asks.
    for i in 0..20 {
        let b = block(&heap, 2 * MIB, false);
        assert_eq!(hinted_bytes(b, 2 * MIB), 0, "a 2 MiB block at {b:#x}");
        // The first 8 MiB of a heap refuse huge pages; the rest leave them
        // to the system.
        let refused = if i < 4 { 2 * MIB } else { 0 };
        assert_eq!(refused_bytes(b, 2 * MIB), refused, "block {i} at {b:#x}");
        blocks.push(b);
    }
    // A plain request of 4 MiB is most likely written whole: it asks.
    let big = block(&heap, 4 * MIB, false);
    assert_eq!(hinted_bytes(big, 4 * MIB), 4 * MIB);
    assert_eq!(refused_bytes(big, 4 * MIB), 0);
    // A zeroed one is often touched sparsely: it refuses them, so that
    // touching a page of it costs a page.
    let zeroed = block(&heap, 8 * MIB, true);
    assert_eq!(hinted_bytes(zeroed, 8 * MIB), 0);
    assert_eq!(refused_bytes(zeroed, 8 * MIB), 8 * MIB);
    // Told to, the heap asks on all growth from here on.
    heap.set_huge_pages_after(0);
    let small = block(&heap, 2 * MIB, false);
    assert_eq!(hinted_bytes(small, 2 * MIB), 2 * MIB);
    let zeroed_after = block(&heap, 2 * MIB, true);
    assert_eq!(hinted_bytes(zeroed_after, 2 * MIB), 2 * MIB);
    // And told never to, it stops again (big plain requests still ask).
    heap.set_huge_pages_after(usize::MAX);
    let small_again = block(&heap, 2 * MIB, false);
    assert_eq!(hinted_bytes(small_again, 2 * MIB), 0);
    for b in blocks
        .into_iter()
        .chain([big, zeroed, small, zeroed_after, small_again])
    {
        // SAFETY: live blocks of this heap, each freed once.
        unsafe { heap.free_large(b).unwrap() };
    }
}

/// A heap that keeps growing by big blocks stops asking for them: each
/// fresh huge page costs more (compaction, a 2 MiB clear) than a block
/// written once gains from fewer TLB misses.
#[test]
fn big_plain_requests_stop_asking_once_the_heap_is_big() {
    let heap = PageHeap::new(SystemOs::new());
    let first = block(&heap, 4 * MIB, false);
    assert_eq!(hinted_bytes(first, 4 * MIB), 4 * MIB, "in a small heap");
    let mut blocks = vec![first];
    // 64 MiB of growth in all.
    for _ in 0..30 {
        blocks.push(block(&heap, 2 * MIB, false));
    }
    let late = block(&heap, 8 * MIB, false);
    assert_eq!(hinted_bytes(late, 8 * MIB), 0, "past 64 MiB of growth");
    assert_eq!(refused_bytes(late, 8 * MIB), 0, "left to the system");
    for b in blocks.into_iter().chain([late]) {
        // SAFETY: live blocks of this heap, each freed once.
        unsafe { heap.free_large(b).unwrap() };
    }
}

#[test]
fn a_threshold_counts_the_heap_s_growth() {
    let heap = PageHeap::new(SystemOs::new());
    heap.set_huge_pages_after(6 * MIB);
    let first: Vec<usize> = (0..3).map(|_| block(&heap, 2 * MIB, false)).collect();
    for &b in &first {
        assert_eq!(hinted_bytes(b, 2 * MIB), 0, "within the first 6 MiB");
    }
    let past = block(&heap, 2 * MIB, false);
    assert_eq!(hinted_bytes(past, 2 * MIB), 2 * MIB, "past 6 MiB of growth");
    for b in first.into_iter().chain([past]) {
        // SAFETY: live blocks of this heap, each freed once.
        unsafe { heap.free_large(b).unwrap() };
    }
}

#[test]
fn a_zeroed_block_of_its_own_refuses_huge_pages_and_still_moves() {
    let heap = PageHeap::new(SystemOs::new());
    let len = strata_pageheap::HUGE_MIN;
    let zeroed = block(&heap, len, true);
    assert_eq!(
        refused_bytes(zeroed, len),
        len,
        "a zeroed mapping of its own"
    );
    let plain = block(&heap, len, false);
    assert_eq!(refused_bytes(plain, len), 0, "a plain mapping of its own");
    // The hint covers the whole mapping, so the kernel can still move it:
    // grown to twice its size, the block keeps its bytes.
    // SAFETY: `zeroed` is a live block of `len` bytes of this heap.
    unsafe {
        core::ptr::write_bytes(zeroed as *mut u8, 0x5a, len);
        let grown = heap
            .resize_large(zeroed, 2 * len, PAGE_SIZE)
            .expect("a huge block grows");
        let bytes = core::slice::from_raw_parts(grown.as_ptr(), len);
        assert!(bytes.iter().all(|&b| b == 0x5a), "the block kept its bytes");
        heap.free_large(grown.as_ptr() as usize).unwrap();
        heap.free_large(plain).unwrap();
    }
}
