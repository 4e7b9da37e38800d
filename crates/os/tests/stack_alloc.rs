//! A stack capture allocates nothing, with either walker, cold or cached.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_os::stack::{capture_with, fast_walk_fallbacks, Walker};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's duties are System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[inline(never)]
fn nest(depth: usize, w: Walker, out: &mut [usize]) -> usize {
    if depth == 0 {
        return std::hint::black_box(capture_with(w, out, 0));
    }
    std::hint::black_box(nest(depth - 1, w, out)) + std::hint::black_box(0)
}

#[test]
fn capturing_allocates_nothing() {
    let mut frames = [0usize; 64];
    let fallbacks = fast_walk_fallbacks();
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut depths = [0usize; 4];
    for (i, w) in [Walker::Fast, Walker::Fast, Walker::System, Walker::System]
        .into_iter()
        .enumerate()
    {
        depths[i] = nest(10, w, &mut frames);
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after, before, "a capture allocated");
    assert_eq!(fast_walk_fallbacks(), fallbacks, "the fast walk gave up");
    assert!(
        depths.iter().all(|&d| d == depths[0] && d > 10),
        "{depths:?}"
    );
}
