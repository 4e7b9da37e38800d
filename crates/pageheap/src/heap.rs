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
//!   dirty), or being released.
//! - Two free spans are never adjacent (they would have been merged), except
//!   across a span that is being released.
//! - A free span marked clean reads as zero (checked in debug builds).

use core::ptr::{self, NonNull};

use strata_os::{ForkLock, Lock, MetaPool, Os};

use crate::freelists::FreeLists;
use crate::pagemap::PageMap;
use crate::span::{Span, SpanState};
use crate::{PAGE_SHIFT, PAGE_SIZE};

/// The heap grows by at least this many bytes at a time (huge-page sized, so
/// transparent huge pages can back it when the system wants).
const GROW_MIN: usize = 2 << 20;

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
struct Counters {
    mapped: usize,
    in_use: usize,
    large_allocs: u64,
    small_spans: u64,
}

struct HeapState {
    clean: FreeLists,
    dirty: FreeLists,
    releasing: usize,
    counters: Counters,
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
    /// Large allocations made so far.
    pub large_allocs: u64,
    /// Small-object spans made so far.
    pub small_spans: u64,
    /// Bytes of OS memory holding metadata (span records, pagemap excluded).
    pub metadata_bytes: usize,
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
    os: O,
    pagemap: PageMap,
    records: MetaPool<Span>,
    state: Lock<HeapState>,
}

