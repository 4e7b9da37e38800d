//! The arena: one reservation of address space that the heap grows into, so
//! that "could strata have handed out this address?" is a single range test.
//!
//! A sized `dealloc` names its size class in the layout and needs no lookup,
//! so without the arena it would trust any pointer: a stack address or
//! another mapping's memory would be pushed on a free list and handed out
//! again. With every small-object span inside one aligned reservation, the
//! facade tests `contains` (a load, an xor, a shift: about 4 instructions)
//! and sends anything outside to the pagemap, which reports pointers strata
//! never handed out.
//!
//! # Invariants
//! - The reservation is `2^k` bytes aligned to `2^k`, made once (`Os::reserve`:
//!   no access, no memory, no commit charge) and never unmapped. `contains(a)`
//!   is `a | last == end`, where `last = len - 1` and `end = base | last`
//!   (the arena's last byte): before the arena is made both are 0 (true
//!   only for address 0, which is never asked; and the arena, like every
//!   field, starts as zero bytes, so a heap in a static costs no memory
//!   until used). `end` is stored before `last`, so a reader that sees the
//!   new `last` sees the new `end`, and one that sees the old `last` with
//!   the new `end` answers true only for `end` itself, which is in the
//!   arena.
//! - Ranges are handed out in address order by a bump pointer (`next`), each
//!   committed (`Os::commit`) before use and never given back to the arena:
//!   the heap keeps grown memory for its lifetime, as it always did.
//! - The arena is an optimisation of the check, never a limit: when it cannot
//!   be made (no support, `RLIMIT_AS`, address space) or is full, the heap
//!   grows with `Os::map` outside it, and the facade's slow path validates
//!   those pointers through the pagemap.
//!
//! # The small-class map
//! The arena's first bytes are a flat array with one 4-byte entry per page
//! of the arena: the pagemap's small entry (size class, place in the span)
//! for the pages the arena holds, as `class | page_offset << 8`, where
//! `page_offset` is the page's offset in bytes from its span's start (less
//! than 2^21). `free(p)` of an object in the arena finds its class and its
//! offset in the span with a subtraction, a compare and one load from that
//! array, instead of the pagemap's three dependent loads and an unpacking.
//! - The map is committed as the heap grows, from its start, never given
//!   back: `covered` is the arena length (from `base`) whose entries are
//!   committed, published after the commit. A lookup of an offset below it
//!   reads committed memory; anything else (null, outside, not yet
//!   covered) goes to the pagemap.
//! - An entry is either the pagemap's small entry for that page, in the
//!   form above, or 0: it is written with the pagemap's
//!   (`PageHeap::set_small`), only where the map is covered. A span made before its map part was committed keeps
//!   zero entries (its frees use the pagemap) until it is freed and made
//!   again.

use core::ptr::NonNull;

use strata_base::Lock;
use strata_os::{align_up, Os};

use crate::sync::memory::AtomicU32;
use crate::sync::{AtomicUsize, Ordering};
use crate::PAGE_SHIFT;

/// The arena size tried first (1 TiB of address space, of 128 TiB).
const MAX_LOG2: u32 = 40;
/// Below this the arena is not worth an address-space limit's share.
const MIN_LOG2: u32 = 30;

/// Bytes of a small-class map entry.
const ENTRY: usize = 4;

const UNTRIED: usize = 0;
const RESERVING: usize = 1;
const MADE: usize = 2;
const NONE: usize = 3;

pub(crate) struct Arena {
    /// `len - 1` once reserved, 0 before.
    last: AtomicUsize,
    /// `base | last`: the reservation's last byte once reserved, 0 before.
    end: AtomicUsize,
    /// The first address of the reservation, 0 before; the small-class map
    /// starts there.
    base: AtomicUsize,
    /// Bytes from `base` whose small-class map entries are committed.
    covered: AtomicUsize,
    /// Bytes of the small-class map committed (from `base`).
    map_committed: Lock<usize>,
    /// The first address not yet handed out.
    next: AtomicUsize,
    state: AtomicUsize,
}

impl Arena {
    strata_base::const_unless_loom! {
        pub(crate) fn new() -> Self {
            Arena {
                last: AtomicUsize::new(0),
                end: AtomicUsize::new(0),
                base: AtomicUsize::new(0),
                covered: AtomicUsize::new(0),
                map_committed: Lock::new(0),
                next: AtomicUsize::new(0),
                state: AtomicUsize::new(UNTRIED),
            }
        }
    }

