//! A cache whose thread exited, kept whole for the next thread to start.
//!
//! A program that starts threads one after another (a pool that grows and
//! shrinks, a server with a thread per connection) would otherwise pay
//! for every thread twice: the exiting thread's cache goes back to the
//! central layer object by object, and the new thread's lists start empty
//! and refill from there a few objects at a time (the slow start), each
//! refill taking objects other threads left, cold in this core's cache.
//! glibc hands a new thread the arena an exited one used; strata hands it
//! the exited thread's cache: its lists, objects and all.
//!
//! # What is kept, and for how long
//! - Only a cache that holds at most a new cache's starting budget
//!   ([`crate::budget`]'s floor), so that adopting it never takes more
//!   budget than a new cache does: its lists' maxima are lowered to what
//!   they hold, so its capacity is the bytes it holds.
//! - Each list's next refill starts out apart ([`ThreadCache::refill`]),
//!   as a new list's does: a thread that frees an object another thread
//!   handed it, and then allocates, gets an object away from the other
//!   thread's (the first free of an adopted list that is full overflows
//!   and gives the list back whole, the handed object with it).
//! - The registry keeps a few such caches and gives the rest back; a
//!   kept cache that no thread took within an idle interval is flushed
//!   (see `crate::registry`).
//!
//! # Invariants
//! - A retired cache belongs to no thread, draws no budget (`max_size`
//!   is 0) and its capacity is the bytes it holds.
//! - Its objects are free objects of their classes, owned by the cache
//!   as in a live one.

use strata_os::Os;

use super::{ThreadCache, EVENT_EVERY};
use crate::budget::Budget;
use crate::{Backend, SampleState};

impl ThreadCache {
    /// Makes the cache of a thread that is exiting ready to be kept for
    /// another thread if it holds at most `keep` bytes; otherwise flushes
    /// it. Either way its budget goes back. Returns whether it is kept
    /// (a cache holding nothing is not: there is nothing to hand on).
    pub(crate) fn retire<B: Backend>(&mut self, backend: &B, keep: usize) -> bool {
        let held = self.size();
        let kept = held > 0 && held <= keep;
        if kept {
            for c in 1..self.nclasses {
                let len = self.lists[c].len;
                self.set_max(backend.os(), c, len);
                self.lists[c].low_water = len;
                let i = &mut self.info[c];
                i.overages = 0;
                i.adopted = true;
            }
            self.retired_at = backend.os().now_ms();
        } else {
            self.flush(backend);
        }
        self.leave_budget();
        kept
    }

    /// When the next idle pass is due (changes when one runs).
    pub(crate) fn next_pass_at(&self) -> u64 {
        self.next_pass_at
    }

    /// When the cache was retired (the OS layer's clock, ms).
    pub(crate) fn retired_at(&self) -> u64 {
        self.retired_at
    }

    /// Makes a retired cache the calling thread's: a fresh countdown,
    /// sampler state and budget, and the lists as they were left. If the
    /// memory beneath neared its limit since, everything goes back first.
    ///
    /// # Safety
    /// `this` is a cache [`ThreadCache::retire`] kept, which no thread
    /// uses and which is in no registry list.
    pub(crate) unsafe fn adopt<B: Backend>(
        this: *mut ThreadCache,
        backend: &B,
        budget: &'static Budget,
    ) {
        // SAFETY: caller's contract: a whole cache nobody else touches.
        let c = unsafe { &mut *this };
        c.events_left = EVENT_EVERY;
        c.armed = EVENT_EVERY;
        c.tick_left = EVENT_EVERY;
        c.sample_armed = false;
        c.sample_state = SampleState::seeded(this as u64 ^ strata_os::process_secret() as u64);
        c.slow_calls = 0;
        c.next_pass_at = 0;
        c.budget = budget;
        // The floor, which covers what a kept cache holds (see `retire`)
        // unless the settings changed since: then the lists shrink to fit.
        c.max_size = budget.join();
        let epoch = backend.pressure_epoch();
        if epoch != c.pressure_seen {
            c.pressure_seen = epoch;
            c.flush(backend);
        }
        c.fit_budget(backend, 0);
    }
}
