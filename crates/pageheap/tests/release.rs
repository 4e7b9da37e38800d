//! Decay with hysteresis, explicit release, and huge blocks, over a fake OS
//! whose clock the test moves by hand.

use strata_os::{FakeOs, Os};
use strata_pageheap::{PageHeap, DEFAULT_DECAY_MS, HUGE_MIN, PAGE_SIZE};
use strata_testkit::rng::Rng;

fn all_zero(addr: usize, len: usize) -> bool {
    // SAFETY: the caller passes a live block of at least `len` bytes.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
        .iter()
        .all(|&b| b == 0)
}

#[test]
fn idle_dirty_spans_decay_and_busy_ones_do_not() {
    let heap = PageHeap::new(FakeOs::new());
    heap.os().advance_ms(10_000);
    let len = 64 * PAGE_SIZE;
    let blocks: Vec<usize> = (0..8)
        .map(|_| heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize)
        .collect();
    for &b in &blocks {
        // SAFETY: live blocks, written then given up.
        unsafe {
            std::ptr::write_bytes(b as *mut u8, 0xCD, len);
            heap.free_large(b).unwrap();
        }
    }
    let dirty = heap.stats().free_dirty_bytes;
    assert!(dirty >= 8 * len);
    // Well inside the delay: nothing goes.
    heap.os().advance_ms(DEFAULT_DECAY_MS / 2);
    heap.tick();
    assert_eq!(heap.stats().free_dirty_bytes, dirty);
    // A block reused and freed again restarts its clock (hysteresis).
    let again = heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize;
    // SAFETY: live block given up.
    unsafe { heap.free_large(again).unwrap() };
    heap.os().advance_ms(DEFAULT_DECAY_MS / 2 + 10);
    heap.tick();
    let after = heap.stats();
    assert!(
        after.free_dirty_bytes >= len,
        "the block freed just now was released too early"
    );
    assert!(
        after.free_dirty_bytes < dirty,
        "idle spans were not released"
    );
    assert!(after.decay_releases >= 1);
    heap.os().advance_ms(DEFAULT_DECAY_MS + 10);
    heap.tick();
    let end = heap.stats();
    assert_eq!(end.free_dirty_bytes, 0);
    assert_eq!(end.free_clean_bytes, end.mapped_bytes);
    heap.check_invariants().unwrap();
    // Released memory reads as zero and is handed out as such.
    let z = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr() as usize;
    assert!(all_zero(z, len));
}

