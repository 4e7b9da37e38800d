//! Large blocks that `realloc` grows past `MOVE_MIN` and that cannot grow in
//! place are copied once into a mapping of their own, which later growth
//! resizes by moving page tables. Heap memory itself is never moved by the
//! kernel: it may span several kernel mappings (huge-page hints split
//! them), and kernels before 6.17 unmap a move's destination before they
//! refuse such a source.

use strata_os::{FakeOs, Os, SystemOs};
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

/// Frees live blocks of `heap`, each once.
fn free_all<O: Os>(heap: &PageHeap<O>, blocks: &[usize]) {
    for &p in blocks {
        // SAFETY: the caller's live blocks of this heap, freed once.
        unsafe { heap.free_large(p) }.unwrap();
    }
}

/// A block of `len` bytes with a live block right after it, so it cannot
/// grow in place: the block is made a page longer and shrunk, and the page
/// it gave back is the only free one beside it.
fn blocked_block<O: Os>(heap: &PageHeap<O>, len: usize) -> (usize, usize) {
    // The heap's unit: its page, or the OS page where that is larger.
    let unit = heap.os().page_size().max(PAGE_SIZE);
    let a = heap
        .alloc_large(len + unit, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    // SAFETY: our live block; a shrink stays in place.
    let same = unsafe { heap.resize_large(a, len, PAGE_SIZE) };
    assert_eq!(same.map(|p| p.as_ptr() as usize), Some(a));
    let b = heap.alloc_large(unit, PAGE_SIZE, false).unwrap().as_ptr() as usize;
    assert_eq!(b, a + len, "the page after the block is taken");
    (a, b)
}

fn grows_into_its_own_mapping_then_remaps<O: Os>(heap: PageHeap<O>) {
    let len = 2 * MOVE_MIN;
    let (a, b) = blocked_block(&heap, len);
    fill(a, len);
    let before = heap.stats();
    // SAFETY: `a` is our live block, allocated with page alignment.
    let q = unsafe { heap.resize_large(a, len + len / 2, PAGE_SIZE) }
        .expect("a block of MOVE_MIN or more grows into a mapping of its own")
        .as_ptr() as usize;
    assert_ne!(q, a, "it could not grow in place");
    check(q, len);
    let after = heap.stats();
    assert_eq!(after.large_moves, before.large_moves + 1);
    assert_eq!(
        after.huge_in_use_bytes,
        before.huge_in_use_bytes + len + len / 2
    );
    assert!(
        after.free_dirty_bytes >= before.free_dirty_bytes + len,
        "the old span is back in the heap for reuse: {before:?} -> {after:?}"
    );
    // From now on the kernel resizes it.
    // SAFETY: `q` is our live block.
    let r = unsafe { heap.resize_large(q, 4 * len, PAGE_SIZE) }
        .expect("a block in a mapping of its own grows by remap")
        .as_ptr() as usize;
    check(r, len);
    assert_eq!(heap.stats().huge_remaps, after.huge_remaps + 1);
    assert_eq!(heap.stats().large_moves, after.large_moves);
    free_all(&heap, &[r, b]);
    heap.check_invariants().unwrap();
}

/// Runs `$body` on a heap over the system, over the fake OS, and over the
/// fake OS with 64 KiB pages.
macro_rules! on_each_os {
    ($body:ident) => {
        $body(PageHeap::new(SystemOs::new()));
        $body(PageHeap::new(FakeOs::new()));
        $body(PageHeap::new(FakeOs::with_page_size(64 << 10)));
    };
}

#[test]
fn a_blocked_large_block_moves_into_its_own_mapping_then_remaps() {
    on_each_os!(grows_into_its_own_mapping_then_remaps);
}

/// A block grown a little at a time past `MOVE_MIN` is remapped once per
/// quarter or so, not at every page; freed, its mapping waits in the huge
/// cache, and the next block grown the same way moves into all of it
/// (trimmed, its pages would be faulted in again) and needs no remap.
fn grown_by_steps_twice<O: Os>(heap: PageHeap<O>) {
    let step = heap.os().page_size().max(PAGE_SIZE);
    let mut last_len = 0;
    for round in 0..2 {
        let (a, b) = blocked_block(&heap, MOVE_MIN);
        fill(a, MOVE_MIN);
        let before = heap.stats();
        let (mut p, mut size) = (a, MOVE_MIN);
        while size < 2 * MOVE_MIN {
            size += step;
            // SAFETY: `p` is our live block, allocated with page alignment.
            p = unsafe { heap.resize_large(p, size, PAGE_SIZE) }
                .expect("a growing block")
                .as_ptr() as usize;
            if size == MOVE_MIN + step && round == 1 {
                assert_eq!(
                    heap.large_size(p),
                    Ok(last_len),
                    "the block took the mapping the last one left whole"
                );
            }
        }
        check(p, MOVE_MIN);
        let remaps = heap.stats().huge_remaps - before.huge_remaps;
        let most = if round == 0 { 4 } else { 0 };
        assert!(remaps <= most, "round {round}: {remaps} remaps");
        last_len = heap.large_size(p).unwrap();
        assert!(last_len >= size);
        free_all(&heap, &[p, b]);
    }
    heap.check_invariants().unwrap();
}

#[test]
fn a_block_grown_by_steps_remaps_by_quarters_and_reuses_a_freed_mapping_whole() {
    on_each_os!(grown_by_steps_twice);
}

#[test]
fn small_blocks_leave_the_copy_to_the_caller() {
    let heap = PageHeap::new(SystemOs::new());
    let len = MOVE_MIN / 4;
    let (a, b) = blocked_block(&heap, len);
    // SAFETY: our live block; under MOVE_MIN the caller copies.
    assert!(unsafe { heap.resize_large(a, 2 * len, PAGE_SIZE) }.is_none());
    assert_eq!(heap.stats().large_moves, 0);
    free_all(&heap, &[a, b]);
    heap.check_invariants().unwrap();
}

/// A heap whose memory spans several kernel mappings (growth hinted for
/// huge pages from the second chunk on: the hint splits the mapping), with
/// blocks that straddle the boundaries grown again and again, other blocks
/// allocated and freed between the steps. Every byte survives and the freed
/// memory is reusable: on Linux before 6.17 a page move across two
/// mappings failed after the kernel had unmapped the destination, and the
/// heap then handed out addresses nothing was mapped at.
#[test]
fn blocks_across_kernel_mappings_grow_and_keep_their_bytes() {
    let heap = PageHeap::new(SystemOs::new());
    heap.set_huge_pages_after(2 << 20);
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    for i in 0..4 {
        let len = (3 << 20) + i * PAGE_SIZE;
        let p = heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize;
        fill(p, len);
        blocks.push((p, len));
    }
    for step in 0..12 {
        let between = heap.alloc_large(3 << 20, PAGE_SIZE, false).unwrap();
        fill(between.as_ptr() as usize, 3 << 20);
        for (p, len) in blocks.iter_mut() {
            let grown = *len + *len / 4;
            // SAFETY: our live block.
            let q = match unsafe { heap.resize_large(*p, grown, PAGE_SIZE) } {
                Some(q) => q.as_ptr() as usize,
                None => {
                    // The caller's copy, as realloc does.
                    let q = heap.alloc_large(grown, PAGE_SIZE, false).unwrap().as_ptr() as usize;
                    // SAFETY: two live, distinct blocks.
                    unsafe {
                        std::ptr::copy_nonoverlapping(*p as *const u8, q as *mut u8, *len);
                        heap.free_large(*p).unwrap();
                    }
                    q
                }
            };
            check(q, *len);
            fill(q, grown);
            (*p, *len) = (q, grown);
        }
        // Memory freed by the moves is handed out again and must be there.
        let reuse = heap.alloc_large(4 << 20, PAGE_SIZE, step % 2 == 0).unwrap();
        fill(reuse.as_ptr() as usize, 4 << 20);
        check(between.as_ptr() as usize, 3 << 20);
        // SAFETY: live blocks, freed once.
        unsafe {
            heap.free_large(reuse.as_ptr() as usize).unwrap();
            heap.free_large(between.as_ptr() as usize).unwrap();
        }
    }
    for (p, len) in blocks {
        check(p, len);
        // SAFETY: live blocks, freed once.
        unsafe { heap.free_large(p).unwrap() };
    }
    heap.check_invariants().unwrap();
}

/// A block whose mapping cannot be resized (the OS refuses) stays as it
/// was, and can still be used and freed.
#[test]
fn a_refused_remap_leaves_the_block_as_it_was() {
    let heap = PageHeap::new(FakeOs::with_limit(200 << 20));
    let p = heap
        .alloc_large(HUGE_MIN, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    fill(p, HUGE_MIN);
    // SAFETY: our live block; the fake OS cannot map 8 times as much.
    assert!(unsafe { heap.resize_large(p, 8 * HUGE_MIN, PAGE_SIZE) }.is_none());
    check(p, HUGE_MIN);
    assert_eq!(heap.large_size(p), Ok(HUGE_MIN));
    // SAFETY: our live block, freed once.
    unsafe { heap.free_large(p).unwrap() };
    heap.check_invariants().unwrap();
}

/// Resizes `p` to each of `sizes` in turn and, wherever
/// `resize_large_keeps_pages` says the block keeps its pages, checks that
/// `resize_large` leaves it where and as large as it was, without asking
/// the kernel. Returns the block and how many steps were kept and not.
fn keeps_pages_agrees<O: Os>(
    heap: &PageHeap<O>,
    mut p: usize,
    sizes: impl Iterator<Item = usize>,
) -> (usize, usize, usize) {
    let (mut kept, mut not) = (0, 0);
    for n in sizes {
        let (len, remaps) = (heap.large_size(p).unwrap(), heap.stats().huge_remaps);
        // SAFETY (both): `p` is our live block, allocated page-aligned.
        let keeps = unsafe { heap.resize_large_keeps_pages(p, n) };
        let q = unsafe { heap.resize_large(p, n, PAGE_SIZE) };
        if keeps {
            kept += 1;
            assert_eq!(q.map(|q| q.as_ptr() as usize), Some(p), "{n} B: moved");
            assert_eq!(heap.large_size(p), Ok(len), "{n} B: pages changed");
            assert_eq!(heap.stats().huge_remaps, remaps, "{n} B: remapped");
        } else {
            not += 1;
            p = q.map(|q| q.as_ptr() as usize).unwrap_or_else(|| {
                // The caller's copy (a block that cannot grow in place).
                let q = heap.alloc_large(n, PAGE_SIZE, false).unwrap();
                free_all(heap, &[p]);
                q.as_ptr() as usize
            });
        }
        assert!(heap.large_size(p).unwrap() >= n, "{n} B: too small");
    }
    (p, kept, not)
}

/// The one-lookup answer `realloc` takes for a large block's step agrees
/// with the full resize, in the heap and in a mapping of its own, growing
/// and shrinking by steps that do and do not cross the OS's pages.
fn keeps_pages_matches_resize<O: Os>(heap: PageHeap<O>) {
    let a = heap.alloc_large(300 << 10, PAGE_SIZE, false).unwrap();
    let grow = (300 << 10..1 << 20).step_by(2 << 10);
    let shrink = (300 << 10..1 << 20).rev().step_by(3 << 10);
    let (p, kept, not) = keeps_pages_agrees(&heap, a.as_ptr() as usize, grow.chain(shrink));
    assert!(kept > 0 && not > 0, "in the heap: {kept} kept, {not} not");
    free_all(&heap, &[p]);
    // Blocked, the first step moves it into a mapping of its own.
    let (a, b) = blocked_block(&heap, MOVE_MIN);
    let grow = (MOVE_MIN + 1..MOVE_MIN + (1 << 20)).step_by(2 << 10);
    let shrink = (MOVE_MIN..MOVE_MIN + (1 << 20)).rev().step_by(3 << 10);
    let (p, kept, not) = keeps_pages_agrees(&heap, a, grow.chain(shrink));
    assert!(
        kept > 0 && not > 0,
        "in its own mapping: {kept} kept, {not} not"
    );
    free_all(&heap, &[p, b]);
    heap.check_invariants().unwrap();
}

#[test]
fn the_one_lookup_answer_agrees_with_the_full_resize() {
    on_each_os!(keeps_pages_matches_resize);
}
