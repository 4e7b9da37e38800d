//! Large allocations: blocks of more than the largest size class, each a
//! span of whole pages (or, from [`crate::HUGE_MIN`] or with an alignment past
//! 2 MiB, a mapping of its own).
//!
//! A block that `realloc` grows past [`MOVE_MIN`] and that cannot grow in
//! place is copied once into a mapping of its own; from then on the kernel
//! resizes that mapping by moving page tables (`mremap`), never its bytes.
//! Pages inside the heap are never moved: the heap's memory may span several
//! kernel mappings (huge-page hints split them), and a move of such a range
//! is refused by every kernel before 6.17, after it unmapped the destination.
//!
//! Frees are validated: the address must be the start of an in-use large
//! span, checked under the heap lock so two racing frees of one block cannot
//! both pass. Anything else is refused with a [`BadPointer`] reason.
//!
//! With `zero`, a block reads as zero: a clean span is handed out as is; a
//! dirty one goes through [`strata_os::Os::zero`], which writes only resident
//! pages (or drops them when the block was barely used).

use core::ptr::NonNull;

use strata_os::Os;

use crate::heap::{BadPointer, Prefer};
use crate::kept::KEPT_MAX_PAGES;
use crate::span::{Span, SpanState};
use crate::sync::Ordering;
use crate::{PageHeap, PAGE_SHIFT, PAGE_SIZE};

/// A large block that `realloc` grows to at least this size, and that
/// cannot grow in place, moves into a mapping of its own (one copy), which
/// later growth resizes with `mremap` (see [`PageHeap::resize_large`]).
/// Below it a copy is cheap and what it leaves behind is small; above it,
/// copying a block at every step of its growth (a buffer, a vector, a string
/// being built) would leave every earlier copy resident in the free lists
/// until decay (glibc `mremap`s such blocks; measurements:
/// docs/performance.md, "Page heap: the arena test, large and huge
/// blocks"). Each such block is one kernel mapping (the kernel allows
/// about 65,000).
pub const MOVE_MIN: usize = 2 << 20;

/// What [`PageHeap::park_large`] did with a freed block.
enum Park {
    /// Parked among the kept blocks: freed.
    Parked,
    /// Not parked (no free slot), its `kept` flag set.
    Flagged,
    /// Not a block that parks; nothing done.
    Not,
}

/// Alignments above this (the arena's growth step) get a mapping of their
/// own whatever the size.
const OWN_MAPPING_ALIGN: usize = 2 << 20;

impl<O: Os> PageHeap<O> {
    /// Allocates `size` bytes aligned to `align` as a span of its own. With
    /// `zero`, the memory reads as zero; it is cleared only where it may be
    /// dirty, and only its resident pages are written.
    pub fn alloc_large(&self, size: usize, align: usize, zero: bool) -> Option<NonNull<u8>> {
        let npages = size.max(1).checked_add(PAGE_SIZE - 1)? >> PAGE_SHIFT;
        if npages > (isize::MAX as usize) >> PAGE_SHIFT {
            return None;
        }
        // An alignment past the arena's growth step would leave a gap of up
        // to `align` committed in the heap for each block; a mapping of its
        // own is trimmed to the block and charges only the block.
        if size >= crate::huge::HUGE_MIN || align > OWN_MAPPING_ALIGN {
            if let Some(p) = self.alloc_huge(npages, align, zero) {
                return Some(p);
            }
            // No address space for a new mapping (RLIMIT_AS, vm.max_map_count):
            // free heap memory may still hold the block. The heap keeps the
            // address space it grew into, so after a program freed what it
            // had, this is where the memory is.
        }
        if !zero && align <= PAGE_SIZE && npages <= KEPT_MAX_PAGES {
            if let Some(p) = self.take_kept(npages) {
                return Some(p);
            }
        }
        let align_pages = (align >> PAGE_SHIFT).max(1);
        let prefer = if zero { Prefer::Clean } else { Prefer::Dirty };
        let s = self.take(npages, align_pages, prefer, 0)?;
        // SAFETY: the span is ours and in use; it may be longer than asked
        // (whole OS pages), and all of it is the block's.
        let (start, npages, clean) = unsafe {
            (
                (*s.as_ptr()).start,
                (*s.as_ptr()).npages,
                (*s.as_ptr()).clean,
            )
        };
        let addr = start << PAGE_SHIFT;
        // SAFETY: the address is the start of a mapped span we own.
        let p = unsafe { NonNull::new_unchecked(addr as *mut u8) };
        // SAFETY: outside the lock, on a span only we hold.
        unsafe { self.prepare_reuse(s.as_ptr(), p, npages << PAGE_SHIFT, zero, clean) };
        #[cfg(debug_assertions)]
        if zero {
            // SAFETY: the span's memory is ours and mapped.
            unsafe { debug_assert_zero(p.as_ptr(), npages << PAGE_SHIFT) };
        }
        self.tick();
        Some(p)
    }

