//! Giving free memory back to the OS: on a timer (decay), or all at once.
//!
//! A dirty free span (pages the program used and freed) is kept as it is for
//! the decay delay (`STRATA_DECAY_MS`, 1 s by default), so a program that
//! frees and re-allocates the same memory in a loop reuses resident pages
//! and never page-faults. A span that stays free for longer is released
//! with `MADV_DONTNEED` and becomes clean (zero, not resident); a cached huge
//! mapping is unmapped. This is the hysteresis between jemalloc's fault
//! storms (release on every free) and never shrinking at all.
//!
//! Decay runs amortised on the ordinary paths: [`PageHeap::tick`] is called
//! by large allocations and frees, by the central layer on every object it
//! moves alone, and by each thread cache every 64 slow-path calls and at
//! its idle passes; it reads a coarse clock (a vDSO read) and does work only when a
//! pass is due, at most every quarter of the delay. No background thread is
//! needed; the owner may run one that calls `tick`.
//!
//! Releases happen outside the heap lock: spans are taken out of the free
//! lists (state `Releasing`), advised, and merged back as clean spans.
//!
//! Free dirty memory past a cap goes back at the free itself
//! ([`PageHeap::trim_dirty`]), so that a burst the program freed returns
//! even if it never calls in again. A program whose memory in use swings
//! (phases of threads that build up tens of MiB and free it all) takes the
//! trimmed memory back soon after, page-faulting it in again each time. So
//! the heap learns the swing ([`Swing`]): clean pages taken where dirty
//! ones would have done (a small-object span, or a large block that need
//! not be zero; a zeroed block prefers clean pages by choice) while trimmed
//! pages are outstanding count as taken back, and
//! as much free dirty memory as was taken back is allowed besides the cap,
//! up to twice the set maximum. A decay pass that finds nothing taken back
//! since the previous one halves what was learned, so a program that stops
//! swinging returns to the plain cap. A burst freed
//! once is never taken back and keeps the plain cap.

use core::ptr::NonNull;

use strata_os::Os;

use crate::span::{Span, SpanState};
use crate::sync::{AtomicU64, Ordering};
use crate::PageHeap;

/// What trims gave back and what of it the program took again.
/// Invariant: both fields stay within the bound their callers pass
/// ([`PageHeap::swing_bound`]).
#[derive(Default)]
pub(crate) struct Swing {
    /// Pages trims released that no clean take has matched yet.
    trimmed: usize,
    /// Pages of free dirty memory allowed besides the cap.
    pub(crate) allowance: usize,
    /// Whether trimmed pages were taken back since the last decay pass.
    lately: bool,
}

impl Swing {
    pub(crate) const fn new() -> Self {
        Swing {
            trimmed: 0,
            allowance: 0,
            lately: false,
        }
    }

    /// A trim released `pages`.
    fn trimmed(&mut self, pages: usize, bound: usize) {
        self.trimmed = self.trimmed.saturating_add(pages).min(bound);
    }

    /// A span took `pages` clean pages where dirty ones would have done:
    /// as many trimmed pages as that covers were taken back.
    fn took_clean(&mut self, pages: usize, bound: usize) {
        let back = pages.min(self.trimmed);
        self.trimmed -= back;
        self.allowance = self.allowance.saturating_add(back).min(bound);
        self.lately |= back > 0;
    }

    /// A decay pass: what was learned halves, unless the program took
    /// trimmed pages back since the previous pass (it still swings).
    fn decay(&mut self) {
        if !core::mem::take(&mut self.lately) {
            self.trimmed /= 2;
            self.allowance /= 2;
        }
    }
}

/// Default decay delay.
pub const DEFAULT_DECAY_MS: u64 = 1000;

/// Spans released per pass under one lock hold.
const RELEASE_BATCH: usize = 32;

/// When the next decay pass is due, and the delay. Shared by every thread
/// that ticks; a pass is claimed with a compare-exchange on `next_at`, so
/// exactly one of the threads that find it due runs it.
pub(crate) struct DecayClock {
    /// The delay xor [`DEFAULT_DECAY_MS`]: zero by default, so that a heap
    /// in a static is all zero bytes (`.bss`, no memory until written).
    decay_ms: AtomicU64,
    next_at: AtomicU64,
}

impl DecayClock {
    strata_base::const_unless_loom! {
        pub(crate) fn new() -> Self {
            DecayClock { decay_ms: AtomicU64::new(0), next_at: AtomicU64::new(0) }
        }
    }

    /// Sets the decay delay; the next tick runs a pass.
    #[inline]
    pub(crate) fn set_delay(&self, ms: u64) {
        self.decay_ms
            .store(ms ^ DEFAULT_DECAY_MS, Ordering::Relaxed);
        self.next_at.store(0, Ordering::Relaxed);
    }

    /// The decay delay in force.
    #[inline]
    pub(crate) fn delay(&self) -> u64 {
        self.decay_ms.load(Ordering::Relaxed) ^ DEFAULT_DECAY_MS
    }

