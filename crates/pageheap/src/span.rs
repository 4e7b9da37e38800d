//! A span: a run of contiguous pages with one owner and one state.
//!
//! # States
//! ```text
//!            alloc (split)              free (coalesce)
//!   Free ─────────────────▶ InUse ─────────────────────▶ Free
//!  clean|dirty          large or small          dirty (merged: clean only
//!                                                if every part was clean)
//! ```
//! - **Free, clean**: every page reads as zero and none was written since it
//!   came from the OS or was released with `MADV_DONTNEED`.
//! - **Free, dirty**: pages may be resident and hold old data.
//! - **InUse**: owned by a large allocation (`size_class == 0`) or carved into
//!   objects of one size class by the central layer.
//!
//! Fields marked "central" belong to the layer above while the span is in use
//! as a small-object span, and are only touched under that class's lock.
//!
//! # Invariants
//! - A small-object span has `allocated <= carved <= capacity` (checked by
//!   the central layer, which keeps these fields), and comes back to the
//!   page heap with `allocated == 0`.

use core::ptr;

use crate::PAGE_SHIFT;

/// Where a span stands in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SpanState {
    /// In a free list of the page heap.
    Free,
    /// Handed out (large allocation or small-object span).
    InUse,
    /// Taken out of the free lists by the release path while its pages are
    /// given back to the OS outside the lock.
    Releasing,
    /// Back in the record pool; describes nothing.
    Dead,
}

/// A run of pages. Created and recycled by the page heap; records live in
/// OS-backed metadata memory.
#[repr(C)]
pub struct Span {
    /// First page number (address >> PAGE_SHIFT).
    pub(crate) start: usize,
    /// Length in pages.
    pub(crate) npages: usize,
    pub(crate) state: SpanState,
    /// Free: the pages read as zero. InUse (large): they did when handed out.
    pub(crate) clean: bool,
    /// Size class of a small-object span; 0 for large allocations and free spans.
    pub(crate) size_class: u8,
    /// The span is a whole mapping of its own (huge allocation).
    pub(crate) own_mapping: bool,
    /// In use with a mapping of its own: the pages its last allocation or
    /// resize asked for (at most `npages`, saturated at `u32::MAX`); the
    /// rest is room to grow into. Read and written by the block's owner
    /// only ([`crate::huge`]).
    pub(crate) asked_pages: u32,
    /// Links in whichever list holds the span (heap free list or a central list).
    pub(crate) prev: *mut Span,
    pub(crate) next: *mut Span,
    /// When the span became free (heap clock), for decay.
    pub(crate) freed_at: u64,
    /// Central: a bit per object, set while the object is free in the span
    /// (freed back to it, not merely never carved): the central layer's
    /// bitmap, null while the span is not one of its small-object spans.
    pub free_bits: *mut u64,
    /// Central: no word of `free_bits` below this index has a bit set.
    pub bits_from: u32,
    /// Central: objects handed out from this span and not yet returned.
    pub allocated: u32,
    /// Central: objects carved so far from the span's start (bump region).
    pub carved: u32,
    /// Central: objects the span holds (its pages over the object size).
    pub capacity: u32,
    /// Central: which occupancy bucket the span sits in.
    pub bucket: u8,
    /// Zeroed reuse ([`crate::zeroing`]): reuses left that drop the pages
    /// without first looking whether the program used them.
    pub(crate) blind_drops: u8,
    /// Zeroed reuse: how many times in a row the look found the memory
    /// unused (the next run of blind drops is `2^n - 1` long).
    pub(crate) unused_runs: u8,
    /// In use (large) and parked among the large blocks kept for reuse
    /// ([`crate::kept`]): set by the free that parks it, cleared by the
    /// allocation that takes it, so that a second free finds it set.
    pub(crate) kept: crate::sync::memory::AtomicBool,
}

// SAFETY: a span record is plain data; the raw pointers in it are addresses
// of allocator memory, only followed under the lock of the span's owner.
unsafe impl Send for Span {}

impl Span {
    /// Moves the span to state `to`. The transitions a span may make are
    /// checked in debug builds:
    ///
    /// ```text
    ///   Free ─▶ InUse ─▶ Free          (handed out, given back)
    ///   Free ─▶ Releasing ─▶ Free      (released to the OS outside the lock)
    ///   Free ─▶ Releasing ─▶ InUse     (a kept mapping of its own reused)
    ///   Free ─▶ Free                   (filed again after a split or merge)
    ///   any but Dead ─▶ Dead           (the record goes back to the pool)
    /// ```
    #[inline]
    pub(crate) fn set_state(&mut self, to: SpanState) {
        use SpanState::*;
        debug_assert!(
            matches!(
                (self.state, to),
                (Free, InUse | Free | Releasing | Dead)
                    | (InUse, Free | Dead)
                    | (Releasing, Free | InUse | Dead)
            ),
            "span state {:?} -> {to:?}",
            self.state
        );
        self.state = to;
    }

    /// A record describing `npages` pages from `start`, in no list.
    pub(crate) fn new(start: usize, npages: usize, state: SpanState, clean: bool) -> Span {
        Span {
            start,
            npages,
            state,
            clean,
            size_class: 0,
            own_mapping: false,
            asked_pages: 0,
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            freed_at: 0,
            free_bits: ptr::null_mut(),
            bits_from: 0,
            allocated: 0,
            carved: 0,
            capacity: 0,
            bucket: 0,
            blind_drops: 0,
            unused_runs: 0,
            kept: crate::sync::memory::AtomicBool::new(false),
        }
    }

    /// A record describing `npages` pages from `start_page`, in use with
    /// `size_class`, that belongs to no heap: for fakes of the page heap in
    /// the tests of the layers above.
    pub fn detached(start_page: usize, npages: usize, size_class: u8) -> Span {
        let mut s = Span::new(start_page, npages, SpanState::InUse, false);
        s.size_class = size_class;
        s
    }

    /// The first byte of the span.
    #[inline]
    pub fn start_addr(&self) -> usize {
        self.start << PAGE_SHIFT
    }

    /// The span's length in bytes.
    #[inline]
    pub fn len_bytes(&self) -> usize {
        self.npages << PAGE_SHIFT
    }

    /// The first page number.
    #[inline]
    pub fn start_page(&self) -> usize {
        self.start
    }

    /// The length in pages.
    #[inline]
    pub fn npages(&self) -> usize {
        self.npages
    }

    /// The size class of a small-object span (0 otherwise).
    #[inline]
    pub fn size_class(&self) -> u8 {
        self.size_class
    }

    /// The span's state.
    #[inline]
    pub fn state(&self) -> SpanState {
        self.state
    }

    /// Whether the span's pages are known to read as zero.
    #[inline]
    pub fn is_clean(&self) -> bool {
        self.clean
    }

    /// Whether the span is a whole mapping of its own.
    #[inline]
    pub fn has_own_mapping(&self) -> bool {
        self.own_mapping
    }

    /// Whether page number `page` lies in the span.
    #[inline]
    pub fn contains_page(&self, page: usize) -> bool {
        page >= self.start && page - self.start < self.npages
    }
}

/// An intrusive doubly linked list of spans, through `prev`/`next`.
///
/// Used by the page heap for its free lists and by the central layer for its
/// lists of partly used spans; a span is in at most one list at a time.
pub type SpanList = strata_base::List<Span>;

/// Iterator over a [`SpanList`].
pub type SpanIter = strata_base::ListIter<Span>;

// SAFETY: only the list a span is in writes its `prev` and `next`.
strata_base::impl_linked!(unsafe Span, prev, next);