    /// Checks that `addr` is the start of an in-use large allocation of this
    /// heap and returns its span.
    pub fn large_span(&self, addr: usize) -> Result<NonNull<Span>, BadPointer> {
        let Some(s) = self.span_of(addr) else {
            return Err(self.classify_unknown(addr));
        };
        // SAFETY: span_of returned a record that holds the page.
        Self::large_at(unsafe { s.as_ref() }, addr).map(|()| s)
    }

    /// Whether `span`, which holds the page of `addr`, is an in-use large
    /// allocation that starts at `addr`, or why not.
    fn large_at(span: &Span, addr: usize) -> Result<(), BadPointer> {
        match span.state {
            SpanState::InUse if span.size_class != 0 => Err(BadPointer::SmallObject),
            SpanState::InUse if span.start_addr() == addr => Ok(()),
            SpanState::InUse => Err(BadPointer::Interior),
            _ => Err(BadPointer::NotInUse),
        }
    }

    /// Explains an address whose page has no current pagemap entry: the
    /// interior of a large block (only its end pages are recorded), or not
    /// ours. Scans back up to 1 GiB of pages for a span that holds it; an
    /// error path only.
    #[cold]
    fn classify_unknown(&self, addr: usize) -> BadPointer {
        let page = addr >> PAGE_SHIFT;
        for back in 1..(1usize << 17).min(page + 1) {
            let s = self.pagemap.get(page - back);
            // SAFETY: records are never unmapped; the checks reject stale ones.
            if !s.is_null() && unsafe { (*s).contains_page(page - back) } {
                // SAFETY: as above.
                let holds = unsafe { (*s).contains_page(page) && (*s).state == SpanState::InUse };
                return if holds {
                    BadPointer::Interior
                } else {
                    BadPointer::NotOurs
                };
            }
        }
        BadPointer::NotOurs
    }

    /// The usable size of the large allocation at `addr`.
    pub fn large_size(&self, addr: usize) -> Result<usize, BadPointer> {
        // SAFETY: large_span returns a valid, in-use record.
        self.large_span(addr)
            .map(|s| unsafe { s.as_ref().len_bytes() })
    }

    /// A parked block of `npages` or a little more ([`crate::kept`]),
    /// taken back for an allocation that need not be zero.
    fn take_kept(&self, npages: usize) -> Option<NonNull<u8>> {
        let s = self.kept.take(self.round_to_os_pages(npages)?)?;
        // SAFETY: emptying its slot made the parked block ours.
        let (p, len) = unsafe {
            (*s).kept.store(false, Ordering::Relaxed);
            ((*s).start << PAGE_SHIFT, (*s).npages << PAGE_SHIFT)
        };
        // SAFETY: the start of a mapped span we own.
        let p = unsafe { NonNull::new_unchecked(p as *mut u8) };
        // SAFETY: a span only we hold; its memory is dirty.
        unsafe { self.prepare_reuse(s, p, len, false, false) };
        Some(p)
    }

    /// Parks the heap block at `addr` among the kept ones if it is one
    /// that may park and a slot is free. `Err` when it was parked already
    /// (a double free); otherwise the caller frees it under the lock (which
    /// checks it there) unless it parked: [`Park::Parked`], or
    /// [`Park::Flagged`] (no slot was free; its `kept` flag is set already)
    /// or [`Park::Not`] (not a block that parks).
    ///
    /// # Safety
    /// As [`Self::free_large`].
    unsafe fn park_large(&self, addr: usize) -> Result<Park, BadPointer> {
        let Some(s) = self.span_of(addr) else {
            return Ok(Park::Not);
        };
        let s = s.as_ptr();
        // SAFETY: records are never unmapped; read outside the lock as
        // `resize_large_keeps_pages` does: for a live block of the caller's
        // these fields do not change, and anything else is checked again
        // under the lock.
        let npages = unsafe {
            let span = &*s;
            if Self::large_at(span, addr).is_err()
                || span.own_mapping
                || span.npages > KEPT_MAX_PAGES
            {
                return Ok(Park::Not);
            }
            span.npages
        };
        // SAFETY: as above; the swap decides between two frees of one block.
        if unsafe { (*s).kept.swap(true, Ordering::AcqRel) } {
            return Err(BadPointer::NotInUse);
        }
        // SAFETY: the block is ours to give up; nobody reads these fields
        // until the record is published by `park`.
        unsafe {
            (*s).freed_at = self.os.now_ms();
            (*s).clean = false;
            if self.kept.park(s, npages) {
                return Ok(Park::Parked);
            }
        }
        // No slot: the flag stays set (ours) for the lock path.
        Ok(Park::Flagged)
    }

