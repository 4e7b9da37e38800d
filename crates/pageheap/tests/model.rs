//! The page heap against a shadow model: random sequences of large
//! allocations, frees, in-place resizes and releases over a fake OS, checked
//! after every step: alignment, disjointness, contents, zero state, and that
//! every page is accounted for.

use std::collections::BTreeMap;

use strata_os::FakeOs;
use strata_pageheap::{BadPointer, PageHeap, MAX_SMALL_SPAN_PAGES, PAGE_SIZE};
use strata_testkit::rng::Rng;

struct Block {
    len: usize,
    tag: u8,
}

fn fill(addr: usize, len: usize, tag: u8) {
    // SAFETY: the block is live and at least `len` bytes.
    unsafe { std::ptr::write_bytes(addr as *mut u8, tag, len) };
}

fn check(addr: usize, len: usize, tag: u8) {
    // SAFETY: the block is live and at least `len` bytes.
    let s = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    assert!(s.iter().all(|&b| b == tag), "contents of {addr:#x} changed");
}

fn run(seed: u64, steps: usize) {
    let heap = PageHeap::new(FakeOs::new());
    let mut rng = Rng::new(seed);
    let mut live: BTreeMap<usize, Block> = BTreeMap::new();
    for step in 0..steps {
        match rng.below(10) {
            0..=4 => {
                let span = if rng.below(8) == 0 { 400 } else { 20 };
                let pages = 1 + rng.below(span);
                let len = pages * PAGE_SIZE - rng.below(PAGE_SIZE);
                let shift = if rng.below(4) == 0 { 6 } else { 1 };
                let align = PAGE_SIZE << rng.below(shift);
                let zero = rng.below(2) == 0;
                let p = heap
                    .alloc_large(len, align, zero)
                    .expect("fake OS has no limit");
                let addr = p.as_ptr() as usize;
                assert_eq!(addr % align, 0, "misaligned");
                if zero {
                    check(addr, len, 0);
                }
                // Disjoint from its neighbours in address order.
                if let Some((&a, b)) = live.range(..addr).next_back() {
                    assert!(a + b.len <= addr, "overlaps the block below");
                }
                if let Some((&a, _)) = live.range(addr..).next() {
                    assert!(addr + len <= a, "overlaps the block above");
                }
                let tag = (step % 250) as u8 + 1;
                fill(addr, len, tag);
                live.insert(addr, Block { len, tag });
            }
            5..=7 if !live.is_empty() => {
                let k = *live.keys().nth(rng.below(live.len())).unwrap();
                let b = live.remove(&k).unwrap();
                check(k, b.len, b.tag);
                // SAFETY: a live block we give up.
                unsafe { heap.free_large(k).unwrap() };
                // SAFETY: as above; the second free must be refused.
                assert!(
                    unsafe { heap.free_large(k) }.is_err(),
                    "double free accepted"
                );
            }
            8 if !live.is_empty() => {
                let k = *live.keys().nth(rng.below(live.len())).unwrap();
                let new_len = (1 + rng.below(40)) * PAGE_SIZE;
                let b = live.get_mut(&k).unwrap();
                // SAFETY: a live block we own.
                if let Some(p) = unsafe { heap.resize_large(k, new_len, PAGE_SIZE) } {
                    assert_eq!(p.as_ptr() as usize, k, "a heap span resizes in place");
                    check(k, b.len.min(new_len), b.tag);
                    b.len = new_len;
                    fill(k, new_len, b.tag);
                    assert!(heap.large_size(k).unwrap() >= new_len);
                }
            }
            _ => {
                heap.release_free_memory();
                assert_eq!(heap.stats().free_dirty_bytes, 0);
            }
        }
        heap.check_invariants().unwrap();
    }
    for (k, b) in std::mem::take(&mut live) {
        check(k, b.len, b.tag);
        // SAFETY: live block.
        unsafe { heap.free_large(k).unwrap() };
    }
    heap.check_invariants().unwrap();
    let st = heap.stats();
    assert_eq!(st.in_use_bytes, 0);
    assert_eq!(st.free_clean_bytes + st.free_dirty_bytes, st.mapped_bytes);
    heap.release_free_memory();
    assert_eq!(heap.stats().free_clean_bytes, st.mapped_bytes);
}

