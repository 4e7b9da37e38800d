//! What a cache gives back, and when: the idle pass of an active thread
//! (every idle interval), the scavenge of a busy one (every
//! `SCAVENGE_EVERY` slow calls), fitting to the shared budget, and the
//! whole flush at thread exit.

use strata_os::Os;

use super::{ThreadCache, SCAVENGE_EVERY};
use crate::budget::MIN_CACHE_BYTES;
use crate::Backend;

impl ThreadCache {
    /// The periodic check of an active thread: every [`EVENT_EVERY`]
    /// allocations it reads the clock, and once per idle interval (a quarter
    /// of the decay delay) it gives back what its lists held unused since
    /// the last pass, fits the cache to its present share of the budget,
    /// gives back the budget its lists no longer use, and lets the backend
    /// do its own idle work (decay). So memory a
    /// thread stopped using goes back even when every allocation it still
    /// makes is a cache hit.
    pub(super) fn idle_check<B: Backend>(&mut self, backend: &B) {
        let epoch = backend.pressure_epoch();
        if epoch != self.pressure_seen {
            // The memory beneath neared its limit: everything goes back.
            self.pressure_seen = epoch;
            self.flush(backend);
        }
        let now = backend.os().now_ms();
        if now < self.next_pass_at {
            return;
        }
        self.next_pass_at = now.saturating_add(backend.idle_interval_ms());
        self.refresh_budget();
        self.release_idle(backend);
        self.fit_budget(backend, 0);
        // What the lists no longer use goes back to the shared budget, but
        // for a quarter more than they use now (the headroom `make_room`
        // draws) and the floor.
        let keep = (self.capacity + self.capacity / 4).max(MIN_CACHE_BYTES);
        self.shrink_budget(keep);
        backend.tick();
    }

    /// Gives back what the cache's budget holds above its fair share now.
    pub(super) fn refresh_budget(&mut self) {
        self.shrink_budget(usize::MAX);
    }

    /// Gives back what the cache's budget holds above `keep` (or above its
    /// fair share).
    fn shrink_budget(&mut self, keep: usize) {
        if !self.budget.is_null() {
            // SAFETY: the registry's budget, which outlives its caches.
            self.max_size = unsafe { (*self.budget).shrink(self.max_size, keep) };
        }
    }

    /// Whether the lists' maxima may grow by `extra` bytes within the
    /// budget, drawing more from the shared budget if they may not yet:
    /// a quarter more than needed, so that a growing cache draws now and
    /// then, not at every refill.
    pub(super) fn make_room(&mut self, extra: usize) -> bool {
        let need = self.capacity + extra;
        if need <= self.max_size {
            return true;
        }
        if !self.budget.is_null() {
            // SAFETY: the registry's budget, which outlives its caches.
            self.max_size = unsafe { (*self.budget).draw(self.max_size, need + need / 4) };
        }
        need <= self.max_size
    }

    /// Gives the cache's budget back (the cache is going away, flushed).
    pub(crate) fn leave_budget(&mut self) {
        if !self.budget.is_null() {
            // SAFETY: as above.
            unsafe { (*self.budget).leave(self.max_size) };
            self.max_size = 0;
        }
    }

    /// Gives back every object a list held unused since the last pass (its
    /// low-water mark) and lowers that list's maximum to what it kept.
    pub(super) fn release_idle<B: Backend>(&mut self, backend: &B) {
        self.trim_unused(backend, |idle, max_len, _batch| {
            (idle, max_len.saturating_sub(idle))
        });
    }

    /// For each list that left objects unused since the last pass (its
    /// low-water mark, `idle` objects), gives back the count `plan(idle,
    /// max_len, batch)` says and lowers the maximum to what it says (never
    /// below what the list still holds); then starts the next pass.
    fn trim_unused<B: Backend>(&mut self, backend: &B, plan: impl Fn(u32, u32, u32) -> (u32, u32)) {
        for c in 1..self.nclasses {
            let l = self.lists[c];
            if l.max_len == 0 {
                continue;
            }
            let idle = l.low_water.min(l.len);
            if idle > 0 {
                let (give, lowered) = plan(idle, l.max_len, self.info[c].batch);
                self.release(backend, c as u8, give);
                let kept = self.lists[c].len;
                self.set_max(backend.os(), c, lowered.max(kept));
            }
            let l = &mut self.lists[c];
            l.low_water = l.len;
        }
    }

