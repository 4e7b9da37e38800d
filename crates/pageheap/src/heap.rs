//! The page heap: hands out spans of pages, takes them back, coalesces free
//! neighbours, and grows from (and gives back to) the OS.
//!
//! # Locking
//! One lock guards the free lists and counters. The pagemap is written under
//! it and read without it. System calls (`mmap`, `madvise`) are made outside
//! the lock: growth maps first and inserts afterwards; zeroing and release
//! work on spans that are already taken out of the free lists.
//!
//! # Invariants
//! - Every page the heap mapped is in exactly one span: in use, free (clean or
//!   dirty), or being released. Huge blocks ([`crate::huge`]) are mappings of
//!   their own and never part of another span.
//! - Two free spans of the same kind (clean or dirty) are never adjacent: they
//!   would have been merged. Clean and dirty spans are not merged with each
//!   other, so a span's zero state is exact, never diluted.
//! - A free span marked clean reads as zero (checked in debug builds).

use core::ptr::{self, NonNull};

use strata_base::{Lock, LockGuard, MetaPool};
use strata_os::Os;

use crate::sync::{AtomicUsize, Ordering};

use crate::freelists::FreeLists;
use crate::grow::{Touch, DEFAULT_HUGE_PAGES_AFTER};
use crate::huge_cache::HugeCache;
use crate::pagemap::{PageMap, MAX_SMALL_SPAN_PAGES};
use crate::span::{Span, SpanState};
use crate::{PAGE_SHIFT, PAGE_SIZE};

/// Span records the heap may need for one operation under its lock: a split
/// with leading and trailing remainders, plus one spare.
const RECORDS_PER_OP: usize = 4;

/// How a span should be found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prefer {
    /// Any memory; prefer dirty (already resident) pages.
    Dirty,
    /// The caller wants zeroed memory; prefer clean pages.
    Clean,
}

/// Running totals, in pages unless named otherwise.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) mapped: usize,
    pub(crate) in_use: usize,
    /// Of `in_use`, the pages in large blocks (not small-object spans).
    pub(crate) large_in_use: usize,
    pub(crate) large_allocs: u64,
    pub(crate) small_spans: u64,
    pub(crate) huge_in_use: usize,
    /// Huge blocks (mappings of their own) in use.
    pub(crate) huge_blocks: usize,
    pub(crate) huge_allocs: u64,
    pub(crate) huge_remaps: u64,
    pub(crate) large_moves: u64,
    pub(crate) decay_releases: u64,
    /// The most pages ever possibly resident at once ([`HeapState::resident`]).
    pub(crate) peak_resident: usize,
    /// Trimmed memory taken back, allowed dirty besides the cap.
    pub(crate) swing: crate::decay::Swing,
}

pub(crate) struct HeapState {
    pub(crate) clean: FreeLists,
    pub(crate) dirty: FreeLists,
    pub(crate) releasing: usize,
    pub(crate) counters: Counters,
    /// Free mappings of their own kept for reuse.
    pub(crate) huge_cache: HugeCache,
}

impl HeapState {
    /// Pages that may be resident: in use, free but dirty (or being
    /// released), and huge mappings in use or cached. Free clean pages were
    /// never written or were released, so they are not.
    pub(crate) fn resident(&self) -> usize {
        self.counters.in_use
            + self.dirty.pages
            + self.releasing
            + self.counters.huge_in_use
            + self.huge_cache.pages()
    }

    /// Records a new peak after pages were handed out.
    #[inline]
    pub(crate) fn note_peak(&mut self) {
        let now = self.resident();
        if now > self.counters.peak_resident {
            self.counters.peak_resident = now;
        }
    }
}

