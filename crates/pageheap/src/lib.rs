//! # strata-pageheap: spans of pages
//!
//! The page heap owns every page strata maps. It hands out *spans* (runs of
//! 8 KiB pages) to the central layer, which carves them into objects of one
//! size class, and directly to large allocations; it takes them back, merges
//! free neighbours, and knows for every free span whether it still reads as
//! zero (*clean*) or may hold old data (*dirty*).
//!
//! ```text
//!   address ──▶ PageMap (radix tree, lock-free reads) ──▶ Span ──▶ size class
//!
//!   free spans:  clean lists (read as zero)   dirty lists (may be resident)
//!                1..=127 pages: exact lists + bitmap; longer: best fit
//! ```
//!
//! It is generic over the OS layer ([`strata_os::Os`]), so it runs over
//! `strata_os::FakeOs` (strata-os's `fake` feature) in tests and can be used
//! alone as a page allocator.
//!
//! # Invariants
//! - Every page the heap mapped belongs to exactly one span.
//! - A free span marked clean reads as zero; a merged span is clean only if
//!   every part was. Pages handed out become dirty when they come back.
//! - The pagemap is written under the heap lock and read without it; lookups
//!   check that the span found really holds the page.
//! - No system call runs while the heap lock is held (growth maps first,
//!   release and zeroing work on spans taken out of the lists).
//! - Nothing here allocates through the global allocator or panics.
//!
//! # Example: a page allocator on its own
//! ```
//! use strata_os::SystemOs;
//! use strata_pageheap::{PageHeap, PAGE_SIZE};
//!
//! static PAGES: PageHeap<SystemOs> = PageHeap::new(SystemOs::new());
//!
//! let p = PAGES.alloc_large(3 * PAGE_SIZE, PAGE_SIZE, true).unwrap();
//! assert_eq!(p.as_ptr() as usize % PAGE_SIZE, 0);
//! // SAFETY: 3 pages were allocated, zeroed.
//! unsafe {
//!     assert_eq!(*p.as_ptr().add(3 * PAGE_SIZE - 1), 0);
//!     PAGES.free_large(p.as_ptr() as usize).unwrap();
//!     // A second free of the same block is refused, not obeyed.
//!     assert!(PAGES.free_large(p.as_ptr() as usize).is_err());
//! }
//! ```

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

mod arena;
mod decay;
mod fork;
mod freelists;
mod grow;
mod heap;
mod huge;
mod huge_cache;
mod inspect;
mod kept;
#[cfg(all(test, not(strata_loom)))]
mod kept_tests;
mod large;
mod limit;
#[cfg(all(test, strata_loom))]
mod loom_tests;
mod pagemap;
mod span;
mod sync;
mod zeroing;

pub use decay::DEFAULT_DECAY_MS;
pub use grow::DEFAULT_HUGE_PAGES_AFTER;
pub use heap::{BadPointer, PageHeap, PageHeapStats, Prefer, DEFAULT_DIRTY_MAX};
pub use huge::HUGE_MIN;
pub use large::MOVE_MIN;
pub use pagemap::{PageMap, MAX_SMALL_SPAN_PAGES};
pub use span::{Span, SpanIter, SpanList, SpanState};

/// log2 of the page heap's page size.
pub const PAGE_SHIFT: usize = 13;
/// The page heap's page: 8 KiB, as in tcmalloc; a multiple of the OS page on
/// 4 KiB-page systems.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