    /// Frees the large allocation at `addr`, or explains why it is not one.
    ///
    /// # Safety
    /// If `addr` is a live large allocation, nobody uses it any more.
    pub unsafe fn free_large(&self, addr: usize) -> Result<(), BadPointer> {
        // Blocks park while threads wait for the heap lock (and until the
        // next decay pass); a program that does not contend frees into the
        // heap, where a block merges with its neighbours.
        let park = if self.kept.contended() {
            // SAFETY: forwarded contract.
            unsafe { self.park_large(addr)? }
        } else {
            Park::Not
        };
        let flagged = match park {
            Park::Parked => return Ok(()),
            Park::Flagged => true,
            Park::Not => false,
        };
        let mut st = self.lock_noting();
        // Checked under the lock so that two racing frees of the same block
        // cannot both pass.
        let s = self.large_span(addr)?.as_ptr();
        // SAFETY: an in-use large span; the caller gave it up.
        unsafe {
            // A heap block's `kept` flag: set by a free that parked the
            // block (then this is a second free), or by this free's own try
            // to park it; a racing free that tries to park it after this
            // finds it set. Cleared when the record is handed out again.
            if !(*s).own_mapping && (*s).kept.swap(true, Ordering::AcqRel) && !flagged {
                return Err(BadPointer::NotInUse);
            }
            if (*s).own_mapping {
                let evict = self.cache_huge(&mut st, s);
                drop(st);
                self.unmap_huge_list(evict);
                self.tick();
                return Ok(());
            }
            st.counters.in_use -= (*s).npages;
            st.counters.large_in_use -= (*s).npages;
            (*s).clean = false;
        }
        self.free_locked(&mut st, s);
        let over = self.over_dirty_cap(&st);
        drop(st);
        if over {
            self.trim_dirty();
        }
        self.tick();
        Ok(())
    }

    /// Whether the live large block at `addr` already has the pages
    /// `new_size` bytes need (exactly those in the heap; in a mapping of
    /// its own, at least as many as it last asked for and within its
    /// room), so that resizing
    /// it to `new_size` leaves it where it is with nothing to change: the common step of a block grown
    /// (or shrunk) a little at a time, answered with one pagemap lookup and
    /// no lock. Agrees with [`Self::resize_large`], which answers the same
    /// steps in place after more work. `false` for anything else, a bad
    /// pointer included, without looking further (the caller's full path
    /// reports it).
    ///
    /// # Safety
    /// `addr` is a live block owned by the caller, or a bad pointer that
    /// the caller reports after a `false`.
    #[inline]
    pub unsafe fn resize_large_keeps_pages(&self, addr: usize, new_size: usize) -> bool {
        let Some(s) = self.span_of(addr) else {
            return false;
        };
        // SAFETY: span_of returned a record that holds the page; records
        // are never unmapped. Once it is checked to be the caller's in-use
        // large block, its size does not change meanwhile.
        let s = unsafe { s.as_ref() };
        if Self::large_at(s, addr).is_err() {
            return false;
        }
        let Some(pages) = new_size.max(1).checked_add(PAGE_SIZE - 1) else {
            return false;
        };
        let pages = pages >> PAGE_SHIFT;
        // Most steps in strata's pages alone: a span's page count is a
        // whole number of OS pages, so a count that already answers yes
        // needs no rounding, and the OS page size is not read. The rest
        // (OS pages larger than strata's, or a shrink inside a mapping's
        // room) is rounded out of line, as the last call.
        Self::keeps(s, pages) || self.keeps_os_pages(s, pages)
    }

    /// Whether in-use large span `s` keeps its pages at `pages` pages.
    #[inline(always)]
    fn keeps(s: &Span, pages: usize) -> bool {
        if s.own_mapping {
            // Growth into its room, or as much as it last asked for (this
            // read-only check leaves `asked_pages` as it is: a shrink below
            // it goes the whole way, which decides on it and updates it).
            return pages <= s.npages && pages >= s.asked_pages as usize;
        }
        // A span in the heap that would reach the huge size moves to a
        // mapping of its own in `resize_large` (its pages are then fewer).
        s.npages == pages && pages < crate::huge::HUGE_MIN >> PAGE_SHIFT
    }

    /// [`Self::keeps`] for `pages` rounded to OS pages.
    #[inline(never)]
    fn keeps_os_pages(&self, s: &Span, pages: usize) -> bool {
        self.round_to_os_pages(pages)
            .is_some_and(|pages| Self::keeps(s, pages))
    }