/// A snapshot of the page heap's accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageHeapStats {
    /// Bytes the heap has mapped from the OS (not counting metadata).
    pub mapped_bytes: usize,
    /// Bytes in spans handed out (large allocations and small-object spans).
    pub in_use_bytes: usize,
    /// Bytes in free spans that may be resident.
    pub free_dirty_bytes: usize,
    /// Bytes in free spans known to read as zero (not resident).
    pub free_clean_bytes: usize,
    /// Free spans, dirty and clean (not counting huge mappings kept for
    /// reuse).
    pub free_spans: usize,
    /// Large allocations made so far.
    pub large_allocs: u64,
    /// Small-object spans made so far.
    pub small_spans: u64,
    /// Bytes of OS memory holding metadata (span records, pagemap excluded).
    pub metadata_bytes: usize,
    /// Bytes in huge blocks (mappings of their own) in use.
    pub huge_in_use_bytes: usize,
    /// Huge blocks in use.
    pub huge_blocks: usize,
    /// Bytes in free huge mappings kept for reuse.
    pub huge_cached_bytes: usize,
    /// Huge allocations made so far.
    pub huge_allocs: u64,
    /// Huge blocks resized by moving page tables (`mremap`) instead of copying.
    pub huge_remaps: u64,
    /// Large blocks that `realloc` grew past [`crate::MOVE_MIN`] out of the
    /// heap into a mapping of their own (one copy; their later growth is a
    /// remap, counted in `huge_remaps`).
    pub large_moves: u64,
    /// Spans returned to the OS by decay (not counting explicit releases).
    pub decay_releases: u64,
    /// Bytes of the heap that may be resident now: in use, free but dirty,
    /// huge blocks in use or cached (metadata not included).
    pub resident_bytes: usize,
    /// The most `resident_bytes` has been.
    pub peak_resident_bytes: usize,
    /// The decay delay in force, in milliseconds.
    pub decay_ms: u64,
}

/// Why a pointer handed to [`PageHeap::free_large`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPointer {
    /// No span of this heap holds the address.
    NotOurs,
    /// The address is inside a span but not at its start.
    Interior,
    /// The span holding the address is not in use (a double free).
    NotInUse,
    /// The address belongs to a small-object span.
    SmallObject,
}

/// The page heap over an OS layer `O`.
pub struct PageHeap<O: Os> {
    pub(crate) os: O,
    pub(crate) pagemap: PageMap,
    pub(crate) records: MetaPool<Span>,
    pub(crate) state: Lock<HeapState>,
    pub(crate) decay: crate::decay::DecayClock,
    /// The reservation growth commits from (see [`crate::arena`]).
    pub(crate) arena: crate::arena::Arena,
    /// Bytes mapped by growth so far.
    pub(crate) grown_bytes: AtomicUsize,
    /// Growth beyond this many bytes is hinted for huge pages; stored
    /// inverted (`!bytes`), so that the default, never, is zero.
    pub(crate) huge_pages_after: AtomicUsize,
    /// Free dirty pages kept at most (unless a quarter of the pages in
    /// use, or the large blocks in use, hold more); see
    /// [`PageHeap::set_dirty_max`]. In pages, xor
    /// [`DEFAULT_DIRTY_MAX_PAGES`], so that the default is zero.
    pub(crate) dirty_max: AtomicUsize,
    /// The soft limit on what the heap holds (see [`crate::limit`]).
    pub(crate) limit: crate::limit::MemoryLimit,
    /// Large blocks freed and kept for reuse outside the lock (see
    /// [`crate::kept`]).
    pub(crate) kept: crate::kept::Kept,
}

/// The free dirty memory the heap keeps at most by default (unless a
/// quarter of the memory in use, or the large blocks in use, hold more):
/// enough for a program's frame loop (an
/// 8 MB block freed and allocated again), small beside what the peers
/// leave resident after a burst.
pub const DEFAULT_DIRTY_MAX: usize = 16 << 20;

/// [`DEFAULT_DIRTY_MAX`] in pages.
pub(crate) const DEFAULT_DIRTY_MAX_PAGES: usize = DEFAULT_DIRTY_MAX >> PAGE_SHIFT;

impl<O: Os> PageHeap<O> {
    strata_base::const_unless_loom! {
        /// An empty heap over `os`. Maps nothing until first used.
        pub fn new(os: O) -> Self {
            PageHeap {
                os,
                pagemap: PageMap::new(),
                records: MetaPool::new(),
                state: Lock::new(HeapState {
                    clean: FreeLists::new(),
                    dirty: FreeLists::new(),
                    releasing: 0,
                    counters: Counters {
                        mapped: 0,
                        in_use: 0,
                        large_in_use: 0,
                        large_allocs: 0,
                        small_spans: 0,
                        huge_in_use: 0,
                        huge_blocks: 0,
                        huge_allocs: 0,
                        huge_remaps: 0,
                        large_moves: 0,
                        decay_releases: 0,
                        peak_resident: 0,
                        swing: crate::decay::Swing::new(),
                    },
                    huge_cache: HugeCache::new(),
                }),
                decay: crate::decay::DecayClock::new(),
                arena: crate::arena::Arena::new(),
                grown_bytes: AtomicUsize::new(0),
                huge_pages_after: AtomicUsize::new(!DEFAULT_HUGE_PAGES_AFTER),
                dirty_max: AtomicUsize::new(0),
                limit: crate::limit::MemoryLimit::new(),
                kept: crate::kept::Kept::new(),
            }
        }
    }

