//! The arena: the heap grows inside one reservation, `in_arena` is exact for
//! it, and a heap whose arena is missing or full still grows (outside it).

use strata_os::{FakeOs, SystemOs};
use strata_pageheap::{PageHeap, HUGE_MIN, PAGE_SIZE};

const GIB: usize = 1 << 30;

#[test]
fn every_grown_block_is_in_the_arena_and_foreign_memory_is_not() {
    let heap = PageHeap::new(SystemOs::new());
    let local = 0u64;
    let stack = &local as *const u64 as usize;
    assert!(heap.arena_range().is_none());
    assert!(!heap.in_arena(stack));
    let blocks: Vec<(usize, usize)> = [1, 3, 64, 300, 2048]
        .iter()
        .map(|&pages| {
            let len = pages * PAGE_SIZE;
            (
                heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize,
                len,
            )
        })
        .collect();
    let (start, len) = heap.arena_range().expect("the heap grew into an arena");
    assert!(len.is_power_of_two() && len >= GIB);
    assert_eq!(start % len, 0);
    for &(b, n) in &blocks {
        assert!(heap.in_arena(b) && heap.in_arena(b + n - 1));
        assert!(b >= start && b + n <= start + len);
    }
    assert!(heap.in_arena(start) && heap.in_arena(start + len - 1));
    assert!(!heap.in_arena(start - 1) && !heap.in_arena(start + len));
    let boxed = Box::new(5u64);
    for foreign in [stack, &*boxed as *const u64 as usize, 8, usize::MAX] {
        assert!(!heap.in_arena(foreign), "{foreign:#x}");
    }
    // Huge blocks are mappings of their own, outside the arena.
    let huge = heap
        .alloc_large(HUGE_MIN, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    assert!(!heap.in_arena(huge));
    // SAFETY: live blocks of this heap, freed once.
    unsafe {
        heap.free_large(huge).unwrap();
        for (b, _) in blocks {
            heap.free_large(b).unwrap();
        }
    }
}

#[test]
fn an_os_without_reservations_means_no_arena_and_growth_as_before() {
    let heap = PageHeap::new(FakeOs::new());
    let p = heap.alloc_large(8 * PAGE_SIZE, PAGE_SIZE, true).unwrap();
    assert!(heap.arena_range().is_none());
    assert!(!heap.in_arena(p.as_ptr() as usize));
    // SAFETY: a live block of this heap.
    unsafe { heap.free_large(p.as_ptr() as usize).unwrap() };
}

/// Under an address-space limit (`ulimit -v`) the arena is an eighth of it;
/// once full, the heap grows outside. Runs in a child process, which sets
/// the limit for itself only.
#[test]
fn a_full_arena_grows_the_heap_outside_it() {
    const NAME: &str = "a_full_arena_grows_the_heap_outside_it";
    if std::env::var_os("STRATA_ARENA_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("STRATA_ARENA_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "child: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let limit = 16 * GIB;
    let r = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0);
    let heap = PageHeap::new(SystemOs::new());
    // Blocks below the huge threshold, never touched: address space only.
    let len = 16 << 20;
    let mut inside = Vec::new();
    let outside = loop {
        let b = heap.alloc_large(len, PAGE_SIZE, false).unwrap().as_ptr() as usize;
        if !heap.in_arena(b) {
            break b;
        }
        inside.push(b);
        assert!(
            inside.len() <= limit / 8 / len,
            "more blocks than the arena holds"
        );
    };
    let arena = heap.arena_range().unwrap().1;
    assert_eq!(arena, limit / 8, "an eighth of the limit");
    assert!(
        inside.len() >= arena / len - 1,
        "{} blocks inside",
        inside.len()
    );
    // The block outside is a real one: writable, and freed like the others.
    // SAFETY: live blocks of this heap, freed once.
    unsafe {
        (outside as *mut u8).write_bytes(0xEE, len);
        heap.free_large(outside).unwrap();
        for b in inside {
            heap.free_large(b).unwrap();
        }
    }
}

/// Growth is contiguous in the arena, so a large block often has free pages
/// to its right. It grows into them in place while it stays below the huge
/// threshold; past it, it moves to a mapping of its own (once, by a copy
/// the heap makes, tests/moves.rs).
#[test]
fn a_block_grows_in_place_below_the_huge_threshold_only() {
    let heap = PageHeap::new(SystemOs::new());
    let mib = 1 << 20;
    let a = heap
        .alloc_large(16 * mib, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    let b = heap
        .alloc_large(24 * mib, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    assert_eq!(
        b,
        a + 16 * mib,
        "consecutive growth is adjacent in the arena"
    );
    // SAFETY: live blocks of this heap.
    unsafe {
        heap.free_large(b).unwrap();
        let grown = heap.resize_large(a, 31 * mib, PAGE_SIZE);
        assert_eq!(grown.map(|p| p.as_ptr() as usize), Some(a));
        assert_eq!(heap.large_size(a).unwrap(), 31 * mib);
        let h = heap.resize_large(a, HUGE_MIN, PAGE_SIZE).unwrap();
        assert_ne!(
            h.as_ptr() as usize,
            a,
            "a huge block has a mapping of its own"
        );
        assert!(!heap.in_arena(h.as_ptr() as usize));
        assert_eq!(heap.large_size(h.as_ptr() as usize).unwrap(), HUGE_MIN);
        heap.free_large(h.as_ptr() as usize).unwrap();
    }
    assert_eq!(heap.stats().in_use_bytes, 0);
}

/// A huge block is aligned to the page-table level it spans (2 MiB, or
/// 1 GiB from 1 GiB up), so dropping it walks no page-table page shared
/// with a neighbour.
#[test]
fn huge_blocks_are_aligned_to_their_page_table_level() {
    let heap = PageHeap::new(SystemOs::new());
    for (len, align) in [(HUGE_MIN, 2 << 20), (100_000_000, 2 << 20), (GIB, GIB)] {
        let p = heap.alloc_large(len, PAGE_SIZE, true).unwrap().as_ptr() as usize;
        assert_eq!(p % align, 0, "{len} bytes at {p:#x}");
        // SAFETY: a live block of this heap.
        unsafe { heap.free_large(p).unwrap() };
    }
}

#[test]
fn a_small_block_with_a_large_alignment_commits_only_the_block() {
    let heap = PageHeap::new(SystemOs::new());
    let align = 256 << 20;
    let blocks: Vec<usize> = (0..4)
        .map(|_| {
            let p = heap.alloc_large(PAGE_SIZE, align, true).unwrap().as_ptr() as usize;
            assert_eq!(p % align, 0);
            // SAFETY: a live block of PAGE_SIZE bytes, zeroed.
            unsafe {
                assert_eq!(*(p as *const u8), 0);
                *(p as *mut u8).add(PAGE_SIZE - 1) = 1;
            }
            p
        })
        .collect();
    let s = heap.stats();
    // In the heap, each block would leave a gap of up to 256 MiB committed
    // (memory the program cannot use, charged under strict overcommit).
    assert!(
        s.mapped_bytes < 4 << 20,
        "4 blocks of one page hold {} bytes",
        s.mapped_bytes
    );
    for b in blocks {
        // SAFETY: allocated above, freed once.
        unsafe { heap.free_large(b) }.unwrap();
    }
}

/// The arena's small-class map answers for every byte of a small span in
/// the arena, as the pagemap does, and for nothing else: the span's pages
/// after it is freed, a large block, null, memory outside the arena, the
/// map itself.
#[test]
fn the_small_class_map_agrees_with_the_pagemap() {
    let heap = PageHeap::new(SystemOs::new());
    let spans: Vec<_> = [(1, 3u8), (4, 40), (64, 90)]
        .iter()
        .map(|&(pages, class)| (heap.alloc_small_span(pages, class).unwrap(), pages, class))
        .collect();
    let large = heap
        .alloc_large(5 * PAGE_SIZE, PAGE_SIZE, false)
        .unwrap()
        .as_ptr() as usize;
    let (arena, _) = heap.arena_range().expect("the heap grew into an arena");
    for &(s, pages, class) in &spans {
        // SAFETY: a live span of ours.
        let start = unsafe { s.as_ref() }.start_addr();
        assert!(heap.in_arena(start));
        for off in (0..pages * PAGE_SIZE)
            .step_by(PAGE_SIZE / 4)
            .chain([pages * PAGE_SIZE - 1])
        {
            assert_eq!(
                heap.arena_object(start + off),
                (class, off),
                "class {class} +{off}"
            );
            assert_eq!(heap.small_span_of(start + off), (class, start));
        }
    }
    let local = 0u64;
    for addr in [
        0,
        large,
        large + PAGE_SIZE,
        &local as *const u64 as usize,
        arena,
        arena + 8,
    ] {
        assert_eq!(heap.arena_object(addr).0, 0, "{addr:#x}");
    }
    for &(s, pages, _) in &spans {
        // SAFETY: a live span of ours.
        let start = unsafe { s.as_ref() }.start_addr();
        // SAFETY: none of its objects is in use.
        unsafe { heap.free_small_span(s) };
        for off in (0..pages * PAGE_SIZE).step_by(PAGE_SIZE) {
            assert_eq!(heap.arena_object(start + off).0, 0);
        }
    }
}