impl<O: Os> PageHeap<O> {
    strata_os::const_unless_loom! {
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
                    counters: Counters { mapped: 0, in_use: 0, large_allocs: 0, small_spans: 0 },
                }),
            }
        }
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

    /// The size class of the small-object span holding `addr`, or 0.
    #[inline]
    pub fn size_class_of(&self, addr: usize) -> u8 {
        self.pagemap.class(addr >> PAGE_SHIFT)
    }

    // ---- taking spans --------------------------------------------------

    /// Takes a span of `npages` pages whose first page is a multiple of
    /// `align_pages`, mapping more memory from the OS if needed.
    fn take(
        &self,
        npages: usize,
        align_pages: usize,
        prefer: Prefer,
        size_class: u8,
    ) -> Option<NonNull<Span>> {
        let want = npages.checked_add(align_pages - 1)?;
        loop {
            self.records.reserve(&self.os, RECORDS_PER_OP);
            {
                let mut st = self.state.lock();
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
                    // SAFETY: s is a free span in `from`.
                    unsafe { from.remove(s) };
                    // SAFETY: s is ours now, unlinked.
                    let s = unsafe { self.carve(&mut st, s, npages, align_pages) };
                    st.counters.in_use += npages;
                    self.record_in_use(&mut st, s, size_class);
                    return NonNull::new(s);
                }
            }
            self.grow(want)?;
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
        if lead > 0 {
            // The leading part keeps the record `s`; a new record takes the rest.
            // SAFETY: s is ours.
            unsafe { (*s).npages = lead };
            self.insert_free(st, s);
            let rest = self.new_record(astart, len - lead, clean);
            // SAFETY: reborrow of a fresh record; recursion has no leading part.
            return unsafe { self.carve(st, rest, npages, 1) };
        }
        if tail > 0 {
            let t = self.new_record(start + npages, tail, clean);
            self.insert_free(st, t);
        }
        // SAFETY: s is ours.
        unsafe {
            (*s).npages = npages;
            (*s).state = SpanState::InUse;
        }
        s
    }

    /// Records a span just handed out in the pagemap: every page and its
    /// class for a small-object span, the two ends for a large one.
    fn record_in_use(&self, st: &mut HeapState, s: *mut Span, size_class: u8) {
        // SAFETY: s is an in-use span we just carved; the lock is held.
        unsafe {
            let (start, n) = ((*s).start, (*s).npages);
            (*s).size_class = size_class;
            if size_class == 0 {
                st.counters.large_allocs += 1;
                self.pagemap.set(start, s);
                self.pagemap.set(start + n - 1, s);
            } else {
                st.counters.small_spans += 1;
                (*s).objects = ptr::null_mut();
                (*s).allocated = 0;
                (*s).carved = 0;
                for p in start..start + n {
                    self.pagemap.set(p, s);
                    self.pagemap.set_class(p, size_class);
                }
            }
        }
    }

    fn new_record(&self, start: usize, npages: usize, clean: bool) -> *mut Span {
        // Reserved ahead of the lock; in the rare race where the reserve ran
        // dry, the pool maps under the lock rather than fail.
        let Some(rec) = self.records.alloc(&self.os) else {
            // Out of memory even for metadata: nothing sensible remains.
            strata_os::fatal(b"strata: out of memory for span metadata\n");
        };
        let rec = rec.as_ptr();
        // SAFETY: a fresh record, exclusively ours.
        unsafe { (*rec).init(start, npages, SpanState::Free, clean) };
        rec
    }

    /// Puts a free span into the lists and records its ends in the pagemap.
    fn insert_free(&self, st: &mut HeapState, s: *mut Span) {
        // SAFETY: s is a valid free span in no list; the lock is held.
        unsafe {
            (*s).state = SpanState::Free;
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

    /// Maps at least `npages` more pages and adds them to the free lists.
    fn grow(&self, npages: usize) -> Option<()> {
        let bytes = npages.checked_mul(PAGE_SIZE)?;
        let (len, align) = if bytes >= GROW_MIN {
            (strata_os::align_up(bytes, GROW_MIN)?, GROW_MIN)
        } else {
            (GROW_MIN, GROW_MIN)
        };
        let mem = self.os.map(len, align).ok()?;
        let start = mem.as_ptr() as usize >> PAGE_SHIFT;
        let n = len >> PAGE_SHIFT;
        if !self.pagemap.ensure(start, n, &self.os) {
            // SAFETY: just mapped, never handed out.
            unsafe { self.os.unmap(mem, len) };
            return None;
        }
        self.records.reserve(&self.os, RECORDS_PER_OP);
        let mut st = self.state.lock();
        st.counters.mapped += n;
        let s = self.new_record(start, n, true);
        self.free_locked(&mut st, s);
        Some(())
    }

    // ---- giving spans back ---------------------------------------------

    /// Merges free span `s` with free neighbours and files it.
    fn free_locked(&self, st: &mut HeapState, s: *mut Span) {
        // SAFETY: s is a valid span owned by the caller; neighbours found in
        // the pagemap are checked for containment and state before use, and
        // the lock is held.
        unsafe {
            (*s).state = SpanState::Free;
            (*s).size_class = 0;
            let start = (*s).start;
            if start > 0 {
                let left = self.pagemap.get(start - 1);
                if self.mergeable(left, start - 1, s) {
                    self.unlink_free(st, left);
                    (*s).start = (*left).start;
                    (*s).npages += (*left).npages;
                    (*s).clean &= (*left).clean;
                    self.drop_record(left);
                }
            }
            let end = (*s).start + (*s).npages;
            let right = self.pagemap.get(end);
            if self.mergeable(right, end, s) {
                self.unlink_free(st, right);
                (*s).npages += (*right).npages;
                (*s).clean &= (*right).clean;
                self.drop_record(right);
            }
        }
        self.insert_free(st, s);
    }

    /// # Safety
    /// `n` is null or a span record; `s` a valid span.
    unsafe fn mergeable(&self, n: *mut Span, page: usize, s: *mut Span) -> bool {
        // SAFETY: records are never unmapped; the checks reject stale ones.
        !n.is_null()
            && n != s
            && unsafe {
                (*n).state == SpanState::Free
                    && (*n).contains_page(page)
                    && !(*n).own_mapping
                    && !(*s).own_mapping
            }
    }

    /// # Safety
    /// `s` is a free span in one of the sets.
    unsafe fn unlink_free(&self, st: &mut HeapState, s: *mut Span) {
        // SAFETY: caller's contract.
        unsafe {
            if (*s).clean {
                st.clean.remove(s);
            } else {
                st.dirty.remove(s);
            }
        }
    }

    /// # Safety
    /// `s` is in no list and nothing refers to it any more.
    unsafe fn drop_record(&self, s: *mut Span) {
        // SAFETY: caller's contract; a dead record can never pass `mergeable`.
        unsafe {
            (*s).state = SpanState::Dead;
            self.records.free(NonNull::new_unchecked(s));
        }
    }

    // ---- small-object spans (for the central layer) ------------------------

    /// Takes a span of `npages` pages for objects of `size_class` (non-zero)
    /// and records the class of every page in the pagemap.
    pub fn alloc_small_span(&self, npages: usize, size_class: u8) -> Option<NonNull<Span>> {
        debug_assert!(size_class != 0);
        self.take(npages, 1, Prefer::Dirty, size_class)
    }

    /// Returns a small-object span whose objects are all free.
    ///
    /// # Safety
    /// `s` came from [`PageHeap::alloc_small_span`] and no object of it is in use.
    pub unsafe fn free_small_span(&self, s: NonNull<Span>) {
        let sp = s.as_ptr();
        self.records.reserve(&self.os, 1);
        let mut st = self.state.lock();
        // SAFETY: the span is ours; clearing its class bytes keeps the
        // invariant that only in-use small spans have a class.
        unsafe {
            for p in (*sp).start..(*sp).start + (*sp).npages {
                self.pagemap.set_class(p, 0);
            }
            st.counters.in_use -= (*sp).npages;
            (*sp).clean = false;
        }
        self.free_locked(&mut st, sp);
    }

    // ---- large allocations -------------------------------------------------

    /// Allocates `size` bytes aligned to `align` as a span of its own. With
    /// `zero`, the memory reads as zero; it is cleared only where it may be
    /// dirty, and only its resident pages are written.
    pub fn alloc_large(&self, size: usize, align: usize, zero: bool) -> Option<NonNull<u8>> {
        let npages = size.max(1).checked_add(PAGE_SIZE - 1)? >> PAGE_SHIFT;
        if npages > (isize::MAX as usize) >> PAGE_SHIFT {
            return None;
        }
        let align_pages = (align >> PAGE_SHIFT).max(1);
        let prefer = if zero { Prefer::Clean } else { Prefer::Dirty };
        let s = self.take(npages, align_pages, prefer, 0)?;
        // SAFETY: the span is ours and in use.
        let (start, clean) = unsafe { ((*s.as_ptr()).start, (*s.as_ptr()).clean) };
        let addr = start << PAGE_SHIFT;
        // SAFETY: the address is the start of a mapped span we own.
        let p = unsafe { NonNull::new_unchecked(addr as *mut u8) };
        if zero && !clean {
            // SAFETY: outside the lock, on pages only we hold.
            unsafe { self.os.zero(p, npages << PAGE_SHIFT) };
        }
        #[cfg(debug_assertions)]
        if zero {
            // SAFETY: the span's memory is ours and mapped.
            unsafe { debug_assert_zero(p.as_ptr(), npages << PAGE_SHIFT) };
        }
        Some(p)
    }

    /// Checks that `addr` is the start of an in-use large allocation of this
    /// heap and returns its span.
    pub fn large_span(&self, addr: usize) -> Result<NonNull<Span>, BadPointer> {
        let s = self.span_of(addr).ok_or(BadPointer::NotOurs)?;
        // SAFETY: span_of returned a record that holds the page.
        let span = unsafe { s.as_ref() };
        match span.state {
            SpanState::InUse if span.size_class != 0 => Err(BadPointer::SmallObject),
            SpanState::InUse if span.start_addr() == addr => Ok(s),
            SpanState::InUse => Err(BadPointer::Interior),
            _ => Err(BadPointer::NotInUse),
        }
    }

    /// The usable size of the large allocation at `addr`.
    pub fn large_size(&self, addr: usize) -> Result<usize, BadPointer> {
        // SAFETY: large_span returns a valid, in-use record.
        self.large_span(addr)
            .map(|s| unsafe { s.as_ref().len_bytes() })
    }

    /// Frees the large allocation at `addr`, or explains why it is not one.
    ///
    /// # Safety
    /// If `addr` is a live large allocation, nobody uses it any more.
    pub unsafe fn free_large(&self, addr: usize) -> Result<(), BadPointer> {
        self.records.reserve(&self.os, 1);
        let mut st = self.state.lock();
        // Checked under the lock so that two racing frees of the same block
        // cannot both pass.
        let s = self.large_span(addr)?.as_ptr();
        // SAFETY: an in-use large span; the caller gave it up.
        unsafe {
            st.counters.in_use -= (*s).npages;
            (*s).clean = false;
        }
        self.free_locked(&mut st, s);
        Ok(())
    }

    /// Resizes the large allocation at `addr` in place to `new_size` bytes if
    /// that is possible: shrinking always is; growing takes pages from a free
    /// right neighbour. Returns whether it succeeded.
    ///
    /// # Safety
    /// `addr` is a live large allocation owned by the caller.
    pub unsafe fn resize_large_in_place(&self, addr: usize, new_size: usize) -> bool {
        let Some(new_pages) = new_size
            .max(1)
            .checked_add(PAGE_SIZE - 1)
            .map(|v| v >> PAGE_SHIFT)
        else {
            return false;
        };
        self.records.reserve(&self.os, 2);
        let mut st = self.state.lock();
        let Ok(s) = self.large_span(addr) else {
            return false;
        };
        let s = s.as_ptr();
        // SAFETY: s is an in-use large span owned by the caller; neighbours are
        // validated by `mergeable`; the lock is held.
        unsafe {
            let (start, old) = ((*s).start, (*s).npages);
            if new_pages == old {
                return true;
            }
            if new_pages < old {
                (*s).npages = new_pages;
                self.pagemap.set(start + new_pages - 1, s);
                let t = self.new_record(start + new_pages, old - new_pages, false);
                st.counters.in_use -= old - new_pages;
                self.free_locked(&mut st, t);
                return true;
            }
            let right = self.pagemap.get(start + old);
            if !self.mergeable(right, start + old, s) || old + (*right).npages < new_pages {
                return false;
            }
            let extra = new_pages - old;
            self.unlink_free(&mut st, right);
            let rest = (*right).npages - extra;
            if rest > 0 {
                (*right).start += extra;
                (*right).npages = rest;
                self.insert_free(&mut st, right);
            } else {
                self.drop_record(right);
            }
            (*s).npages = new_pages;
            (*s).clean = false;
            self.pagemap.set(start + new_pages - 1, s);
            st.counters.in_use += extra;
        }
        true
    }

    // ---- release -----------------------------------------------------------

    /// Gives every free dirty page back to the OS now. Returns the bytes
    /// released.
    pub fn release_free_memory(&self) -> usize {
        let mut released = 0;
        loop {
            let s = {
                let mut st = self.state.lock();
                let s = st.dirty.any();
                if s.is_null() {
                    break;
                }
                // SAFETY: s is a dirty free span; taking it out while the
                // madvise runs keeps others from allocating or merging it.
                unsafe {
                    st.dirty.remove(s);
                    (*s).state = SpanState::Releasing;
                    st.releasing += (*s).npages;
                }
                s
            };
            // SAFETY: the span is ours while Releasing.
            let (addr, len) = unsafe { ((*s).start_addr(), (*s).len_bytes()) };
            // SAFETY: the pages are mapped and nobody uses them.
            let ok = unsafe {
                self.os
                    .release(NonNull::new_unchecked(addr as *mut u8), len)
            }
            .is_ok();
            if ok {
                released += len;
            }
            self.records.reserve(&self.os, 1);
            let mut st = self.state.lock();
            // SAFETY: still ours.
            unsafe {
                st.releasing -= (*s).npages;
                (*s).clean = ok;
            }
            self.free_locked(&mut st, s);
            if !ok {
                break;
            }
        }
        released
    }

    // ---- accounting and fork ---------------------------------------------

    /// A snapshot of the heap's accounting.
    pub fn stats(&self) -> PageHeapStats {
        let st = self.state.lock();
        PageHeapStats {
            mapped_bytes: st.counters.mapped << PAGE_SHIFT,
            in_use_bytes: st.counters.in_use << PAGE_SHIFT,
            free_dirty_bytes: (st.dirty.pages + st.releasing) << PAGE_SHIFT,
            free_clean_bytes: st.clean.pages << PAGE_SHIFT,
            large_allocs: st.counters.large_allocs,
            small_spans: st.counters.small_spans,
            metadata_bytes: self.records.mapped_bytes(),
        }
    }

    /// Checks the heap's structural invariants: every free span is filed under
    /// the right set, its ends are in the pagemap, no two free spans touch,
    /// and the page counts add up. For tests; takes the lock.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let st = self.state.lock();
        let mut err = None;
        let mut pages = 0;
        let mut check = |s: *mut Span, clean: bool| {
            // SAFETY: members of the free lists are valid records.
            let span = unsafe { &*s };
            pages += span.npages;
            if span.state != SpanState::Free || span.clean != clean {
                err = Some("free span with wrong state or zero flag");
            }
            if self.pagemap.get(span.start) != s
                || self.pagemap.get(span.start + span.npages - 1) != s
            {
                err = Some("free span ends not in the pagemap");
            }
            for n in [span.start.wrapping_sub(1), span.start + span.npages] {
                let o = self.pagemap.get(n);
                // SAFETY: records are never unmapped.
                if !o.is_null()
                    && o != s
                    && unsafe { (*o).state == SpanState::Free && (*o).contains_page(n) }
                {
                    err = Some("two free spans are adjacent");
                }
            }
        };
        st.clean.for_each(|s| check(s, true));
        st.dirty.for_each(|s| check(s, false));
        if let Some(e) = err {
            return Err(e);
        }
        if pages != st.clean.pages + st.dirty.pages {
            return Err("free page count does not match the lists");
        }
        if pages + st.counters.in_use + st.releasing != st.counters.mapped {
            return Err("pages in use + free != pages mapped");
        }
        Ok(())
    }

    /// Takes the heap's locks before `fork` (call after the layers above took
    /// theirs).
    pub fn fork_prepare(&self) {
        self.state.fork_prepare();
        self.records.lock_for_fork().fork_prepare();
    }

    /// Releases the locks in the parent after `fork`.
    ///
    /// # Safety
    /// After [`PageHeap::fork_prepare`] on this thread.
    pub unsafe fn fork_parent(&self) {
        // SAFETY: forwarded contract.
        unsafe {
            self.records.lock_for_fork().fork_parent();
            self.state.fork_parent();
        }
    }

    /// Resets the locks in the child after `fork`.
    ///
    /// # Safety
    /// In the child, after [`PageHeap::fork_prepare`] in the parent.
    pub unsafe fn fork_child(&self) {
        // SAFETY: forwarded contract.
        unsafe {
            self.records.lock_for_fork().fork_child();
            self.state.fork_child();
        }
    }
}

/// Debug builds verify that memory handed out as zeroed reads as zero, at up
/// to 256 places spread over the range (reading an untouched page maps the
/// shared zero page, which costs no memory).
///
/// # Safety
/// `[p, p + len)` is mapped and readable, `p` page aligned, `len` a multiple of 8.
#[cfg(debug_assertions)]
unsafe fn debug_assert_zero(p: *const u8, len: usize) {
    let words = len / 8;
    let step = (words / 256).max(1);
    let mut i = 0;
    while i < words {
        // SAFETY: i < words, so the word lies inside the caller's range.
        if unsafe { (p as *const u64).add(i).read_volatile() } != 0 {
            strata_os::fatal(b"strata: a span marked zeroed does not read as zero\n");
        }
        i += step;
    }
    // SAFETY: the last word of the range.
    if unsafe { (p as *const u64).add(words - 1).read_volatile() } != 0 {
        strata_os::fatal(b"strata: a span marked zeroed does not read as zero\n");
    }
}