    /// Sets how many bytes the heap grows by before it asks for transparent
    /// huge pages (`MADV_HUGEPAGE`) on all new memory: `0` asks from the
    /// start, `usize::MAX` (the default, [`DEFAULT_HUGE_PAGES_AFTER`]) never.
    /// Growth for a plain request of 4 MiB or more asks either way while
    /// the heap is under 64 MiB.
    pub fn set_huge_pages_after(&self, bytes: usize) {
        self.huge_pages_after.store(!bytes, Ordering::Relaxed);
    }

    /// Heap pages per OS page: 1 on kernels whose page is not larger than
    /// the heap's (4 and 8 KiB), 2 or 8 with 16 or 64 KiB pages.
    #[inline]
    pub(crate) fn os_page_pages(&self) -> usize {
        (self.os.page_size() >> PAGE_SHIFT).max(1)
    }

    /// `npages` rounded up to whole OS pages: the unit of every span, of a
    /// mapping of its own, and of what can be released.
    #[inline]
    pub(crate) fn round_to_os_pages(&self, npages: usize) -> Option<usize> {
        strata_os::align_up(npages, self.os_page_pages())
    }

    /// The OS layer beneath.
    #[inline]
    pub fn os(&self) -> &O {
        &self.os
    }

    /// The pagemap (for lock-free lookups by the layers above).
    #[inline]
    pub fn pagemap(&self) -> &PageMap {
        &self.pagemap
    }

    /// The span that holds `addr`, if it is an in-use or free span of this
    /// heap whose pagemap entry is current. Lock-free.
    #[inline]
    pub fn span_of(&self, addr: usize) -> Option<NonNull<Span>> {
        let page = addr >> PAGE_SHIFT;
        let s = self.pagemap.get(page);
        // SAFETY: span records are never unmapped, so reading a stale one is
        // harmless; `contains_page` rejects records describing other pages.
        if !s.is_null() && unsafe { (*s).contains_page(page) } {
            NonNull::new(s)
        } else {
            None
        }
    }

    /// Whether `addr` lies in the address range the heap grows into: a few
    /// instructions, no lookup. Every small-object span made while the arena
    /// had room is inside it, so a pointer outside is either from a span
    /// grown elsewhere (the arena was full or could not be made) or not
    /// strata's at all; [`PageHeap::size_class_of`] tells which.
    #[inline(always)]
    pub fn in_arena(&self, addr: usize) -> bool {
        self.arena.contains(addr)
    }

    /// The size class of the small-object span holding `addr` and `addr`'s
    /// offset from the span's start, from the arena's small-class map (a
    /// subtraction, a compare, a load): `(0, _)` for an address the map
    /// cannot answer for, which [`PageHeap::small_span_of`] then can (null,
    /// outside the arena, in no small span).
    #[inline(always)]
    pub fn arena_object(&self, addr: usize) -> (u8, usize) {
        self.arena_entry(addr).unwrap_or((0, 0))
    }

    /// [`PageHeap::arena_object`], with `None` for an address outside what
    /// the map covers (null, outside the arena) and `(0, _)` for a page of
    /// the arena in no small span: for a caller that sends the first out of
    /// line at once and lets class 0 fail its object test.
    #[inline(always)]
    pub fn arena_entry(&self, addr: usize) -> Option<(u8, usize)> {
        let (class, page_offset) = self.arena.small_entry(addr)?;
        Some((class, page_offset + (addr & (PAGE_SIZE - 1))))
    }

    /// The arena's `(start, length)` in bytes, once the heap has grown.
    pub fn arena_range(&self) -> Option<(usize, usize)> {
        self.arena.range()
    }

