//! What the heap can say about itself: its accounting ([`PageHeapStats`])
//! and a check of its structural invariants, for tests.

use strata_os::Os;

use crate::heap::PageHeapStats;
use crate::span::{Span, SpanState};
use crate::{PageHeap, PAGE_SHIFT};

impl<O: Os> PageHeap<O> {
    /// A snapshot of the heap's accounting.
    pub fn stats(&self) -> PageHeapStats {
        let st = self.state.lock();
        let c = &st.counters;
        // Parked large blocks are in use to the heap, free to the program
        // (a snapshot: they park and leave outside the lock).
        let kept = self.kept.pages().min(c.in_use);
        PageHeapStats {
            mapped_bytes: (c.mapped + c.huge_in_use + st.huge_cache.pages()) << PAGE_SHIFT,
            in_use_bytes: (c.in_use - kept + c.huge_in_use) << PAGE_SHIFT,
            free_dirty_bytes: (st.dirty.pages + st.releasing + kept) << PAGE_SHIFT,
            free_clean_bytes: st.clean.pages << PAGE_SHIFT,
            free_spans: st.clean.spans + st.dirty.spans,
            large_allocs: c.large_allocs + self.kept.taken(),
            small_spans: c.small_spans,
            metadata_bytes: self.records.mapped_bytes(),
            huge_in_use_bytes: c.huge_in_use << PAGE_SHIFT,
            huge_blocks: c.huge_blocks,
            huge_cached_bytes: st.huge_cache.pages() << PAGE_SHIFT,
            huge_allocs: c.huge_allocs,
            huge_remaps: c.huge_remaps,
            large_moves: c.large_moves,
            decay_releases: c.decay_releases,
            resident_bytes: st.resident() << PAGE_SHIFT,
            peak_resident_bytes: c.peak_resident.max(st.resident()) << PAGE_SHIFT,
            decay_ms: self.decay_ms(),
        }
    }

    /// Checks the heap's structural invariants: every free span is filed under
    /// the right set, its ends are in the pagemap, no two free spans touch,
    /// and the page counts add up. For tests; takes the lock.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let st = self.state.lock();
        let mut err = None;
        let (mut pages, mut spans) = (0, 0);
        let per = self.os_page_pages();
        let mut check = |s: *mut Span, clean: bool| {
            // SAFETY: members of the free lists are valid records.
            let span = unsafe { &*s };
            pages += span.npages;
            spans += 1;
            if span.start % per != 0 || span.npages % per != 0 {
                err = Some("free span that is not whole OS pages");
            }
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
                // A missed merge: a free neighbour `mergeable` would take
                // (same kind, neither a huge mapping). Dirty neighbours are
                // merged within half the decay delay in force when they were
                // freed, which may since have changed; only spans freed in the
                // same millisecond are sure to have merged under any delay.
                // SAFETY: records are never unmapped; mergeable checks them.
                let touching =
                    unsafe { self.mergeable(o, n, s) && (clean || (*o).freed_at == span.freed_at) };
                if touching {
                    err = Some("two free spans that should have merged are adjacent");
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
        if spans != st.clean.spans + st.dirty.spans {
            return Err("free span count does not match the lists");
        }
        if pages + st.counters.in_use + st.releasing != st.counters.mapped {
            return Err("pages in use + free != pages mapped");
        }
        if st.counters.large_in_use > st.counters.in_use {
            return Err("more pages in large blocks than in use");
        }
        Ok(())
    }
}