#[test]
fn shadow_model_many_seeds() {
    for seed in 1..=12u64 {
        run(seed, 1500);
    }
}

#[test]
fn bad_pointers_are_explained() {
    let heap = PageHeap::new(FakeOs::new());
    let p = heap
        .alloc_large(3 * PAGE_SIZE, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    let local = 0u64;
    assert_eq!(
        heap.large_span(&local as *const u64 as usize).err(),
        Some(BadPointer::NotOurs)
    );
    assert_eq!(heap.large_span(p + 8).err(), Some(BadPointer::Interior));
    // SAFETY: live block.
    unsafe { heap.free_large(p).unwrap() };
    // SAFETY: testing the refusal of a double free.
    assert_eq!(
        unsafe { heap.free_large(p) }.err(),
        Some(BadPointer::NotInUse)
    );
    let s = heap.alloc_small_span(2, 5).unwrap();
    // SAFETY: the span is live.
    let a = unsafe { s.as_ref().start_addr() };
    assert_eq!(heap.size_class_of(a + PAGE_SIZE + 17), 5);
    assert_eq!(heap.large_span(a).err(), Some(BadPointer::SmallObject));
    // SAFETY: no object of the span is in use.
    unsafe { heap.free_small_span(s) };
    assert_eq!(heap.size_class_of(a), 0);
    assert_eq!(heap.small_span_of(a + 9), (0, 0));
    // Every address of a small span, on any of its pages, leads to its class
    // and first address (the pagemap keeps each page's index in its span).
    for pages in [1, 3, MAX_SMALL_SPAN_PAGES] {
        let s = heap.alloc_small_span(pages, 9).unwrap();
        // SAFETY: the span is live.
        let a = unsafe { s.as_ref().start_addr() };
        let len = pages * PAGE_SIZE;
        for off in [0, 1, PAGE_SIZE - 1, PAGE_SIZE, len / 2 + 8, len - 8] {
            if off >= len {
                continue;
            }
            assert_eq!(heap.small_span_of(a + off), (9, a), "{pages} pages, +{off}");
        }
        assert_ne!(heap.small_span_of(a + len), (9, a));
        // SAFETY: no object of the span is in use.
        unsafe { heap.free_small_span(s) };
        assert_eq!(heap.small_span_of(a), (0, 0));
    }
    // Longer spans cannot be recorded that way: refused.
    assert!(heap.alloc_small_span(MAX_SMALL_SPAN_PAGES + 1, 9).is_none());
    assert!(heap.alloc_small_span(0, 9).is_none());
}

#[test]
fn freed_memory_is_dirty_and_zeroing_clears_it() {
    let heap = PageHeap::new(FakeOs::new());
    let len = 64 * PAGE_SIZE;
    let p = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr() as usize;
    fill(p, len, 0xAB);
    // SAFETY: live block.
    unsafe { heap.free_large(p).unwrap() };
    assert!(heap.stats().free_dirty_bytes >= len);
    let q = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr() as usize;
    check(q, len, 0);
    // SAFETY: live block.
    unsafe { heap.free_large(q).unwrap() };
}

#[test]
fn out_of_memory_is_none() {
    let heap = PageHeap::new(FakeOs::with_limit(64 << 20));
    assert!(heap.alloc_large(1 << 30, PAGE_SIZE, false).is_none());
    assert!(heap.alloc_large(usize::MAX - 5, PAGE_SIZE, false).is_none());
    assert!(heap.alloc_large(1 << 20, PAGE_SIZE, false).is_some());
}
