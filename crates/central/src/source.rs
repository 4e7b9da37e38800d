//! What the central layer needs from the page heap ([`PageSource`]), and
//! [`PageHeap`]'s answer to it.

use core::ptr::NonNull;

use strata_os::Os;
use strata_pageheap::{PageHeap, Span};

/// What the central layer needs from the page heap.
///
/// # Safety
/// Implementors hand out spans of `npages` pages of memory they own, each
/// exclusively until returned, and `span_of` finds the span of any object in
/// an in-use span of theirs.
pub unsafe trait PageSource: Sync {
    /// A span of `npages` pages for objects of `size_class`, with nothing
    /// carved (`allocated == 0`, `carved == 0`, no free objects).
    fn alloc_span(&self, npages: usize, size_class: u8) -> Option<NonNull<Span>>;
    /// Gives back a span none of whose objects is in use.
    ///
    /// # Safety
    /// `span` came from `alloc_span` of this source and is empty.
    unsafe fn free_span(&self, span: NonNull<Span>);
    /// The in-use span holding `addr`.
    fn span_of(&self, addr: usize) -> Option<NonNull<Span>>;
    /// Called by [`crate::Central::tick`]: a chance for the page source to do
    /// amortised work (decay). Must be cheap when idle.
    /// Returns true when it ran a pass: the central layer then gives back
    /// what sat idle in its transfer caches.
    fn tick(&self) -> bool {
        false
    }
    /// Changes whenever the page source nears its memory limit and wants
    /// what the layers above cache back.
    fn pressure_epoch(&self) -> u32 {
        0
    }
    /// Zeroed memory of `bytes` for the central layer's own tables (a
    /// transfer cache's array of pointers, the spans' bitmaps), kept for the life of the
    /// source; `None` if there is none.
    fn map_table(&self, bytes: usize) -> Option<NonNull<u8>>;
}

// SAFETY: the page heap hands out spans exclusively and its pagemap maps every
// page of an in-use small-object span to it.
unsafe impl<O: Os> PageSource for PageHeap<O> {
    #[inline]
    fn alloc_span(&self, npages: usize, size_class: u8) -> Option<NonNull<Span>> {
        self.alloc_small_span(npages, size_class)
    }
    #[inline]
    unsafe fn free_span(&self, span: NonNull<Span>) {
        // SAFETY: forwarded contract.
        unsafe { self.free_small_span(span) }
    }
    #[inline]
    fn span_of(&self, addr: usize) -> Option<NonNull<Span>> {
        PageHeap::span_of(self, addr)
    }
    #[inline]
    fn tick(&self) -> bool {
        PageHeap::tick(self)
    }
    #[inline]
    fn pressure_epoch(&self) -> u32 {
        PageHeap::pressure_epoch(self)
    }
    fn map_table(&self, bytes: usize) -> Option<NonNull<u8>> {
        // The OS maps whole pages; a table's size is rarely a multiple of
        // one (a class of 576 B holds 227 batches of 32: 58,112 bytes).
        let len = strata_os::align_up(bytes, self.os().page_size())?;
        self.os().map(len, 1).ok()
    }
}