    /// The size class of the small-object span holding `addr` (0 if none)
    /// and, when non-zero, the first address of that span: one pagemap walk
    /// and no span record read (the page's index in its span is in the
    /// pagemap).
    #[inline]
    pub fn small_span_of(&self, addr: usize) -> (u8, usize) {
        match self.pagemap.small(addr >> PAGE_SHIFT) {
            (0, _) => (0, 0),
            (class, first) => (class, first << PAGE_SHIFT),
        }
    }

    /// The size class of the small-object span holding `addr`, or 0.
    #[inline]
    pub fn size_class_of(&self, addr: usize) -> u8 {
        self.pagemap.class(addr >> PAGE_SHIFT)
    }

    // ---- taking spans --------------------------------------------------

    /// Takes a span of `npages` pages whose first page is a multiple of
    /// `align_pages`, mapping more memory from the OS if needed.
    pub(crate) fn take(
        &self,
        npages: usize,
        align_pages: usize,
        prefer: Prefer,
        size_class: u8,
    ) -> Option<NonNull<Span>> {
        // Spans are whole OS pages, so that every release of a free span
        // covers it exactly: on kernels whose page is larger than the
        // heap's (16 or 64 KiB), a span of a page or two would otherwise
        // share an OS page with its neighbours and could never be released,
        // nor its zero state be known.
        // Every span starts on an OS page already: a coarser alignment is
        // the only one that needs finding.
        let npages = self.round_to_os_pages(npages)?;
        let align_pages = if align_pages <= self.os_page_pages() {
            1
        } else {
            align_pages
        };
        let want = npages.checked_add(align_pages - 1)?;
        loop {
            {
                let mut st = self.lock_with_records(RECORDS_PER_OP)?;
                if prefer == Prefer::Dirty {
                    self.unpark_if_short(&mut st, want);
                }
                let (first, second) = match prefer {
                    Prefer::Dirty => (
                        &mut st.dirty as *mut FreeLists,
                        &mut st.clean as *mut FreeLists,
                    ),
                    Prefer::Clean => (
                        &mut st.clean as *mut FreeLists,
                        &mut st.dirty as *mut FreeLists,
                    ),
                };
                // SAFETY: the two pointers are distinct fields of the locked state.
                let (first, second) = unsafe { (&mut *first, &mut *second) };
                let mut s = first.find(want);
                let mut from = first;
                if s.is_null() {
                    s = second.find(want);
                    from = second;
                }
                if !s.is_null() {
                    // A clean span taken where dirty memory would have
                    // done (any small-object span; a large block that
                    // need not be zero) may be memory a trim gave back.
                    // SAFETY: s is a free span in `from`.
                    if (size_class != 0 || prefer == Prefer::Dirty) && unsafe { (*s).clean } {
                        self.note_taken_back(&mut st, npages);
                    }
                    // SAFETY: as above.
                    unsafe { from.remove(s) };
                    // SAFETY: s is ours now, unlinked.
                    let s = unsafe { self.carve(&mut st, s, npages, align_pages) };
                    st.counters.in_use += npages;
                    st.note_peak();
                    self.record_in_use(&mut st, s, size_class);
                    return NonNull::new(s);
                }
            }
            self.grow(want, Touch::of(prefer, want))?;
        }
    }

    /// Cuts the aligned `npages` out of free span `s`, returning the rest to
    /// the free lists. The result is in use.
    ///
    /// # Safety
    /// `s` is a free span removed from the lists; the lock is held.
    unsafe fn carve(
        &self,
        st: &mut HeapState,
        s: *mut Span,
        npages: usize,
        align_pages: usize,
    ) -> *mut Span {
        // SAFETY: s is valid and ours.
        let (start, len, clean) = unsafe { ((*s).start, (*s).npages, (*s).clean) };
        let astart = start.next_multiple_of(align_pages);
        let lead = astart - start;
        let tail = len - lead - npages;
        // SAFETY: s is valid and ours.
        let freed_at = unsafe { (*s).freed_at };
        if lead > 0 {
            // The leading part keeps the record `s`; a new record takes the rest.
            // SAFETY: s is ours.
            unsafe { (*s).npages = lead };
            self.insert_free(st, s);
            let rest = self.new_record(st, astart, len - lead, clean);
            // SAFETY: a fresh record of ours.
            unsafe { (*rest).freed_at = freed_at };
            // SAFETY: reborrow of a fresh record; recursion has no leading part.
            return unsafe { self.carve(st, rest, npages, 1) };
        }
        if tail > 0 {
            let t = self.new_record(st, start + npages, tail, clean);
            // The remainder keeps its age.
            // SAFETY: a fresh record of ours.
            unsafe { (*t).freed_at = freed_at };
            self.insert_free(st, t);
        }
        // SAFETY: s is ours.
        unsafe {
            (*s).npages = npages;
            (*s).set_state(SpanState::InUse);
        }
        s
    }