    /// Resizes the large allocation at `addr` to `new_size` bytes: a span in
    /// the heap shrinks in place or grows into a free right neighbour; a
    /// block that reaches [`MOVE_MIN`] and cannot grow in place is copied
    /// once into a mapping of its own; a block in a mapping of its own is
    /// resized by moving page tables (and may move, keeping `align`).
    /// Returns the block's address, or `None` if it cannot be done (the block
    /// is then unchanged, and the caller copies).
    ///
    /// # Safety
    /// `addr` is a live large allocation owned by the caller, allocated with
    /// alignment `align` (a block resized in place stays where it is).
    pub unsafe fn resize_large(
        &self,
        addr: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        let new_pages = new_size.max(1).checked_add(PAGE_SIZE - 1)? >> PAGE_SHIFT;
        let s = self.large_span(addr).ok()?.as_ptr();
        // SAFETY: an in-use large span owned by the caller.
        if unsafe { (*s).own_mapping } {
            // SAFETY: forwarded contract.
            return unsafe { self.resize_huge(s, new_pages, align) };
        }
        // A block of huge size lives in a mapping of its own, so that later
        // growth resizes its mapping (and the heap is not pinned by it).
        // SAFETY: forwarded contract.
        if new_pages < crate::huge::HUGE_MIN >> PAGE_SHIFT
            && unsafe { self.resize_in_heap(s, new_pages) }
        {
            // SAFETY: addr is the live block's address.
            return Some(unsafe { NonNull::new_unchecked(addr as *mut u8) });
        }
        // SAFETY: forwarded contract.
        unsafe { self.move_to_own_mapping(s, addr, new_size, align) }
    }

    /// Grows the block of in-heap span `s` at `addr` into a new mapping of
    /// its own of `new_size` bytes: one copy, after which the kernel resizes
    /// the mapping. The old span goes back to the heap (dirty: its pages are
    /// resident and the next large request of that size reuses them). `None`
    /// below [`MOVE_MIN`] or for a shrink: the caller copies.
    ///
    /// # Safety
    /// `s` is the in-use large span (in the heap) of the live block at
    /// `addr`, owned by the caller.
    unsafe fn move_to_own_mapping(
        &self,
        s: *mut Span,
        addr: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: caller's contract.
        let old_len = unsafe { (*s).len_bytes() };
        if new_size < MOVE_MIN || new_size <= old_len {
            return None;
        }
        let npages = new_size.checked_add(PAGE_SIZE - 1)? >> PAGE_SHIFT;
        // A growing block: a mapping the huge cache kept keeps up to four
        // times its pages as room (a buffer grown again to the size of one
        // freed before finds its pages still there).
        let q = self.alloc_huge_within(npages, npages.saturating_mul(4), align, false)?;
        // SAFETY: `addr` is the caller's live block of `old_len` bytes and
        // `q` a new block of more; disjoint, both ours. The old block is
        // given up after the copy; `addr` was validated as an in-use large
        // block above (`s`), so its free cannot fail.
        unsafe {
            core::ptr::copy_nonoverlapping(addr as *const u8, q.as_ptr(), old_len);
            let freed = self.free_large(addr);
            debug_assert!(freed.is_ok(), "a validated block");
        }
        self.state.lock().counters.large_moves += 1;
        Some(q)
    }

    /// # Safety
    /// `s` is an in-use large span of the heap (not huge) owned by the caller.
    unsafe fn resize_in_heap(&self, s: *mut Span, new_pages: usize) -> bool {
        let Some(new_pages) = self.round_to_os_pages(new_pages) else {
            return false;
        };
        // The same page count (most steps of a block that grows a little
        // at a time): nothing to do, and no lock to take. The caller owns
        // the in-use span, so its size cannot change meanwhile.
        // SAFETY: caller's contract.
        if unsafe { (*s).npages } == new_pages {
            return true;
        }
        let Some(mut st) = self.lock_with_records(1) else {
            return false;
        };
        // SAFETY: s is an in-use large span owned by the caller; the right
        // neighbour is validated before use; the lock is held.
        unsafe {
            let (start, old) = ((*s).start, (*s).npages);
            if new_pages == old {
                return true;
            }
            if new_pages < old {
                (*s).npages = new_pages;
                self.pagemap.set(start + new_pages - 1, s);
                let t = self.new_record(&mut st, start + new_pages, old - new_pages, false);
                st.counters.in_use -= old - new_pages;
                st.counters.large_in_use -= old - new_pages;
                self.free_locked(&mut st, t);
                return true;
            }
            let right = self.pagemap.get(start + old);
            let usable = !right.is_null()
                && (*right).state == SpanState::Free
                && (*right).contains_page(start + old)
                && !(*right).own_mapping
                && old + (*right).npages >= new_pages;
            if !usable {
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
                self.drop_record(&mut st, right);
            }
            (*s).npages = new_pages;
            (*s).clean = false;
            self.pagemap.set(start + new_pages - 1, s);
            st.counters.in_use += extra;
            st.counters.large_in_use += extra;
            st.note_peak();
        }
        true
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
