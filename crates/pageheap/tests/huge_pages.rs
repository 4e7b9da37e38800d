//! The huge-page policy, read back from the kernel: which of the heap's
//! growth carries `MADV_HUGEPAGE` (the `hg` flag of its mapping in
//! `/proc/self/smaps`). By default only growth for a plain request of 4 MiB
//! or more asks; `set_huge_pages_after` makes all growth past a threshold
//! ask too.

use strata_os::SystemOs;
use strata_pageheap::{PageHeap, DEFAULT_HUGE_PAGES_AFTER, PAGE_SIZE};
use strata_testkit::smaps::huge_page_hinted_bytes as hinted_bytes;

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
    for _ in 0..20 {
        let b = block(&heap, 2 * MIB, false);
        assert_eq!(hinted_bytes(b, 2 * MIB), 0, "a 2 MiB block at {b:#x}");
        blocks.push(b);
    }
    // A plain request of 4 MiB is most likely written whole: it asks.
    let big = block(&heap, 4 * MIB, false);
    assert_eq!(hinted_bytes(big, 4 * MIB), 4 * MIB);
    // A zeroed one is often touched sparsely: it does not.
    let zeroed = block(&heap, 8 * MIB, true);
    assert_eq!(hinted_bytes(zeroed, 8 * MIB), 0);
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
