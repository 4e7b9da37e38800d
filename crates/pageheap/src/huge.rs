//! Huge blocks: allocations of [`HUGE_MIN`] bytes or more get a mapping of
//! their own, so that `realloc` can resize them by moving page tables
//! (`mremap`) instead of copying, and freeing them never fragments the heap.
//! So do large blocks that `realloc` grows past [`crate::MOVE_MIN`].
//!
//! A freed huge mapping is not unmapped at once: the most recent few are
//! kept in the [`crate::huge_cache`] and reused.
//!
//! A huge block that `realloc` grows gets a quarter more pages than it
//! asked for, and keeps its pages while it needs at least three quarters
//! of what it last asked for, so a block grown a little at a time is
//! remapped once per quarter rather than at every page (the room is
//! address space until written). A block that grows past
//! [`crate::MOVE_MIN`] into a mapping the huge cache kept takes up to four
//! times its pages of it as room, rather than trimming pages the next
//! steps would fault in again.
//!
//! # Invariants
//! - A huge span is a whole mapping (`own_mapping`), one kernel mapping from
//!   [`strata_os::Os::map`] or a remap of one, a whole number of OS pages;
//!   it is never split, hinted in part, or merged with a neighbour, so the
//!   kernel can always move it. (A zeroed block's fresh mapping is hinted
//!   whole against huge pages, which keeps it one mapping.)
//! - Only its first and last pages are in the pagemap, and their nodes
//!   exist before the mapping is placed (`prepare` of a remap): no failure
//!   can follow a move.
//! - An in-use huge span is counted in `huge_in_use`; a freed one is in the
//!   huge cache or being unmapped.

use core::ptr::NonNull;

use strata_os::Os;

use crate::heap::HeapState;
use crate::span::{Span, SpanList, SpanState};
use crate::{PageHeap, PAGE_SHIFT, PAGE_SIZE};

/// Requests of at least this many bytes get a mapping of their own.
pub const HUGE_MIN: usize = 32 << 20;

/// Whether a huge block of `old` pages, of which it last asked for
/// `asked`, resized to need `new` pages stays as it is: it fits, and needs
/// at least three quarters of what it asked for last. A mapping that grows
/// gets a quarter more pages than asked for ([`grown_pages`]), so the
/// steps of a block grown a little at a time that follow stay in place,
/// and so does a shrink by little.
#[inline]
pub(crate) fn huge_keeps_pages(old: usize, asked: usize, new: usize) -> bool {
    new <= old && new >= asked - asked / 4
}

/// `pages` as a span's `asked_pages`.
fn asked(pages: usize) -> u32 {
    u32::try_from(pages).unwrap_or(u32::MAX)
}

/// The pages a huge mapping of `old` pages that must hold `new` (more)
/// grows to: a quarter more than it had, or `new` if that is more, so that
/// a block grown by small steps is remapped once per quarter, not at each
/// page. The room is address space only: pages never written are never
/// backed.
fn grown_pages(old: usize, new: usize) -> usize {
    new.max(old.saturating_add(old / 4))
}

impl<O: Os> PageHeap<O> {
    /// Allocates a huge block of `npages` pages aligned to `align`.
    pub(crate) fn alloc_huge(
        &self,
        npages: usize,
        align: usize,
        zero: bool,
    ) -> Option<NonNull<u8>> {
        self.alloc_huge_within(npages, npages, align, zero)
    }

