//! The pagemap: from a page number to the span that owns it, and to the size
//! class of that span and the page's place in it, readable without a lock.
//!
//! A three-level radix tree over the whole 64-bit address space (51 bits of
//! page number with 8 KiB pages), so nothing assumes 48-bit (or 57-bit)
//! virtual addresses. Nodes are mapped from the OS on demand, zero-filled, and
//! never freed; untouched parts of a node cost no physical memory.
//!
//! # Invariants
//! - Nodes are published with a compare-exchange (`Release`) and read with
//!   `Acquire`, so a reader that finds a node sees it zeroed or filled, never
//!   half-built. Entries are only written under the page heap's lock.
//! - For an in-use small-object span, every page maps to the span and carries
//!   its size class. For a large allocation and for a free span, the first and
//!   last pages map to it, and the first page's class is 0.
//! - A page's small entry (class in the low byte, the page's index in its
//!   span in the high byte) is non-zero in its class byte exactly for pages
//!   of in-use small spans; there, page minus index is the span's first
//!   page. So `free(p)` finds an object's class and span start from one
//!   2-byte load, without reading the span record (a cache miss of its own
//!   when frees are spread over many spans). Small spans are at most
//!   [`MAX_SMALL_SPAN_PAGES`] long, so the index fits.
//! - Any other entry may be stale: users must check that the span found
//!   actually contains the page ([`crate::Span::contains_page`]).
//!
//! The slots are always core's atomics (`sync::memory`): nodes are OS memory
//! read as arrays of atomics. The publication protocol, `publish` and
//! `published`, is generic over the slot and is checked by a loom model on a
//! loom slot (`loom_tests.rs`).

use core::ptr::{self, NonNull};

use strata_os::Os;

use crate::span::Span;
use crate::sync::memory::{AtomicPtr, AtomicU16};
use crate::sync::{Ordering, PtrSlot};
use crate::PAGE_SHIFT;

const PAGE_BITS: usize = usize::BITS as usize - PAGE_SHIFT;
const LEAF_BITS: usize = 17;
const MID_BITS: usize = 21;
const ROOT_BITS: usize = PAGE_BITS - LEAF_BITS - MID_BITS;
const LEAF_LEN: usize = 1 << LEAF_BITS;
const MID_LEN: usize = 1 << MID_BITS;
const ROOT_LEN: usize = 1 << ROOT_BITS;

/// The most pages a small-object span may have: a page's index in its span
/// is kept in one byte of the pagemap.
pub const MAX_SMALL_SPAN_PAGES: usize = 256;

#[repr(C)]
struct Leaf {
    spans: [AtomicPtr<Span>; LEAF_LEN],
    /// Per page: size class (low byte) and index in its span (high byte).
    small: [AtomicU16; LEAF_LEN],
}

#[repr(C)]
struct Mid {
    leaves: [AtomicPtr<Leaf>; MID_LEN],
}

/// The radix tree from page numbers to spans and size classes.
///
/// The root (8 K entries, 64 KiB) is inline, so a lookup is three dependent
/// loads: root entry, mid node entry, leaf entry. A root entry covers 2^51
/// bytes, so with 47- or 56-bit user addresses only the first one or few are
/// ever used; a mid node (16 MiB of address space, mapped lazily) covers it
/// in 1 GiB leaves.
pub struct PageMap {
    root: [AtomicPtr<Mid>; ROOT_LEN],
}

#[inline]
fn split(page: usize) -> (usize, usize, usize) {
    (
        page >> (LEAF_BITS + MID_BITS),
        (page >> LEAF_BITS) & (MID_LEN - 1),
        page & (LEAF_LEN - 1),
    )
}

/// Nodes this large or larger are asked not to be backed by huge pages.
const SPARSE_HINT_MIN: usize = 2 << 20;

/// Maps a zeroed node of type `T` from the OS and publishes it in `slot`,
/// unless another thread was first. Returns the node in the slot.
pub(crate) fn publish<T, S: PtrSlot<T>, O: Os + ?Sized>(slot: &S, os: &O) -> Option<*mut T> {
    let cur = slot.load(Ordering::Acquire);
    if !cur.is_null() {
        return Some(cur);
    }
    let len = strata_os::align_up(core::mem::size_of::<T>(), os.page_size())?;
    let mapped = os.map(len, 1).ok()?;
    if len >= SPARSE_HINT_MIN {
        // A node is written a few entries at a time, far apart: with
        // transparent huge pages `always` (RHEL, Debian 12's kernel), the
        // first write into a 2 MiB-aligned stretch of it would fault in a
        // whole huge page (a small program's footprint grew by 2 MiB).
        // SAFETY: the mapping was just made by `os`.
        unsafe { os.hint_huge_pages(mapped, len, false) };
    }
    let fresh = mapped.as_ptr().cast::<T>();
    // Zero-filled memory is a valid node: every atomic is null or 0.
    match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(fresh),
        Err(winner) => {
            // SAFETY: we mapped `fresh` above and nobody saw it.
            unsafe { os.unmap(NonNull::new_unchecked(fresh.cast()), len) };
            Some(winner)
        }
    }
}

/// The node published in `slot`, if any: what a lock-free reader sees.
///
/// # Safety
/// Whatever `slot` holds was published by `publish` and is never unmapped.
#[inline(always)]
pub(crate) unsafe fn published<'a, T: 'a, S: PtrSlot<T>>(slot: &S) -> Option<&'a T> {
    // SAFETY: the caller's contract; the Acquire load pairs with the
    // publishing compare-exchange, so the node's contents are visible.
    unsafe { slot.load(Ordering::Acquire).as_ref() }
}

