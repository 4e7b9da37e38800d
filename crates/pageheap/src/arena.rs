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
//!   is `a & mask == base`: before the arena is made `mask` is all ones and
//!   `base` 0 (true only for address 0, which is never asked); `base` is
//!   stored before `mask`, so a reader that sees the new mask with the old
//!   base still answers false, and one that sees the old mask with the new
//!   base answers true only for `base` itself, which is in the arena.
//! - Ranges are handed out in address order by a bump pointer (`next`), each
//!   committed (`Os::commit`) before use and never given back to the arena:
//!   the heap keeps grown memory for its lifetime, as it always did.
//! - The arena is an optimisation of the check, never a limit: when it cannot
//!   be made (no support, `RLIMIT_AS`, address space) or is full, the heap
//!   grows with `Os::map` outside it, and the facade's slow path validates
//!   those pointers through the pagemap.

use core::ptr::NonNull;

use strata_os::{align_up, Os};

use crate::sync::{AtomicUsize, Ordering};

/// The arena size tried first (1 TiB of address space, of 128 TiB).
const MAX_LOG2: u32 = 40;
/// Below this the arena is not worth an address-space limit's share.
const MIN_LOG2: u32 = 30;

const UNTRIED: usize = 0;
const RESERVING: usize = 1;
const MADE: usize = 2;
const NONE: usize = 3;

pub(crate) struct Arena {
    /// `!(len - 1)` once reserved, all ones before.
    mask: AtomicUsize,
    /// The first address of the reservation, 0 before.
    base: AtomicUsize,
    /// The first address not yet handed out.
    next: AtomicUsize,
    state: AtomicUsize,
}

impl Arena {
    strata_base::const_unless_loom! {
        pub(crate) fn new() -> Self {
            Arena {
                mask: AtomicUsize::new(usize::MAX),
                base: AtomicUsize::new(0),
                next: AtomicUsize::new(0),
                state: AtomicUsize::new(UNTRIED),
            }
        }
    }

    /// Whether `addr` lies in the arena.
    #[inline(always)]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        // Two loads from one cache line, an and, a compare: about 4
        // instructions (the first version, `(a ^ word) >> k`, took 7).
        addr & self.mask.load(Ordering::Acquire) == self.base.load(Ordering::Relaxed)
    }

    /// The arena's range, if made.
    pub(crate) fn range(&self) -> Option<(usize, usize)> {
        let mask = self.mask.load(Ordering::Acquire);
        (mask != usize::MAX).then(|| (self.base.load(Ordering::Relaxed), mask.wrapping_neg()))
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
            Ok(()) => Some(p),
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
                self.next.store(base, Ordering::Relaxed);
                self.base.store(base, Ordering::Relaxed);
                self.mask.store(!(len - 1), Ordering::Release);
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
