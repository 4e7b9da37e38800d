//! Zeroed reuse over the real OS: memory the program never touches is
//! dropped, soon without even looking; memory it uses is cleared, never
//! dropped and faulted in again; and every zeroed block reads as zero.

use strata_os::{Os, SystemOs};
use strata_pageheap::{PageHeap, PAGE_SIZE};

const LEN: usize = 4 << 20;

fn all_zero(p: *const u8, len: usize) -> bool {
    // SAFETY: callers pass a live block of `len` bytes.
    unsafe { std::slice::from_raw_parts(p as *const u64, len / 8) }
        .iter()
        .all(|&w| w == 0)
}

/// One zeroed allocation of LEN bytes, checked, optionally written all
/// over, and freed. Returns (residency queries, bytes cleared) it cost.
fn cycle(heap: &PageHeap<SystemOs>, write: bool) -> (u64, u64) {
    let before = heap.os().counters().snapshot();
    let p = heap.alloc_large(LEN, PAGE_SIZE, true).unwrap().as_ptr();
    let after = heap.os().counters().snapshot();
    assert!(all_zero(p, LEN), "a zeroed block does not read as zero");
    if write {
        // SAFETY: a live block of LEN bytes.
        unsafe { p.write_bytes(0x6B, LEN) };
    }
    // SAFETY: a live block of this heap.
    unsafe { heap.free_large(p as usize).unwrap() };
    (
        after.residency_queries - before.residency_queries,
        after.zeroed_bytes_written - before.zeroed_bytes_written,
    )
}

#[test]
fn untouched_memory_is_dropped_and_soon_not_even_looked_at() {
    let heap = PageHeap::new(SystemOs::new());
    // Used once, so the first zeroed reuse finds it dirty and clears it.
    cycle(&heap, true);
    let (_, cleared) = cycle(&heap, false);
    assert!(
        cleared >= LEN as u64 / 2,
        "used memory was not cleared: {cleared}"
    );
    let mut looks = 0;
    for _ in 0..64 {
        let (q, cleared) = cycle(&heap, false);
        looks += q.min(1);
        assert_eq!(cleared, 0, "untouched memory was cleared");
    }
    assert!(looks <= 10, "looked {looks} times in 64 reuses");
}

#[test]
fn used_memory_is_cleared_on_every_reuse_never_dropped_blind() {
    let heap = PageHeap::new(SystemOs::new());
    cycle(&heap, true);
    let releases = heap.os().counters().snapshot().releases;
    for i in 0..32 {
        let (q, cleared) = cycle(&heap, true);
        assert!(q >= 1, "reuse {i} did not look");
        assert!(
            cleared >= LEN as u64 / 2,
            "reuse {i} cleared only {cleared}"
        );
    }
    assert_eq!(
        heap.os().counters().snapshot().releases,
        releases,
        "used memory was dropped"
    );
}

#[test]
fn clearing_resumes_within_one_run_when_the_program_starts_using_the_memory() {
    let heap = PageHeap::new(SystemOs::new());
    for _ in 0..64 {
        cycle(&heap, false);
    }
    // Now the program writes every block: after at most 15 blind drops a
    // look sees it, and from then on every reuse clears.
    let mut cleared_at = None;
    for i in 0..40 {
        let (_, cleared) = cycle(&heap, true);
        if cleared > 0 && cleared_at.is_none() {
            cleared_at = Some(i);
        }
        if let Some(first) = cleared_at {
            assert!(
                cleared > 0,
                "reuse {i} dropped again after clearing resumed at {first}"
            );
        }
    }
    let first = cleared_at.expect("clearing never resumed");
    assert!(first <= 16, "clearing resumed only at reuse {first}");
}