    /// Records `class` for `page`, the `index`-th page of its span (both 0
    /// outside small spans), in the pagemap and the arena's small-class map.
    fn set_small(&self, page: usize, class: u8, index: usize) {
        self.pagemap.set_small(page, class, index);
        self.arena.set_small(page, class, index);
    }

    /// Records a span just handed out in the pagemap: every page and its
    /// class for a small-object span, the two ends for a large one.
    fn record_in_use(&self, st: &mut HeapState, s: *mut Span, size_class: u8) {
        // SAFETY: s is an in-use span we just carved; the lock is held.
        unsafe {
            let (start, n) = ((*s).start, (*s).npages);
            (*s).size_class = size_class;
            // A record that was parked keeps its flag until it is handed
            // out again (`crate::kept`, "Double frees").
            (*s).kept.store(false, crate::sync::Ordering::Relaxed);
            if size_class == 0 {
                st.counters.large_allocs += 1;
                st.counters.large_in_use += n;
                self.pagemap.set(start, s);
                self.pagemap.set(start + n - 1, s);
            } else {
                st.counters.small_spans += 1;
                (*s).free_bits = ptr::null_mut();
                (*s).bits_from = 0;
                (*s).allocated = 0;
                (*s).carved = 0;
                for (i, p) in (start..start + n).enumerate() {
                    self.pagemap.set(p, s);
                    self.set_small(p, size_class, i);
                }
            }
        }
    }

