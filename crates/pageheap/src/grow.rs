//! Growth: how the heap maps more memory (from the arena, else a mapping
//! of its own) and which transparent huge-page hint the new memory gets.
//!
//! # The huge-page policy
//! - Growth for a plain request of [`HUGE_PAGE_REQUEST`] or more while the
//!   heap is under [`HUGE_PAGE_REQUESTS_UNTIL`], and all growth past the
//!   threshold ([`PageHeap::set_huge_pages_after`], by default never), asks
//!   for huge pages.
//! - Otherwise the heap's first [`SMALL_HEAP`] bytes of growth, and growth
//!   for a zeroed request, ask not to get them.
//! - Anything else is left to the system's setting.

use strata_os::Os;

use crate::heap::Prefer;
use crate::sync::Ordering;
use crate::{PageHeap, PAGE_SHIFT, PAGE_SIZE};

/// The heap grows by at least this many bytes at a time (huge-page sized, so
/// transparent huge pages can back it when the system wants).
const GROW_MIN: usize = 2 << 20;

/// Heap growth beyond this many bytes is hinted for transparent huge pages;
/// by default never ([`PageHeap::set_huge_pages_after`] changes it). Growth
/// for a plain (not zeroed) request of 4 MiB or more, in a heap under
/// 64 MiB (`HUGE_PAGE_REQUESTS_UNTIL`), is hinted whatever it says: such a
/// block is most likely written whole.
///
/// A huge page cuts page faults 512-fold and TLB misses, but its first touch
/// clears 2 MiB at once, and on a virtual machine whose host takes back the
/// guest's free memory (free page reporting, in 2 MiB blocks) that first
/// touch costs several times what 4 KiB faults cost for the same bytes:
/// a heap that grows by hundreds of MiB can pay more in the kernel than it
/// saves in TLB misses (docs/memory.md). glibc, jemalloc and mimalloc do
/// not ask for huge pages by default either.
pub const DEFAULT_HUGE_PAGES_AFTER: usize = usize::MAX;

/// Growth for a plain (not zeroed) request at least this large is hinted for
/// huge pages while the heap is small ([`HUGE_PAGE_REQUESTS_UNTIL`]): 2,000
/// cycles of an 8 MiB malloc/copy/free loop otherwise pay 2,048
/// first-touch faults.
const HUGE_PAGE_REQUEST: usize = 4 << 20;

/// Big plain requests stop asking for huge pages once the heap has grown
/// this far. A heap that keeps growing by big blocks gains little from
/// them (a block written once, front to back, misses the TLB rarely) and
/// pays for each fresh huge page: where the kernel compacts memory for a
/// hinted fault (`defrag` = `madvise`, the default) and memory is
/// fragmented, 20 blocks of 5-25 MiB replaced 500 times spent 0.92 s in
/// the kernel with the hint and 0.22 s without (docs/performance.md).
const HUGE_PAGE_REQUESTS_UNTIL: usize = 64 << 20;

/// The heap's first this many bytes of growth, and all growth for a zeroed
/// request, are hinted against huge pages (`MADV_NOHUGEPAGE`) unless the
/// threshold ([`PageHeap::set_huge_pages_after`]) asks for them. Where the system
/// backs every mapping with huge pages (`transparent_hugepage=always`, the
/// default of several distributions), the first touch of a small heap's
/// 2 MiB growth would make all of it resident (a program with 800 KiB live
/// would hold 2 MiB), and a sparse touch of a zeroed block would clear
/// 2 MiB per page touched: calloc would cost what it asked for, not what
/// it touched. Elsewhere the hint changes nothing.
const SMALL_HEAP: usize = 8 << 20;

/// How the request that makes the heap grow will likely touch its pages,
/// which decides the growth's huge-page hint.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Touch {
    /// A plain block of several MiB: most likely written whole.
    Whole,
    /// A zeroed block: often touched sparsely.
    Sparse,
    /// Anything else.
    Unknown,
}

impl Touch {
    /// What a request for `npages` pages, preferring `prefer`, says.
    pub(crate) fn of(prefer: Prefer, npages: usize) -> Touch {
        match prefer {
            Prefer::Dirty if npages >= HUGE_PAGE_REQUEST >> PAGE_SHIFT => Touch::Whole,
            Prefer::Dirty => Touch::Unknown,
            Prefer::Clean => Touch::Sparse,
        }
    }
}

impl<O: Os> PageHeap<O> {
    /// Maps at least `npages` more pages and adds them to the free lists.
    pub(crate) fn grow(&self, npages: usize, touch: Touch) -> Option<()> {
        let bytes = npages.checked_mul(PAGE_SIZE)?;
        let (len, align) = if bytes >= GROW_MIN {
            (strata_os::align_up(bytes, GROW_MIN)?, GROW_MIN)
        } else {
            (GROW_MIN, GROW_MIN)
        };
        self.make_room(len);
        let (mem, in_arena) = match self.arena.take(&self.os, len, align) {
            Some(mem) => (mem, true),
            None => match self.os.map(len, align) {
                Ok(mem) => (mem, false),
                // Cached huge mappings hold address space (RLIMIT_AS) and
                // commit charge (strict overcommit) that the heap needs
                // more: give every free byte back and try once more.
                Err(_) if self.release_free_memory() > 0 => (self.os.map(len, align).ok()?, false),
                Err(_) => return None,
            },
        };
        // Past a threshold (none by default) the heap asks for transparent
        // huge pages on all its growth; a big plain request in a heap still
        // small gets them anyway. A heap's first growth and a zeroed request
        // ask not to get them (SMALL_HEAP).
        let grown = self.grown_bytes.fetch_add(len, Ordering::Relaxed);
        let after = !self.huge_pages_after.load(Ordering::Relaxed);
        if grown >= after || (touch == Touch::Whole && grown < HUGE_PAGE_REQUESTS_UNTIL) {
            // SAFETY: a fresh mapping of ours.
            unsafe { self.os.hint_huge_pages(mem, len, true) };
        } else if grown < SMALL_HEAP || touch == Touch::Sparse {
            // SAFETY: as above.
            unsafe { self.os.hint_huge_pages(mem, len, false) };
        }
        let start = mem.as_ptr() as usize >> PAGE_SHIFT;
        let n = len >> PAGE_SHIFT;
        if !self.pagemap.ensure(start, n, &self.os) {
            // Arena memory stays committed but untouched (unmapping it would
            // leave a hole in the reservation that another mapping could
            // take); it costs no memory until touched.
            if !in_arena {
                // SAFETY: just mapped, never handed out.
                unsafe { self.os.unmap(mem, len) };
            }
            return None;
        }
        let Some(mut st) = self.lock_with_records(1) else {
            // Out of memory for a span record: the new memory stays mapped
            // (or committed in the arena) and unused; it holds no pages.
            return None;
        };
        st.counters.mapped += n;
        let s = self.new_record(&mut st, start, n, true);
        self.free_locked(&mut st, s);
        Some(())
    }
}