    /// The deadline of the pass due at `now`, if one is due (one load).
    #[inline(always)]
    pub(crate) fn due(&self, now: u64) -> Option<u64> {
        let next = self.next_at.load(Ordering::Relaxed);
        if now >= next {
            Some(next)
        } else {
            None
        }
    }

    /// Claims the pass due since deadline `next` (from [`DecayClock::due`]) at
    /// `now`, setting the next deadline a quarter of the delay (1 ms to 1 s)
    /// ahead. Returns the delay in force if this caller won the pass; `None`
    /// if another thread claimed it first.
    #[inline(always)]
    pub(crate) fn claim(&self, now: u64, next: u64) -> Option<u64> {
        let decay = self.delay();
        let interval = (decay / 4).clamp(1, 1000);
        self.next_at
            .compare_exchange(
                next,
                now.saturating_add(interval),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| decay)
    }
}

impl<O: Os> PageHeap<O> {
    /// Sets how long a free dirty span stays resident before it goes back to
    /// the OS. 0 releases at the next tick; `u64::MAX` never decays.
    pub fn set_decay_ms(&self, ms: u64) {
        self.decay.set_delay(ms);
    }

    /// The decay delay in force.
    pub fn decay_ms(&self) -> u64 {
        self.decay.delay()
    }

    /// Runs a decay pass if one is due, and returns whether this call ran
    /// one (the layers above run their own idle work on the same beat).
    /// Cheap otherwise (a clock read and a load); safe to call from any
    /// thread at any time outside the heap lock.
    #[inline]
    pub fn tick(&self) -> bool {
        let now = self.os.now_ms();
        match self.decay.due(now) {
            Some(next) => self.tick_slow(now, next),
            None => false,
        }
    }

    #[cold]
    fn tick_slow(&self, now: u64, next: u64) -> bool {
        let Some(decay) = self.decay.claim(now, next) else {
            return false; // another thread runs this pass
        };
        self.limit_pass();
        self.kept.forget_contention();
        self.state.lock().counters.swing.decay();
        if let Some(cutoff) = now.checked_sub(decay) {
            let released = self.release_idle_since(cutoff);
            if released > 0 {
                self.state.lock().counters.decay_releases += 1;
            }
        }
        true
    }

    /// Gives every free page back to the OS now: dirty spans are released
    /// with `MADV_DONTNEED`, cached huge mappings unmapped. Returns bytes.
    pub fn release_free_memory(&self) -> usize {
        self.release_idle_since(u64::MAX)
    }

    /// Sets the most free dirty memory the heap keeps resident whatever
    /// the decay delay says (`STRATA_DIRTY_MAX`); the heap keeps at least a
    /// quarter of the memory in use in spans besides, and as much as its
    /// large blocks in use hold. `usize::MAX`: no limit, decay alone decides.
    pub fn set_dirty_max(&self, bytes: usize) {
        self.dirty_max.store(
            (bytes >> crate::PAGE_SHIFT) ^ crate::heap::DEFAULT_DIRTY_MAX_PAGES,
            crate::sync::Ordering::Relaxed,
        );
    }

    /// The free dirty pages kept at most: the set maximum, a quarter of the
    /// pages in use, or the pages in large blocks in use, whichever is most.
    ///
    /// A program that replaces large blocks (buffers of several MiB freed
    /// and allocated again at other sizes) reuses what it freed: releasing
    /// that memory at the free and faulting it in again at the next
    /// allocation costs more in the kernel than glibc, whose freed chunks
    /// stay in its heap. Keeping free memory up to the large blocks' own
    /// size bounds the heap at twice their live size until decay. Small
    /// spans do not count: their free memory comes from thread caches
    /// draining (idle threads, a freed burst of small objects), which is
    /// not about to be reused at the same rate.
    ///
    /// Besides that, the trimmed memory the program took back lately
    /// ([`Swing`]).
    #[inline]
    pub(crate) fn dirty_cap_pages(&self, c: &crate::heap::Counters) -> usize {
        self.dirty_max_pages()
            .max(c.in_use / 4)
            .max(c.large_in_use)
            .saturating_add(c.swing.allowance)
    }

    /// Whether the free dirty memory is over its cap (under the lock).
    #[inline]
    pub(crate) fn over_dirty_cap(&self, st: &crate::heap::HeapState) -> bool {
        st.dirty.pages > self.dirty_cap_pages(&st.counters)
    }

    /// The set maximum of free dirty memory, in pages.
    #[inline]
    fn dirty_max_pages(&self) -> usize {
        self.dirty_max.load(crate::sync::Ordering::Relaxed) ^ crate::heap::DEFAULT_DIRTY_MAX_PAGES
    }

    /// The most a [`Swing`] learns: twice the set maximum.
    #[inline]
    fn swing_bound(&self) -> usize {
        self.dirty_max_pages().saturating_mul(2)
    }