    /// Whether `addr` lies in the arena.
    #[inline(always)]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        // Two loads from one cache line, an or, a compare: about 4
        // instructions (measurements: docs/performance.md, "Page heap: the
        // arena test, large and huge blocks").
        addr | self.last.load(Ordering::Acquire) == self.end.load(Ordering::Relaxed)
    }

    /// The small-class map's answer for `addr`: `(class, offset of its
    /// page from its span's start)`, with class 0 for a page in no
    /// small-object span, or `None` when the map does not cover `addr`
    /// (null, outside the arena, not covered yet). A subtraction, a compare
    /// and a load.
    #[inline(always)]
    pub(crate) fn small_entry(&self, addr: usize) -> Option<(u8, usize)> {
        // `covered` first: once it is non-zero, `base` is the arena's.
        let covered = self.covered.load(Ordering::Acquire);
        let base = self.base.load(Ordering::Relaxed);
        let off = addr.wrapping_sub(base);
        if off >= covered {
            return None;
        }
        // SAFETY: the entry of an offset below `covered` is committed map
        // memory (module docs), read as an atomic like the pagemap's.
        let e =
            unsafe { (*(base as *const AtomicU32).add(off >> PAGE_SHIFT)).load(Ordering::Relaxed) };
        Some((e as u8, (e >> 8) as usize))
    }

    /// The map entry of `page`, if the map covers it (for writing).
    fn entry(&self, page: usize) -> Option<&AtomicU32> {
        let covered = self.covered.load(Ordering::Acquire);
        let base = self.base.load(Ordering::Relaxed);
        let off = (page << PAGE_SHIFT).wrapping_sub(base);
        if off >= covered {
            return None;
        }
        // SAFETY: as in `small_entry`; the map is never unmapped.
        Some(unsafe { &*(base as *const AtomicU32).add(off >> PAGE_SHIFT) })
    }

    /// Records `class` for `page`, the `index`-th page of its span (both 0
    /// outside small spans), where the map covers it.
    pub(crate) fn set_small(&self, page: usize, class: u8, index: usize) {
        if let Some(e) = self.entry(page) {
            let offset = (index << PAGE_SHIFT) as u32;
            debug_assert!(offset < 1 << 24, "a small span of 2^11 pages or more");
            e.store(class as u32 | offset << 8, Ordering::Release);
        }
    }

    /// Commits the map for the arena's first `upto` bytes, if not done.
    /// A refusal leaves the map as it was: those pages are looked up in the
    /// pagemap.
    fn cover<O: Os>(&self, os: &O, base: usize, upto: usize) {
        let Some(need) = align_up((upto >> PAGE_SHIFT) * ENTRY, os.page_size()) else {
            return;
        };
        let mut done = self.map_committed.lock();
        if *done >= need {
            return;
        }
        // SAFETY: `[base + done, base + need)` is the map's next part, in
        // the reservation below the heap's first range, page-aligned and
        // never committed (`done` only grows, under this lock).
        let p = unsafe { NonNull::new_unchecked((base + *done) as *mut u8) };
        // SAFETY: as above.
        if unsafe { os.commit(p, need - *done) }.is_err() {
            return;
        }
        *done = need;
        self.covered
            .store((need / ENTRY) << PAGE_SHIFT, Ordering::Release);
    }

    /// The lock of the map's growth, for the `fork` handlers (taken before
    /// the heap's: growth runs outside it).
    pub(crate) fn map_lock(&self) -> &Lock<usize> {
        &self.map_committed
    }

    /// The arena's range, if made.
    pub(crate) fn range(&self) -> Option<(usize, usize)> {
        let last = self.last.load(Ordering::Acquire);
        (last != 0).then(|| (self.base.load(Ordering::Relaxed), last + 1))
    }

    /// Commits `len` bytes aligned to `align` from the arena, making it on
    /// first use. `None` when there is no arena or no room: grow elsewhere.
    pub(crate) fn take<O: Os>(&self, os: &O, len: usize, align: usize) -> Option<NonNull<u8>> {
        let (base, size) = self.range().or_else(|| self.make(os))?;
        let end = base + size;
        let mut cur = self.next.load(Ordering::Relaxed);
        let start = loop {
            let start = align_up(cur, align)?;
            if start.checked_add(len)? > end {
                return None;
            }
            match self.next.compare_exchange_weak(
                cur,
                start + len,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break start,
                Err(now) => cur = now,
            }
        };
        // SAFETY: inside the arena, never reserved for anyone else (the bump
        // pointer moved past it).
        let p = unsafe { NonNull::new_unchecked(start as *mut u8) };
        // SAFETY: a page-aligned (align >= OS page), uncommitted part of our
        // reservation.
        match unsafe { os.commit(p, len) } {
            Ok(()) => {
                self.cover(os, base, start + len - base);
                Some(p)
            }
            Err(_) => {
                // Give the range back if nobody bumped past it since; else
                // it stays reserved and unused (no memory, no charge).
                let _ = self.next.compare_exchange(
                    start + len,
                    cur,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                None
            }
        }
    }

    #[cold]
    fn make<O: Os>(&self, os: &O) -> Option<(usize, usize)> {
        if self
            .state
            .compare_exchange(UNTRIED, RESERVING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Made meanwhile, being made by another thread (which grows
            // outside the arena this once), or impossible.
            return self.range();
        }
        let mut log2 = max_log2();
        while log2 >= MIN_LOG2 {
            let len = 1usize << log2;
            if let Ok(p) = os.reserve(len, len) {
                let base = p.as_ptr() as usize;
                // The heap grows after the small-class map.
                let map = align_up((len >> PAGE_SHIFT) * ENTRY, os.page_size())?;
                self.next.store(base + map, Ordering::Relaxed);
                self.base.store(base, Ordering::Relaxed);
                self.end.store(base | (len - 1), Ordering::Relaxed);
                self.last.store(len - 1, Ordering::Release);
                self.state.store(MADE, Ordering::Release);
                return Some((base, len));
            }
            log2 -= 2;
        }
        self.state.store(NONE, Ordering::Release);
        None
    }
}

/// The largest arena to try: 1 TiB, or an eighth of an address-space limit
/// (`ulimit -v`) so that the reservation never crowds out the program.
fn max_log2() -> u32 {
    match strata_os::address_space_limit() {
        Some(limit) => {
            let eighth = (limit / 8).max(1);
            (usize::BITS - 1 - eighth.leading_zeros()).min(MAX_LOG2)
        }
        None => MAX_LOG2,
    }
}