    /// Halves list maxima (giving back what no longer fits) until the
    /// cache's capacity is within its budget: a cache made when few
    /// threads were alive shrinks to its share when many are. List `busy`
    /// (0: none) is left alone.
    pub(super) fn fit_budget<B: Backend>(&mut self, backend: &B, busy: usize) {
        while self.capacity > self.max_size {
            let before = self.capacity;
            for c in 1..self.nclasses {
                if self.capacity <= self.max_size {
                    break;
                }
                let l = self.lists[c];
                if l.max_len == 0 || c == busy {
                    continue;
                }
                let half = l.max_len / 2;
                if l.len > half {
                    self.release(backend, c as u8, l.len - half);
                }
                self.set_max(backend.os(), c, half);
            }
            if self.capacity == before {
                break;
            }
        }
    }

    /// Counts a slow-path call; every [`SCAVENGE_EVERY`] calls it gives
    /// back what the budget holds above the fair share (fitting the cache
    /// to it if it shrank as threads arrived), lets the backend do its
    /// idle work (decay) and
    /// returns true (time to scavenge, if the cache is over budget).
    /// List `busy` (a refill in progress) is left as it is.
    pub(super) fn tick<B: Backend>(&mut self, backend: &B, busy: usize) -> bool {
        self.slow_calls += 1;
        if self.slow_calls < SCAVENGE_EVERY {
            return false;
        }
        self.slow_calls = 0;
        self.refresh_budget();
        self.fit_budget(backend, busy);
        // The backend's batches do not read the clock for decay; this beat
        // does, once for 64 of them.
        backend.tick();
        true
    }

    /// Gives the top `n` objects of `class` back, in batches so whole
    /// batches can land in the transfer cache. Only the stack is read: the
    /// objects are not touched.
    pub(super) fn release<B: Backend>(&mut self, backend: &B, class: u8, mut n: u32) {
        let batch = self.info[class as usize].batch.max(1);
        while n > 0 {
            let k = n.min(batch);
            let l = &mut self.lists[class as usize];
            l.set_len(l.len - k);
            if l.low_water > l.len {
                l.low_water = l.len;
            }
            // SAFETY: `slots[len..len + k]` held free objects of this class,
            // now given away; the backend copies the pointers before this
            // stack is written again.
            unsafe {
                let objs = core::slice::from_raw_parts(l.slots.add(l.len as usize), k as usize);
                backend.free_batch(class, objs);
            }
            n -= k;
        }
    }

    /// Gives back half of what each list left unused since the last scavenge
    /// and lowers the maxima of those lists, so that busy lists may grow.
    pub(super) fn scavenge<B: Backend>(&mut self, backend: &B) {
        self.trim_unused(backend, |idle, max_len, batch| {
            let lowered = if max_len > batch {
                (max_len - batch).max(batch)
            } else {
                max_len.div_ceil(2)
            };
            (idle.div_ceil(2), lowered)
        });
    }

    /// Gives every cached object back (thread exit, or on request), past
    /// the transfer caches straight to their spans: nobody is waiting for
    /// a dying thread's batches, and parked there they would keep their
    /// spans (and the pages around them) resident.
    pub fn flush<B: Backend>(&mut self, backend: &B) {
        for c in 1..self.nclasses {
            let l = &mut self.lists[c];
            if l.len > 0 {
                let n = l.len as usize;
                l.set_len(0);
                // SAFETY: `slots[..n]` held free objects of this class, now
                // given away; the backend is done with the slice on return.
                unsafe {
                    let objs = core::slice::from_raw_parts(l.slots, n);
                    backend.free_batch_to_spans(c as u8, objs);
                }
            }
            self.lists[c].low_water = 0;
        }
    }
}