    /// A span that could have been dirty (a small-object span, or a large
    /// block that need not be zero) took `npages` clean pages (under the
    /// lock).
    #[inline]
    pub(crate) fn note_taken_back(&self, st: &mut crate::heap::HeapState, npages: usize) {
        st.counters.swing.took_clean(npages, self.swing_bound());
    }

    /// Releases free dirty spans, any age, until half the cap is left:
    /// called after a free that took the heap over its cap, so that memory
    /// a program freed goes back even if it never calls in again (decay
    /// needs a later call to run). Huge mappings are left to decay.
    #[cold]
    pub(crate) fn trim_dirty(&self) {
        // Blocks parked for reuse are part of what was freed.
        self.unpark_since(u64::MAX);
        let keep = {
            let st = self.state.lock();
            self.dirty_cap_pages(&st.counters) / 2
        };
        let released = self.release_dirty(u64::MAX, keep);
        let bound = self.swing_bound();
        (self.state.lock().counters.swing).trimmed(released >> crate::PAGE_SHIFT, bound);
    }

    /// Releases dirty spans and cached huge mappings freed at or before
    /// `cutoff` (heap clock, ms). Returns the bytes given back.
    fn release_idle_since(&self, cutoff: u64) -> usize {
        // Blocks parked since before the cutoff join the free spans first.
        self.unpark_since(cutoff);
        // Cached huge mappings first: unmapping them returns the most.
        let huge = self.state.lock().huge_cache.take_idle(cutoff);
        self.unmap_huge_list(huge) + self.release_dirty(cutoff, 0)
    }

    /// Releases dirty spans freed at or before `cutoff` (heap clock, ms)
    /// while more than `keep` dirty pages are free. Returns the bytes given
    /// back.
    fn release_dirty(&self, cutoff: u64, keep: usize) -> usize {
        let mut released = 0;
        loop {
            let mut batch = [core::ptr::null_mut::<Span>(); RELEASE_BATCH];
            let mut n = 0;
            {
                let mut st = self.state.lock();
                let mut over = st.dirty.pages.saturating_sub(keep);
                if over > 0 {
                    st.dirty.for_each_longest_first(|s| {
                        // SAFETY: members of the free lists are valid records.
                        if unsafe { (*s).freed_at } <= cutoff {
                            batch[n] = s;
                            n += 1;
                            // SAFETY: as above.
                            over = over.saturating_sub(unsafe { (*s).npages });
                        }
                        n < RELEASE_BATCH && over > 0
                    });
                }
                for &s in &batch[..n] {
                    // SAFETY: s is a dirty free span; taking it out while the
                    // madvise runs keeps others from allocating or merging it.
                    unsafe {
                        st.dirty.remove(s);
                        (*s).set_state(SpanState::Releasing);
                        st.releasing += (*s).npages;
                    }
                }
            }
            if n == 0 {
                break;
            }
            let mut ok = [false; RELEASE_BATCH];
            for (i, &s) in batch[..n].iter().enumerate() {
                // SAFETY: the span is ours while Releasing; its pages are
                // mapped and unused, and whole OS pages (spans always are).
                unsafe {
                    let (addr, len) = ((*s).start_addr(), (*s).len_bytes());
                    ok[i] = self
                        .os
                        .release(NonNull::new_unchecked(addr as *mut u8), len)
                        .is_ok();
                    if ok[i] {
                        released += len;
                    }
                }
            }
            let mut st = self.state.lock();
            for (i, &s) in batch[..n].iter().enumerate() {
                // SAFETY: still ours.
                unsafe {
                    st.releasing -= (*s).npages;
                    (*s).clean = ok[i];
                }
                self.free_locked(&mut st, s);
            }
            if ok[..n].iter().any(|&o| !o) {
                break; // the kernel refuses; do not spin on it
            }
        }
        released
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_due_at_once_then_every_quarter_delay() {
        let clock = DecayClock::new();
        clock.set_delay(400);
        let next = clock.due(1000).expect("the first pass is due at once");
        assert_eq!(clock.claim(1000, next), Some(400));
        // Claimed: the next pass is a quarter of the delay away.
        assert_eq!(clock.due(1099), None);
        let next = clock.due(1100).expect("due after 100 ms");
        // Only one of the threads that found it due runs it.
        assert_eq!(clock.claim(1100, next), Some(400));
        assert_eq!(clock.claim(1100, next), None);
    }

    #[test]
    fn the_interval_stays_between_1_ms_and_1_s() {
        let clock = DecayClock::new();
        clock.set_delay(0);
        let next = clock.due(5).unwrap();
        clock.claim(5, next).unwrap();
        assert!(
            clock.due(6).is_some(),
            "a zero delay passes every millisecond"
        );
        clock.set_delay(u64::MAX);
        let next = clock.due(10).expect("a new delay makes a pass due");
        clock.claim(10, next).unwrap();
        assert_eq!(clock.due(1009), None);
        assert!(clock.due(1010).is_some(), "never more than a second apart");
    }
}