    /// Allocates a huge block of `npages` pages aligned to `align`, where a
    /// cached mapping keeps up to `most` of its pages as room (for a block
    /// that is growing: trimming the mapping would discard pages that its
    /// next steps would fault in again); a fresh mapping has `npages`.
    pub(crate) fn alloc_huge_within(
        &self,
        npages: usize,
        most: usize,
        align: usize,
        zero: bool,
    ) -> Option<NonNull<u8>> {
        let npages = self.round_to_os_pages(npages)?;
        let most = self.round_to_os_pages(most)?;
        let want = npages;
        let len = npages.checked_mul(PAGE_SIZE)?;
        let align = align.max(PAGE_SIZE);
        let cached = {
            let mut st = self.lock_with_records(1)?;
            st.huge_cache.take_fit(len, align, zero)
        };
        if let Some(c) = cached {
            // SAFETY: the record is ours now (out of the cache).
            let (old, old_len, clean) =
                unsafe { ((*c).start_addr(), (*c).len_bytes(), (*c).clean) };
            // SAFETY: `old` is a whole mapping of ours that nobody uses.
            let old_ptr = unsafe { NonNull::new_unchecked(old as *mut u8) };
            // As much of it as `most` allows, and at least `len`.
            let npages = (old_len >> PAGE_SHIFT).min(most).max(npages);
            let len = npages << PAGE_SHIFT;
            // SAFETY: as above.
            let moved = if old_len == len {
                Ok(old_ptr)
            } else {
                unsafe {
                    self.os.remap(old_ptr, old_len, len, align, &mut |p, n| {
                        self.prepare_ends(p, n)
                    })
                }
            };
            match moved {
                Ok(p) => {
                    // The old part may be dirty; what mremap added is zero.
                    // SAFETY: ours, mapped, unused.
                    unsafe { self.prepare_reuse(c, p, old_len.min(len), zero, clean) };
                    // SAFETY: c is ours; p is a whole mapping of `len` bytes.
                    return unsafe { self.register_huge(c, p, npages, want, false) };
                }
                Err(_) => {
                    // SAFETY: still a whole mapping of ours, unused.
                    unsafe { self.os.unmap(old_ptr, old_len) };
                    // SAFETY: nothing refers to the record any more.
                    unsafe { self.drop_record(&mut self.state.lock(), c) };
                }
            }
        }
        // Aligned to the page-table level it spans (1 GiB, else 2 MiB), so
        // that no page-table page is shared with a neighbouring mapping:
        // dropping the whole block (zeroed reuse) then walks only its own
        // tables, several times faster (measurements: docs/performance.md,
        // "Page heap: the arena test, large and huge blocks"). Address
        // space only: the over-map is trimmed.
        let table = if len >= 1 << 30 { 1 << 30 } else { 2 << 20 };
        self.make_room(len);
        let p = match self.os.map(len, align.max(table)) {
            Ok(p) => p,
            // Cached mappings hold address space (RLIMIT_AS) and, under
            // strict overcommit, commit charge: give every free byte back
            // and try once more.
            Err(_) if self.release_free_memory() > 0 => self.os.map(len, align.max(table)).ok()?,
            Err(_) => return None,
        };
        if zero {
            // A zeroed block is often touched sparsely: where the system
            // backs every mapping with huge pages, each touch would clear
            // 2 MiB. The hint covers the whole mapping: it stays one.
            // SAFETY: a fresh mapping of ours.
            unsafe { self.os.hint_huge_pages(p, len, false) };
        }
        let Some(mut st) = self.lock_with_records(1) else {
            // SAFETY: just mapped, never handed out.
            unsafe { self.os.unmap(p, len) };
            return None;
        };
        let rec = self.new_record(&mut st, p.as_ptr() as usize >> PAGE_SHIFT, npages, true);
        drop(st);
        // SAFETY: rec is ours; p is a fresh mapping of `len` bytes.
        unsafe { self.register_huge(rec, p, npages, npages, true) }
    }

    /// Makes `rec` describe the in-use huge mapping `p`, asked for `want`
    /// of its pages, and records it.
    ///
    /// # Safety
    /// `rec` is a record owned by the caller, in no list; `p` is a whole
    /// mapping of `npages` pages owned by the caller.
    unsafe fn register_huge(
        &self,
        rec: *mut Span,
        p: NonNull<u8>,
        npages: usize,
        want: usize,
        fresh: bool,
    ) -> Option<NonNull<u8>> {
        let start = p.as_ptr() as usize >> PAGE_SHIFT;
        if !self.pagemap.ensure_ends(start, npages, &self.os) {
            // SAFETY: ours, unused.
            unsafe { self.os.unmap(p, npages << PAGE_SHIFT) };
            // SAFETY: nothing refers to the record.
            unsafe { self.drop_record(&mut self.state.lock(), rec) };
            return None;
        }
        let mut st = self.state.lock();
        // SAFETY: the record is ours; the lock is held.
        unsafe {
            (*rec).start = start;
            (*rec).npages = npages;
            (*rec).set_state(SpanState::InUse);
            (*rec).clean = fresh;
            (*rec).own_mapping = true;
            (*rec).asked_pages = asked(want);
            (*rec).size_class = 0;
        }
        self.pagemap.set(start, rec);
        self.pagemap.set(start + npages - 1, rec);
        st.counters.huge_in_use += npages;
        st.counters.huge_blocks += 1;
        st.counters.huge_allocs += 1;
        st.note_peak();
        drop(st);
        self.tick();
        Some(p)
    }