    /// Takes the heap lock with at least `n` span records ready to be
    /// handed out under it without mapping ([`PageHeap::new_record`]), or
    /// `None` when the OS refuses memory for them: the caller fails its
    /// request (a null pointer), it never aborts. Records are only taken
    /// under the heap lock, so none of the `n` can go to another thread
    /// before the guard is dropped.
    pub(crate) fn lock_with_records(&self, n: usize) -> Option<LockGuard<'_, HeapState>> {
        loop {
            if !self.records.reserve(&self.os, n) {
                return None;
            }
            let st = self.lock_noting();
            if self.records.available() >= n {
                return Some(st);
            }
            // Another thread used them between the reserve and the lock.
        }
    }

    /// A record for a new span. `_st` is the heap state under a guard from
    /// [`PageHeap::lock_with_records`] that counted this record.
    pub(crate) fn new_record(
        &self,
        _st: &mut HeapState,
        start: usize,
        npages: usize,
        clean: bool,
    ) -> *mut Span {
        let Some(rec) = self.records.alloc(&self.os) else {
            // Unreachable: the guard's records were reserved.
            strata_os::fatal(b"strata: span records ran out under the heap lock\n");
        };
        let rec = rec.as_ptr();
        // SAFETY: a fresh record, exclusively ours.
        unsafe { rec.write(Span::new(start, npages, SpanState::Free, clean)) };
        rec
    }

    /// Puts a free span into the lists and records its ends in the pagemap.
    pub(crate) fn insert_free(&self, st: &mut HeapState, s: *mut Span) {
        // SAFETY: s is a valid free span in no list; the lock is held.
        unsafe {
            (*s).set_state(SpanState::Free);
            (*s).size_class = 0;
            let (start, n) = ((*s).start, (*s).npages);
            self.pagemap.set(start, s);
            self.pagemap.set(start + n - 1, s);
            if (*s).clean {
                st.clean.insert(s);
            } else {
                st.dirty.insert(s);
            }
        }
    }

    // ---- giving spans back ---------------------------------------------

    /// Merges free span `s` with free neighbours and files it.
    pub(crate) fn free_locked(&self, st: &mut HeapState, s: *mut Span) {
        // SAFETY: s is a valid span owned by the caller; neighbours found in
        // the pagemap are checked for containment and state before use, and
        // the lock is held.
        unsafe {
            (*s).set_state(SpanState::Free);
            (*s).size_class = 0;
            if !(*s).clean {
                // Decay measures from here. Dirty neighbours merge only when
                // they were freed at about the same time (within half the
                // delay), so memory in active reuse never inherits the age of
                // idle memory beside it (and is never released with it), and
                // idle memory never stays young because of a busy neighbour.
                (*s).freed_at = self.os.now_ms();
            }
            let start = (*s).start;
            if start > 0 {
                let left = self.pagemap.get(start - 1);
                if self.mergeable(left, start - 1, s) {
                    self.unlink_free(st, left);
                    (*s).freed_at = (*s).freed_at.max((*left).freed_at);
                    (*s).start = (*left).start;
                    (*s).npages += (*left).npages;
                    self.drop_record(st, left);
                }
            }
            let end = (*s).start + (*s).npages;
            let right = self.pagemap.get(end);
            if self.mergeable(right, end, s) {
                self.unlink_free(st, right);
                (*s).freed_at = (*s).freed_at.max((*right).freed_at);
                (*s).npages += (*right).npages;
                self.drop_record(st, right);
            }
        }
        self.insert_free(st, s);
    }

    /// # Safety
    /// `n` is null or a span record; `s` a valid span.
    pub(crate) unsafe fn mergeable(&self, n: *mut Span, page: usize, s: *mut Span) -> bool {
        // SAFETY: records are never unmapped; the checks reject stale ones.
        !n.is_null()
            && n != s
            && unsafe {
                (*n).state == SpanState::Free
                    && (*n).contains_page(page)
                    && (*n).clean == (*s).clean
                    && !(*n).own_mapping
                    && !(*s).own_mapping
                    && ((*s).clean || (*n).freed_at.abs_diff((*s).freed_at) <= self.decay_ms() / 2)
            }
    }

    /// # Safety
    /// `s` is a free span in one of the sets.
    pub(crate) unsafe fn unlink_free(&self, st: &mut HeapState, s: *mut Span) {
        // SAFETY: caller's contract.
        unsafe {
            if (*s).clean {
                st.clean.remove(s);
            } else {
                st.dirty.remove(s);
            }
        }
    }

    /// Returns a record to the pool (under the heap lock: `_st`).
    ///
    /// # Safety
    /// `s` is in no list and nothing refers to it any more.
    pub(crate) unsafe fn drop_record(&self, _st: &mut HeapState, s: *mut Span) {
        // SAFETY: caller's contract; a dead record can never pass `mergeable`.
        unsafe {
            (*s).set_state(SpanState::Dead);
            self.records.free(NonNull::new_unchecked(s));
        }
    }

    // ---- small-object spans (for the central layer) ------------------------

    /// Takes a span of `npages` pages for objects of `size_class` (non-zero)
    /// and records the class of every page in the pagemap. `None` if the
    /// memory ran out or `npages` is 0 or more than [`MAX_SMALL_SPAN_PAGES`].
    pub fn alloc_small_span(&self, npages: usize, size_class: u8) -> Option<NonNull<Span>> {
        debug_assert!(size_class != 0);
        if npages == 0 || npages > MAX_SMALL_SPAN_PAGES {
            return None;
        }
        self.take(npages, 1, Prefer::Dirty, size_class)
    }

    /// Returns a small-object span whose objects are all free.
    ///
    /// # Safety
    /// `s` came from [`PageHeap::alloc_small_span`] and no object of it is in use.
    pub unsafe fn free_small_span(&self, s: NonNull<Span>) {
        let sp = s.as_ptr();
        let mut st = self.state.lock();
        // SAFETY: the span is ours; clearing its class bytes keeps the
        // invariant that only in-use small spans have a class.
        unsafe {
            debug_assert_eq!(
                (*sp).allocated,
                0,
                "a small span given back with objects out"
            );
            for p in (*sp).start..(*sp).start + (*sp).npages {
                self.set_small(p, 0, 0);
            }
            st.counters.in_use -= (*sp).npages;
            (*sp).clean = false;
        }
        self.free_locked(&mut st, sp);
        let over = self.over_dirty_cap(&st);
        drop(st);
        if over {
            self.trim_dirty();
        }
    }
}