impl PageMap {
    /// An empty pagemap; maps nothing until the first `ensure`.
    pub const fn new() -> Self {
        PageMap {
            root: [const { AtomicPtr::new(ptr::null_mut()) }; ROOT_LEN],
        }
    }

    /// Makes sure nodes exist for pages `[start, start + n)`. Returns false
    /// if the OS refused memory. Lock-free; may make system calls.
    pub fn ensure<O: Os + ?Sized>(&self, start: usize, n: usize, os: &O) -> bool {
        let mut page = start;
        let end = start + n;
        while page < end {
            let (r, m, _) = split(page);
            let Some(mid) = publish(&self.root[r], os) else {
                return false;
            };
            // SAFETY: mid is a published, never-freed node.
            if publish(unsafe { &(*mid).leaves[m] }, os).is_none() {
                return false;
            }
            // Next leaf boundary.
            page = (page | (LEAF_LEN - 1)) + 1;
        }
        true
    }

    /// Makes sure nodes exist for the first and last of pages `[start,
    /// start + n)`: all a large span or huge block records. Returns false if
    /// the OS refused memory.
    pub fn ensure_ends<O: Os + ?Sized>(&self, start: usize, n: usize, os: &O) -> bool {
        self.ensure(start, 1, os) && self.ensure(start + n - 1, 1, os)
    }

    #[inline]
    fn leaf(&self, page: usize) -> Option<&Leaf> {
        let (r, m, _) = split(page);
        // SAFETY: every slot of the pagemap holds null or a node published by
        // `publish`, and nodes are never unmapped.
        unsafe {
            let mid = published(&self.root[r])?;
            published(&mid.leaves[m])
        }
    }

    /// The span recorded for `page`, possibly stale (see module docs), or null.
    #[inline]
    pub fn get(&self, page: usize) -> *mut Span {
        match self.leaf(page) {
            Some(l) => l.spans[page & (LEAF_LEN - 1)].load(Ordering::Acquire),
            None => ptr::null_mut(),
        }
    }

    /// The size class recorded for `page`: non-zero only inside an in-use
    /// small-object span.
    #[inline]
    pub fn class(&self, page: usize) -> u8 {
        self.small(page).0
    }

    /// The size class recorded for `page` and the first page of its span,
    /// from one load: `(0, _)` outside in-use small-object spans. Possibly
    /// stale for a page whose span is being freed or made at the same time
    /// (a caller with a live object of that span never sees that).
    #[inline]
    pub fn small(&self, page: usize) -> (u8, usize) {
        match self.leaf(page) {
            Some(l) => {
                let e = l.small[page & (LEAF_LEN - 1)].load(Ordering::Relaxed);
                (e as u8, page.wrapping_sub((e >> 8) as usize))
            }
            None => (0, 0),
        }
    }

    /// Records `span` for `page`. Nodes must exist (`ensure`).
    #[inline]
    pub(crate) fn set(&self, page: usize, span: *mut Span) {
        if let Some(l) = self.leaf(page) {
            l.spans[page & (LEAF_LEN - 1)].store(span, Ordering::Release);
        }
    }

    /// Records `class` for `page`, the `index`-th page of its span (both 0
    /// outside small spans). Nodes must exist (`ensure`).
    #[inline]
    pub(crate) fn set_small(&self, page: usize, class: u8, index: usize) {
        debug_assert!(index < MAX_SMALL_SPAN_PAGES);
        if let Some(l) = self.leaf(page) {
            let e = class as u16 | ((index as u16) << 8);
            l.small[page & (LEAF_LEN - 1)].store(e, Ordering::Release);
        }
    }
}

impl Default for PageMap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;
    use strata_os::FakeOs;

    #[test]
    fn covers_the_whole_address_space() {
        let os = FakeOs::new();
        let map = PageMap::new();
        let fake = 0x1000 as *mut Span;
        for page in [
            0usize,
            1,
            LEAF_LEN - 1,
            LEAF_LEN,
            (1 << 35) + 3,
            (usize::MAX >> PAGE_SHIFT),
        ] {
            assert!(map.get(page).is_null());
            assert!(map.ensure(page, 1, &os));
            map.set(page, fake);
            map.set_small(page, 7, 0);
            assert_eq!(map.get(page), fake);
            assert_eq!(map.class(page), 7);
            assert_eq!(map.small(page), (7, page));
            assert!(map.get(page ^ 2).is_null() || page ^ 2 == page);
        }
    }

    #[test]
    fn a_small_entry_gives_the_class_and_first_page_of_its_span() {
        let os = FakeOs::new();
        let map = PageMap::new();
        // A span of the longest kind, across a leaf boundary.
        let start = LEAF_LEN - 100;
        let n = MAX_SMALL_SPAN_PAGES;
        assert!(map.ensure(start, n, &os));
        for (i, p) in (start..start + n).enumerate() {
            map.set_small(p, 42, i);
        }
        for p in start..start + n {
            assert_eq!(map.small(p), (42, start));
            assert_eq!(map.class(p), 42);
        }
        assert_eq!(map.small(start + n).0, 0);
        for p in start..start + n {
            map.set_small(p, 0, 0);
            assert_eq!(map.class(p), 0);
        }
    }

    #[test]
    fn ensure_spans_leaf_boundaries() {
        let os = FakeOs::new();
        let map = PageMap::new();
        let start = LEAF_LEN - 5;
        assert!(map.ensure(start, 10, &os));
        for p in start..start + 10 {
            map.set(p, 0x2000 as *mut Span);
            assert_eq!(map.get(p), 0x2000 as *mut Span);
        }
    }
}