    /// Keeps a freed huge span in the cache; returns the mappings pushed
    /// out of it (to unmap outside the lock).
    ///
    /// # Safety
    /// `s` is an in-use huge span given up by its owner.
    pub(crate) unsafe fn cache_huge(&self, st: &mut HeapState, s: *mut Span) -> SpanList {
        // SAFETY: caller's contract.
        unsafe {
            st.counters.huge_in_use -= (*s).npages;
            st.counters.huge_blocks -= 1;
            st.huge_cache.keep(s, self.os.now_ms())
        }
    }

    /// Unmaps huge spans taken out of the cache. Must run without the lock.
    pub(crate) fn unmap_huge_list(&self, mut list: SpanList) -> usize {
        let mut bytes = 0;
        while !list.is_empty() {
            let c = list.first();
            // SAFETY: the records in the local list are ours; each is a whole
            // mapping nobody uses.
            unsafe {
                list.remove(c);
                let len = (*c).len_bytes();
                self.os
                    .unmap(NonNull::new_unchecked((*c).start_addr() as *mut u8), len);
                bytes += len;
                self.drop_record(&mut self.state.lock(), c);
            }
        }
        bytes
    }

    /// Readies the pagemap for a huge mapping about to be placed at `p`
    /// with `len` bytes (a remap's `prepare`).
    fn prepare_ends(&self, p: NonNull<u8>, len: usize) -> bool {
        self.pagemap.ensure_ends(
            p.as_ptr() as usize >> PAGE_SHIFT,
            len >> PAGE_SHIFT,
            &self.os,
        )
    }

    /// Resizes a huge block's mapping to hold `new_pages` pages (rounded
    /// up to whole OS pages): nothing to do while [`huge_keeps_pages`], a
    /// quarter more room when it grows ([`grown_pages`]).
    ///
    /// # Safety
    /// `s` is an in-use huge span owned by the caller.
    pub(crate) unsafe fn resize_huge(
        &self,
        s: *mut Span,
        new_pages: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        let new_pages = self.round_to_os_pages(new_pages)?;
        // SAFETY: caller's contract.
        let (old, old_pages, was_asked) =
            unsafe { ((*s).start_addr(), (*s).npages, (*s).asked_pages as usize) };
        if huge_keeps_pages(old_pages, was_asked, new_pages) {
            // Room enough, not much to spare (a block that grows a little
            // at a time): nothing to ask the kernel, no lock to take.
            // SAFETY: the caller's live block; `asked_pages` is its
            // owner's alone.
            unsafe { (*s).asked_pages = asked(new_pages) };
            // SAFETY: the caller's live block.
            return Some(unsafe { NonNull::new_unchecked(old as *mut u8) });
        }
        let roomy = if new_pages > old_pages {
            self.round_to_os_pages(grown_pages(old_pages, new_pages))?
        } else {
            new_pages
        };
        let remap = |pages: usize| {
            // SAFETY: a whole mapping of ours, owned by the caller; the
            // pagemap is ready wherever it lands.
            unsafe {
                self.os.remap(
                    NonNull::new_unchecked(old as *mut u8),
                    old_pages << PAGE_SHIFT,
                    pages
                        .checked_mul(PAGE_SIZE)
                        .ok_or(strata_os::OsError::InvalidRequest)?,
                    align.max(PAGE_SIZE),
                    &mut |p, n| self.prepare_ends(p, n),
                )
            }
        };
        // The room is address space, but also commit charge under strict
        // overcommit and part of RLIMIT_AS: without it if it does not fit.
        let want = new_pages;
        let (p, new_pages) = match remap(roomy) {
            Ok(p) => (p, roomy),
            Err(_) if roomy != new_pages => (remap(new_pages).ok()?, new_pages),
            Err(_) => return None,
        };
        let start = p.as_ptr() as usize >> PAGE_SHIFT;
        let mut st = self.state.lock();
        // SAFETY: the record is the caller's in-use span; the lock is held.
        unsafe {
            (*s).start = start;
            (*s).npages = new_pages;
            (*s).asked_pages = asked(want);
            (*s).clean = false;
        }
        self.pagemap.set(start, s);
        self.pagemap.set(start + new_pages - 1, s);
        st.counters.huge_in_use = st.counters.huge_in_use + new_pages - old_pages;
        st.counters.huge_remaps += 1;
        Some(p)
    }
}