#[test]
fn decay_can_be_disabled_and_made_immediate() {
    let heap = PageHeap::new(FakeOs::new());
    heap.os().advance_ms(10_000);
    heap.set_decay_ms(u64::MAX);
    let b = heap
        .alloc_large(16 * PAGE_SIZE, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    // SAFETY: live block given up.
    unsafe { heap.free_large(b).unwrap() };
    heap.os().advance_ms(1 << 40);
    heap.tick();
    assert!(heap.stats().free_dirty_bytes > 0);
    heap.set_decay_ms(0);
    heap.os().advance_ms(1);
    heap.tick();
    assert_eq!(heap.stats().free_dirty_bytes, 0);
}

#[test]
fn release_free_memory_returns_everything() {
    let heap = PageHeap::new(FakeOs::new());
    let v: Vec<usize> = (1..40)
        .map(|i| {
            heap.alloc_large(i * PAGE_SIZE * 3, PAGE_SIZE, false)
                .unwrap()
                .as_ptr() as usize
        })
        .collect();
    for b in v {
        // SAFETY: live blocks given up.
        unsafe { heap.free_large(b).unwrap() };
    }
    assert!(heap.release_free_memory() > 0);
    let st = heap.stats();
    assert_eq!(st.free_dirty_bytes, 0);
    assert_eq!(st.in_use_bytes, 0);
    heap.check_invariants().unwrap();
}

#[test]
fn huge_blocks_are_cached_reused_resized_and_released() {
    let heap = PageHeap::new(FakeOs::new());
    let len = HUGE_MIN + 3 * PAGE_SIZE;
    let p = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr() as usize;
    assert!(all_zero(p, len));
    assert_eq!(heap.stats().huge_in_use_bytes, len);
    assert_eq!(heap.stats().huge_blocks, 1);
    // SAFETY: a live block of `len` bytes.
    unsafe {
        std::ptr::write_bytes(p as *mut u8, 0x5A, len);
        heap.free_large(p).unwrap();
        assert!(
            heap.free_large(p).is_err(),
            "double free of a huge block accepted"
        );
    }
    let st = heap.stats();
    assert_eq!((st.huge_in_use_bytes, st.huge_cached_bytes), (0, len));
    assert_eq!(st.huge_blocks, 0);
    // The cached mapping serves the next huge request, zeroed when asked.
    let maps = heap.os().counters().snapshot().maps;
    let q = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr() as usize;
    assert_eq!(
        heap.os().counters().snapshot().maps,
        maps,
        "the cached mapping was not reused"
    );
    assert!(all_zero(q, len));
    // Grow and shrink by remapping, keeping contents and alignment.
    // SAFETY: live block of `len` bytes.
    unsafe { std::ptr::write_bytes(q as *mut u8, 0x11, len) };
    // SAFETY: live block.
    let r = unsafe { heap.resize_large(q, 2 * len, 1 << 16) }
        .unwrap()
        .as_ptr() as usize;
    assert_eq!(r % (1 << 16), 0);
    assert_eq!(
        heap.large_size(r).unwrap(),
        (2 * len).next_multiple_of(PAGE_SIZE)
    );
    // SAFETY: live block of 2 * len bytes.
    unsafe {
        assert!(std::slice::from_raw_parts(r as *const u8, len)
            .iter()
            .all(|&b| b == 0x11));
        std::ptr::write_bytes(r as *mut u8, 0x22, 2 * len);
    }
    assert!(heap.stats().huge_remaps >= 1);
    // SAFETY: live block.
    let s = unsafe { heap.resize_large(r, HUGE_MIN, PAGE_SIZE) }
        .unwrap()
        .as_ptr() as usize;
    // SAFETY: live block of HUGE_MIN bytes.
    unsafe {
        assert!(std::slice::from_raw_parts(s as *const u8, HUGE_MIN)
            .iter()
            .all(|&b| b == 0x22));
        heap.free_large(s).unwrap();
    }
    let mappings = heap.os().live_mappings();
    assert!(heap.release_free_memory() >= HUGE_MIN);
    assert_eq!(heap.os().live_mappings(), mappings - 1);
    assert_eq!(heap.stats().huge_cached_bytes, 0);
}

#[test]
fn huge_cache_is_bounded() {
    let heap = PageHeap::new(FakeOs::new());
    let v: Vec<usize> = (0..7)
        .map(|_| {
            heap.alloc_large(HUGE_MIN, PAGE_SIZE, false)
                .unwrap()
                .as_ptr() as usize
        })
        .collect();
    for b in v {
        // SAFETY: live blocks given up.
        unsafe { heap.free_large(b).unwrap() };
    }
    let st = heap.stats();
    assert!(
        st.huge_cached_bytes <= 4 * HUGE_MIN,
        "{} bytes cached",
        st.huge_cached_bytes
    );
    assert_eq!(st.huge_in_use_bytes, 0);
}

/// Free dirty memory past the cap goes back at the free that crossed it,
/// with no later call needed, down to half the cap; under the cap the heap
/// keeps what it may reuse, and as much as the large blocks still in use
/// hold is always allowed besides.
#[test]
fn free_dirty_memory_past_the_cap_goes_back_at_once() {
    let heap = PageHeap::new(FakeOs::new());
    heap.set_dirty_max(16 << 20);
    let len = 1 << 20;
    let blocks: Vec<usize> = (0..40)
        .map(|_| heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize)
        .collect();
    for (i, &b) in blocks.iter().enumerate() {
        // SAFETY: live blocks, written then given up.
        unsafe {
            std::ptr::write_bytes(b as *mut u8, 0xAB, len);
            heap.free_large(b).unwrap();
        }
        let s = heap.stats();
        // Still in use in large blocks: 40 - i - 1 MiB; as much may stay dirty.
        let cap = (16 << 20usize).max((39 - i) * len);
        assert!(s.free_dirty_bytes <= cap, "after {} frees: {s:?}", i + 1);
        if i < 20 {
            assert_eq!(s.free_dirty_bytes, (i + 1) * len, "kept for reuse: {s:?}");
        }
    }
    let s = heap.stats();
    assert!(s.free_dirty_bytes >= 8 << 20, "half the cap is kept: {s:?}");
    // Released memory reads as zero when handed out again.
    let p = heap
        .alloc_large(32 * len, PAGE_SIZE, true)
        .unwrap()
        .as_ptr() as usize;
    assert!(all_zero(p, 32 * len));
    // SAFETY: allocated above.
    unsafe { heap.free_large(p).unwrap() };
    // No cap: decay alone decides.
    heap.set_dirty_max(usize::MAX);
    let q = heap
        .alloc_large(24 * len, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    // SAFETY: allocated above, written then given up.
    unsafe {
        std::ptr::write_bytes(q as *mut u8, 0xAB, 24 * len);
        heap.free_large(q).unwrap();
    }
    assert!(heap.stats().free_dirty_bytes >= 24 * len);
}

/// A program that replaces large blocks (buffers of a few MiB freed and
/// allocated again at other sizes) reuses the memory it freed: the heap
/// keeps free memory up to what its large blocks in use hold (a quarter of
/// it would be all it kept otherwise), the heap stops growing once warm,
/// and with every block freed the cap is the set maximum again.
#[test]
fn replaced_large_blocks_keep_what_they_freed() {
    let heap = PageHeap::new(FakeOs::new());
    heap.set_dirty_max(1 << 20);
    const N: usize = 20;
    let mut blocks = [(0usize, 0usize); N];
    let mut rng = Rng::new(88172645463325252);
    let (mut mapped_warm, mut most_kept) = (0, 0);
    for i in 0..400 {
        let len = (1 << 20) + rng.below(4 << 20);
        let k = i % N;
        if blocks[k].0 != 0 {
            // SAFETY: a live block of ours, given up.
            unsafe { heap.free_large(blocks[k].0).unwrap() };
        }
        let p = heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize;
        // SAFETY: a live block of `len` bytes.
        unsafe { std::ptr::write_bytes(p as *mut u8, i as u8, len) };
        blocks[k] = (p, len);
        let s = heap.stats();
        let live: usize = blocks.iter().map(|b| b.1).sum();
        assert!(
            s.free_dirty_bytes <= live + N * PAGE_SIZE,
            "free memory past the live blocks' size: {s:?}"
        );
        if i == 150 {
            mapped_warm = s.mapped_bytes;
        }
        if i >= 150 {
            most_kept = most_kept.max(s.free_dirty_bytes);
        }
    }
    let s = heap.stats();
    assert!(
        most_kept > s.in_use_bytes / 2,
        "freed blocks were released, not kept for reuse: at most {most_kept} free, {s:?}"
    );
    // Blocks of up to 5 MiB cut from free spans of other sizes leave gaps
    // that only some later sizes fit, so the heap may still grow by a few
    // of the largest blocks once warm; a heap that did not reuse what was
    // freed would map about 3 MiB a block and pass this bound within six.
    assert!(
        s.mapped_bytes <= mapped_warm + (16 << 20),
        "the heap kept growing: {mapped_warm} once warm, {s:?}"
    );
    assert_eq!(s.decay_releases, 0);
    for (i, &(p, len)) in blocks.iter().enumerate() {
        // SAFETY: live blocks written whole above.
        let (first, last) = unsafe { (*(p as *const u8), *((p + len - 1) as *const u8)) };
        assert_eq!(first, last, "block {i}");
        // SAFETY: a live block of ours, given up.
        unsafe { heap.free_large(p).unwrap() };
    }
    let s = heap.stats();
    assert!(s.free_dirty_bytes <= 1 << 20, "{s:?}");
    heap.check_invariants().unwrap();
}

/// Memory trimmed at a free and then taken back for small-object spans (a
/// program whose memory in use swings, phase after phase) is kept the next
/// time, up to twice the set maximum besides it; decay passes that see
/// nothing taken back forget that, and a burst freed once keeps the cap.
#[test]
fn memory_taken_back_after_a_trim_is_kept_the_next_time() {
    let heap = PageHeap::new(FakeOs::new());
    heap.os().advance_ms(10_000);
    heap.set_dirty_max(4 << 20);
    // 10 MiB of 8-page small-object spans, written, then all given back.
    let round = |heap: &PageHeap<FakeOs>| {
        let spans: Vec<_> = (0..160)
            .map(|_| heap.alloc_small_span(8, 3).unwrap())
            .collect();
        for &s in &spans {
            // SAFETY: a span of ours, no object of it in use; written, then
            // given back.
            unsafe {
                std::ptr::write_bytes(s.as_ref().start_addr() as *mut u8, 0x5A, 8 * PAGE_SIZE);
                heap.free_small_span(s);
            }
        }
        heap.stats()
    };
    // A burst freed once: past the cap, down to half of it.
    let first = round(&heap);
    assert!(first.free_dirty_bytes <= 2 << 20, "{first:?}");
    // Taken back (8 MiB of clean pages) and freed again: all of it stays.
    let second = round(&heap);
    assert_eq!(second.mapped_bytes, first.mapped_bytes);
    assert!(second.free_dirty_bytes >= 10 << 20, "{second:?}");
    // The next round reuses it: no clean page taken, nothing released.
    let third = round(&heap);
    assert!(third.free_dirty_bytes >= 10 << 20, "{third:?}");
    // One decay pass after the last take-back keeps what was learned; the
    // one after it, with nothing taken back in between, halves it (to 4
    // MiB besides the cap of 4): the next round is trimmed again.
    for _ in 0..2 {
        heap.os().advance_ms(DEFAULT_DECAY_MS / 4 + 10);
        assert!(heap.tick());
    }
    let fourth = round(&heap);
    assert!(fourth.free_dirty_bytes <= 8 << 20, "{fourth:?}");
    heap.check_invariants().unwrap();
}
