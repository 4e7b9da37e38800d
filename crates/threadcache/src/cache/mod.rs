//! One thread's cache: a free list per size class.
//!
//! # The fast path
//! `alloc` pops the top of its class's stack; `free` pushes onto it. No lock,
//! no atomic read-modify-write, no byte accounting: the cache belongs to one
//! thread, lists are indexed by a `u8` class (256 of them, so no bounds
//! check), and what the fast path touches is 24 bytes per class.
//!
//! # Stacks of pointers, not linked lists
//! Each class's free objects are kept as an array of pointers (`slots`, in
//! an OS mapping of the cache's own), not linked through the objects. A pop
//! reads the array, not the object, so a run of allocations of objects that
//! went cold since they were freed does not wait for one cache miss after
//! another (with links, each pop reads the next link out of the object it
//! hands out); the program's own first touches of those objects then miss in
//! parallel. Batches move to and from the central layer as arrays of
//! pointers too (copied from and onto the stack), so an object's cache lines
//! move between cores only when the program touches it (measurements:
//! docs/performance.md, "Thread-cache stacks").
//!
//! # Adapting
//! - A list that runs dry fetches a batch from the central layer and raises
//!   its maximum (by one up to the batch size, then by a batch), so a thread
//!   that allocates a lot from one class moves whole batches, and a thread
//!   that allocates little holds little.
//! - A list that grows past its maximum gives a batch back (one still in
//!   its slow start, below a batch, gives back what is over half its
//!   maximum, so its next allocation does not refill it at once); a list
//!   that does so repeatedly has its maximum lowered.
//! - The byte budget bounds the sum of `max_len * object_size` (only changed
//!   on slow paths). It starts at a floor and is drawn from the budget
//!   shared by all caches as lists grow past it (see [`crate::budget`]);
//!   when none is left to draw, a list that wants to grow first makes the
//!   other lists give back half of what they left unused since the last
//!   time (the low-water mark) and lowers their maxima.
//!
//! # Invariants
//! - `slots[..len]` are the free objects held (the top is `slots[len - 1]`),
//!   `len <= cap` and `max_len + SLACK <= cap` (a list starts on a small
//!   stack packed with the other classes', moves to a middle one, also
//!   packed, when its maximum outgrows it, and to its own past that; it
//!   never moves back, so `mids_used`, the middle stacks handed out, stays
//!   below the number of classes);
//!   after a free returns, `len <= max_len + 1`
//!   (one over only when that free's overflow lowered the maximum by a
//!   batch: `SLACK`), so the bytes held exceed `capacity`, the sum of
//!   `max_len * object_size`, by at most an object a list, and `capacity`
//!   never exceeds the budget except for the one object a list must be
//!   allowed to hold.
//! - A list's maximum is not a multiple of its batch: it grows by batches
//!   once past one, but an idle pass lowers it by what sat unused, fitting
//!   the budget halves it and `MAX_LEN` caps it. What a list gives back is
//!   cut into batches (at most a batch a call to the backend) instead.
//! - Only the owning thread touches a cache, except at thread exit (its
//!   destructor) and in the registry's statistics, which read the lists'
//!   lengths only ([`ThreadCache::held_bytes`]): the owner stores a length
//!   as a relaxed atomic (a plain store on x86-64, as before), so any
//!   thread may read every cache as it is, not as it was last reported.

mod holdings;
mod retire;
mod stacks;
mod trim;

use core::mem::size_of;
use core::ptr;

use crate::sync::statics::{AtomicU32, Ordering};

use crate::budget::Budget;
use crate::{Backend, SampleState, Sampler};

/// Size classes a cache has room for: every value of a `u8`, so indexing by
/// class needs no bounds check. Classes the backend does not have stay empty
/// with a maximum of zero, and their refill returns null.
pub const MAX_CLASSES: usize = 256;

/// Longest a list may grow.
const MAX_LEN: u32 = 8192;

/// What a slow-path push may put past a list's maximum before `overflow`
/// gives a batch back: a stack has this much room above `max_len`. A free
/// past the maximum pushes one object and `overflow` then gives back at
/// least the excess, so a list is at most two over its maximum (after an
/// overflow lowers the maximum by a batch, it may hold one more than the
/// new maximum); `push` releases a batch first if a stack is ever full.
/// Small, because every packed stack pays it.
const SLACK: u32 = 4;

/// Room in a class's own stack: `MAX_LEN` plus the slack.
const SLOTS_PER_CLASS: u32 = MAX_LEN + SLACK;

/// Room in a class's first stack, one of many packed side by side (1 KiB
/// and a little more each, nearly four to a page): a list whose maximum
/// stays at `SMALL_STACK - SLACK` or below (most of them, in most threads)
/// shares a page instead of touching one of its own, which keeps a thread's
/// stack pages near its working set. A list that grows past it moves to a
/// middle stack, once. 128 entries held the maxima of 64-128 that busy
/// lists drift to between refills and overflows; 132 holds 128 itself
/// with its slack, four batches of the small classes (a maximum grows by
/// batches of 32 there): a small program's lists that peaked at 128 no
/// longer move (measurements: docs/performance.md, "Thread-cache stacks").
const SMALL_STACK: u32 = 132;

/// Room in a middle stack, also packed (2 KiB each, two to a page), where
/// a list moves when its maximum outgrows its first stack: a small
/// program's lists that grow past 128 mostly stay under 252, and each took
/// a page of its own stack for a few hundred pointers. Middle stacks are
/// handed out in the order lists need them, so the few a thread uses share
/// pages (measurements: docs/performance.md, "Thread-cache stacks").
const MID_STACK: u32 = 256;

/// Slow-path calls between two walks over every list (scavenge, statistics).
const SCAVENGE_EVERY: u32 = 64;

/// Allocations served from a cache between two reads of the clock: about
/// a second apart for a program that allocates once a millisecond, a few
/// microseconds apart (one coarse clock read, well under 1% of the time)
/// for one that allocates as fast as it can.
pub const EVENT_EVERY: u32 = 1024;

/// Overflows tolerated before a list's maximum is lowered.
const MAX_OVERAGES: u32 = 3;

/// The least a list takes when it starts (see [`ThreadCache::refill`]):
/// two cache lines' worth of objects, so that the object handed out, the
/// last of them, is a cache line or more away from what the next thread to
/// start takes (at most a batch).
const START_BYTES: u32 = 128;

/// Marks the branch of a pop that found its list empty or at a new
/// low-water mark as the unlikely one, so the fast path falls through.
#[cold]
#[inline(always)]
fn below_low_water() {}

/// What the fast path touches: 24 bytes per class.
#[repr(C)]
#[derive(Clone, Copy)]
struct FreeList {
    /// `cap` entries in the cache's mapping (the packed first stack, or the
    /// class's own); null in a sentinel (whose `len` and `max_len` are
    /// zero, so it is never indexed).
    slots: *mut *mut u8,
    /// A full 32-bit field although it never exceeds `MAX_LEN + 1`: a free
    /// stores it and the next allocation loads it, and a narrower store
    /// followed by the wider load the compiler emits for a `u16` cannot be
    /// forwarded, which stalls a dependent malloc/free pair (measurements:
    /// docs/performance.md, "Thread-cache stacks").
    len: u32,
    max_len: u32,
    low_water: u32,
    /// Entries `slots` has room for: `SMALL_STACK`, `MID_STACK` or
    /// `SLOTS_PER_CLASS`.
    cap: u32,
}

/// What only the slow paths touch.
#[derive(Clone, Copy)]
struct ListInfo {
    object_size: u32,
    batch: u32,
    overages: u32,
    /// The list came with a cache a thread that exited left (see
    /// [`retire`]) and has not been refilled since: its next refill
    /// starts out apart, as a new list's does.
    adopted: bool,
}

impl FreeList {
    /// Sets the list's length, as a relaxed atomic store: the owner's
    /// stores are the only writes, and [`ThreadCache::held_bytes`] reads
    /// them from other threads.
    ///
    /// # Safety
    /// `l` is a list of the calling thread's cache (not a sentinel's).
    #[inline(always)]
    unsafe fn store_len(l: *mut FreeList, len: u32) {
        // SAFETY: `len` is an aligned u32 in a live cache; every write to it
        // is this atomic store, by the owning thread.
        unsafe { AtomicU32::from_ptr(ptr::addr_of_mut!((*l).len)) }.store(len, Ordering::Relaxed);
    }

    /// [`FreeList::store_len`] on a list borrowed from the cache.
    #[inline(always)]
    fn set_len(&mut self, len: u32) {
        // SAFETY: a list of a cache the caller holds mutably: its own.
        unsafe { Self::store_len(self, len) }
    }

    const EMPTY: FreeList = FreeList {
        slots: ptr::null_mut(),
        len: 0,
        max_len: 0,
        low_water: 0,
        cap: 0,
    };
}

/// A thread's cache of free objects.
///
/// The byte budget is kept through the lists' maxima: `capacity` is the sum
/// of `max_len * object_size`, it only changes on slow paths, and a list
/// holds at most one object more than its maximum once a free returns. So
/// the fast paths do no byte accounting at all.
#[repr(C)]
pub struct ThreadCache {
    /// At offset 0, so that a list's address is the cache's plus its index
    /// times 24: one `lea`, no add.
    lists: [FreeList; MAX_CLASSES],
    /// Allocations served from the lists until the next idle check or
    /// sample offer ([`ThreadCache::count_event`]); 0 in a sentinel, which
    /// is never counted.
    events_left: u32,
    /// What the countdown was last set to (see [`ThreadCache::on_event`]).
    armed: u32,
    /// Allocations until the next idle check: at least `armed`.
    tick_left: u32,
    /// Whether the allocation at which the countdown expires is offered to
    /// the owner's sampler.
    sample_armed: bool,
    /// The sampler's own state for this thread.
    sample_state: SampleState,
    info: [ListInfo; MAX_CLASSES],
    capacity: usize,
    max_size: usize,
    /// The mapping holding every list's stack (null in a sentinel). Never
    /// unmapped: it stays with the record for the next cache, so a program
    /// that creates and ends threads does not map and unmap each time.
    /// Reserved address space where the OS allows: the packed first and
    /// middle stacks are committed at once, a class's own stack when its
    /// list first moves there, so strict overcommit and `RLIMIT_AS` charge
    /// a thread for the stacks it uses (about 300 KiB), not for all of
    /// them (6 MiB).
    slots_map: *mut u8,
    /// Bytes between two classes' own stacks: whole OS pages, so each
    /// commits alone.
    own_stride: usize,
    /// Own stacks committed, a bit per class; all ones when the mapping
    /// was made readable and writable whole (an OS without reservations).
    committed: [u64; MAX_CLASSES / 64],
    /// Classes in use: 1..nclasses (the rest stay empty).
    nclasses: usize,
    /// Slow-path calls since the last scavenge / statistics update.
    slow_calls: u32,
    /// Middle stacks handed out, in the order lists outgrew their first
    /// stacks (see `stacks.rs`).
    mids_used: u32,
    /// When the next idle pass is due (the OS layer's clock, ms).
    next_pass_at: u64,
    /// The backend's pressure epoch when this cache last looked.
    pressure_seen: u32,
    /// When the cache's thread exited and left it whole for the next
    /// (the OS layer's clock, ms; see [`retire`]).
    retired_at: u64,
    /// The budget pool this cache draws `max_size` from (see
    /// [`crate::budget`]); null in a sentinel.
    budget: *const Budget,
    pub(crate) registry: *const (),
    pub(crate) slot: *const crate::Slot,
    pub(crate) prev: *mut ThreadCache,
    pub(crate) next: *mut ThreadCache,
}

impl ThreadCache {
    /// Initialises a cache in place. Its stacks are the mapping a previous
    /// cache in this record left (records are recycled, and a recycled
    /// record keeps every byte but its first word), or a new one (address
    /// space only: a page of a stack is touched when a list grows into it).
    /// Returns false, with nothing mapped, if the OS refused.
    ///
    /// # Safety
    /// `this` is a record of a pool only ever used for caches of this
    /// backend: either never used (all zero) or a cache freed after `init`
    /// and `flush`.
    #[must_use]
    pub(crate) unsafe fn init<B: Backend>(
        this: *mut ThreadCache,
        backend: &B,
        budget: &'static Budget,
    ) -> bool {
        let nclasses = backend.num_classes().min(MAX_CLASSES);
        // SAFETY: the record is zero or a former cache of this backend
        // (caller's contract); the pool's link overwrote only `lists[0]`.
        let (map, own_stride, committed) = unsafe {
            let old = ptr::addr_of!((*this).slots_map).read();
            if old.is_null() {
                let Some((m, stride, reserved)) = Self::map_slots(backend.os(), nclasses) else {
                    return false;
                };
                (
                    m,
                    stride,
                    [if reserved { 0 } else { u64::MAX }; MAX_CLASSES / 64],
                )
            } else {
                (
                    old,
                    ptr::addr_of!((*this).own_stride).read(),
                    ptr::addr_of!((*this).committed).read(),
                )
            }
        };
        let base = map as *mut *mut u8;
        // SAFETY: writable memory for a ThreadCache; every field is written.
        unsafe {
            this.write(ThreadCache {
                events_left: EVENT_EVERY,
                armed: EVENT_EVERY,
                tick_left: EVENT_EVERY,
                sample_state: SampleState::seeded(this as u64 ^ strata_os::process_secret() as u64),
                max_size: 0,
                budget,
                slots_map: map,
                own_stride,
                committed,
                ..ThreadCache::sentinel()
            });
            let c = &mut *this;
            c.nclasses = nclasses;
            for class in 1..c.nclasses {
                let i = &mut c.info[class];
                i.object_size = backend.class_size(class as u8) as u32;
                i.batch = backend.batch_size(class as u8).clamp(1, MAX_LEN as usize) as u32;
                // In bounds: after nclasses own stacks, the mapping has
                // SMALL_STACK entries per class.
                let first =
                    nclasses * own_stride / size_of::<*mut u8>() + class * SMALL_STACK as usize;
                c.lists[class].slots = base.add(first);
                c.lists[class].cap = SMALL_STACK;
            }
            // The floor; more is drawn as lists grow (`make_room`).
            c.max_size = budget.join();
            c.pressure_seen = backend.pressure_epoch();
        }
        true
    }

    /// A cache with every list empty and every maximum zero: the value of
    /// the static sentinels that stand for a thread with no cache. Its bytes
    /// are all zero, so the sentinels cost nothing until read.
    pub(crate) const fn sentinel() -> ThreadCache {
        ThreadCache {
            lists: [FreeList::EMPTY; MAX_CLASSES],
            events_left: 0,
            armed: 0,
            tick_left: 0,
            sample_armed: false,
            // Never drawn from (a sentinel is never a thread's cache), and
            // zero like every other field, so that the sentinels are all
            // zero bytes: the static sits in `.bss`, whose pages read as
            // the kernel's zero page and cost no memory.
            sample_state: SampleState {
                rng: 0,
                param: 0.0,
                note: 0.0,
                large: 0.0,
            },
            info: [ListInfo {
                object_size: 0,
                batch: 0,
                overages: 0,
                adopted: false,
            }; MAX_CLASSES],
            capacity: 0,
            max_size: 0,
            slots_map: ptr::null_mut(),
            own_stride: 0,
            committed: [0; MAX_CLASSES / 64],
            nclasses: 0,
            slow_calls: 0,
            mids_used: 0,
            next_pass_at: 0,
            pressure_seen: 0,
            retired_at: 0,
            budget: ptr::null(),
            registry: ptr::null(),
            slot: ptr::null(),
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
        }
    }

    /// Pops an object of `class`, or null if the list is empty.
    ///
    /// Works on raw pointers because `c` may be a shared, never-written
    /// sentinel: its lists are empty, so this only reads.
    ///
    /// # Safety
    /// `c` is this thread's cache or a sentinel.
    #[inline(always)]
    pub unsafe fn pop(c: *mut ThreadCache, class: u8) -> *mut u8 {
        // SAFETY: c is valid; index by u8 into 256 lists is in bounds; a
        // non-empty list belongs to this thread's own cache and its
        // `slots[..len]` hold objects.
        unsafe {
            let l = ptr::addr_of_mut!((*c).lists[class as usize]);
            let len = (*l).len;
            // One compare for both the empty list and a new low-water mark
            // (`low_water >= 0`, so an empty list always takes it): a list
            // above its mark pops with no test of its own.
            if len <= (*l).low_water {
                below_low_water();
                if len == 0 {
                    return ptr::null_mut();
                }
                (*l).low_water = len - 1;
            }
            let len = len - 1;
            let obj = *(*l).slots.add(len as usize);
            // Stacks hold objects only, never null: telling the compiler
            // spares the caller's null check (one test and branch a pop).
            core::hint::assert_unchecked(!obj.is_null());
            FreeList::store_len(l, len);
            obj
        }
    }

    /// Pushes a freed object of `class` if its list is below its maximum.
    /// Returns false, having written nothing, otherwise (and always for a
    /// sentinel, whose maxima are zero).
    ///
    /// # Safety
    /// `c` is this thread's cache or a sentinel; `obj` is a free object of
    /// `class`, at least 8 bytes, owned by nobody.
    #[inline(always)]
    pub unsafe fn try_push(c: *mut ThreadCache, obj: *mut u8, class: u8) -> bool {
        // SAFETY: c is valid; u8 index in bounds; writes happen only on a
        // list with room, which a sentinel never has.
        unsafe {
            let l = ptr::addr_of_mut!((*c).lists[class as usize]);
            let len = (*l).len;
            if len >= (*l).max_len {
                return false;
            }
            // In bounds: len < max_len <= cap - SLACK.
            debug_assert!((*l).max_len + SLACK <= (*l).cap);
            *(*l).slots.add(len as usize) = obj;
            FreeList::store_len(l, len + 1);
            true
        }
    }

    /// Counts an allocation served from a list; true every
    /// [`EVENT_EVERY`]th, when the caller runs [`ThreadCache::on_event`].
    /// One decrement of a word the allocation's cache lines already hold:
    /// the clock is read only on the event.
    ///
    /// # Safety
    /// `c` is this thread's live cache (a pop from it just succeeded: a
    /// sentinel's lists are always empty).
    #[inline(always)]
    pub unsafe fn count_event(c: *mut ThreadCache) -> bool {
        // SAFETY: caller's contract: a live cache only this thread touches.
        unsafe {
            let left = (*c).events_left.wrapping_sub(1);
            (*c).events_left = left;
            left == 0
        }
    }

    /// The countdown expired: runs the periodic check if it is due and
    /// returns whether the allocation just served is to be offered to the
    /// owner's sampler. The caller then re-arms the countdown with
    /// [`ThreadCache::rearm`] (after the offer, which may read the state
    /// the countdown was armed with).
    #[cold]
    #[inline(never)]
    pub fn on_event<B: Backend>(&mut self, backend: &B) -> bool {
        // `armed <= tick_left` (rearm's invariant): no wrap.
        self.tick_left -= self.armed.min(self.tick_left);
        // Counted: `rearm` must not count these again.
        self.armed = 0;
        if self.tick_left == 0 {
            self.tick_left = EVENT_EVERY;
            self.idle_check(backend);
        }
        self.sample_armed
    }

    /// Sets the countdown to the nearer of the next idle check and the
    /// next allocation the sampler wants offered. The gap to that one is
    /// drawn afresh at every expiry: the sampler draws memoryless
    /// (geometric) gaps, so redrawing after an idle check that came first
    /// changes nothing in which allocations are offered.
    pub fn rearm(&mut self, sampler: &Sampler) {
        // Allocations counted since the countdown was set go against the
        // idle check first (none right after an expiry).
        let used = self.armed.saturating_sub(self.events_left);
        self.tick_left -= used.min(self.tick_left);
        if self.tick_left == 0 {
            self.tick_left = EVENT_EVERY;
        }
        let gap = (sampler.next_gap)(&mut self.sample_state);
        self.sample_armed = gap != 0 && gap <= self.tick_left;
        self.armed = if self.sample_armed {
            gap
        } else {
            self.tick_left
        };
        self.events_left = self.armed;
    }

    /// The sampler's state for this thread.
    pub fn sample_state(&mut self) -> &mut SampleState {
        &mut self.sample_state
    }

    /// Pushes a freed object of `class` even past the list's maximum; the
    /// caller then runs [`ThreadCache::overflow`].
    ///
    /// # Safety
    /// This is an active cache (not a sentinel) of a backend with `class`;
    /// `obj` is a free object of `class`, at least 8 bytes, owned by nobody.
    pub unsafe fn push<B: Backend>(&mut self, backend: &B, obj: *mut u8, class: u8) {
        if self.lists[class as usize].len >= self.lists[class as usize].cap {
            // Never expected (overflow keeps len near max_len <= MAX_LEN),
            // but the stack must not be overrun.
            let batch = self.info[class as usize].batch.max(1);
            self.release(backend, class, batch);
        }
        let l = &mut self.lists[class as usize];
        debug_assert!(l.len < l.cap);
        // SAFETY: len < cap, checked above.
        unsafe { *l.slots.add(l.len as usize) = obj };
        l.set_len(l.len + 1);
    }

    /// Refills an empty list from the backend and returns one object, or null
    /// when memory ran out (or `class` is not one of the backend's).
    ///
    /// A list at the start of its slow start (maximum 0 or 1: the thread
    /// has allocated at most one object of `class`, or only freed some;
    /// or the first refill of a list its thread adopted with the cache)
    /// takes at least `START_BYTES` of objects and hands out the last of
    /// them. One object at a time, the first allocations of threads that
    /// start together take neighbouring objects (the next carved, or the
    /// ones just freed: the objects another thread handed them), so objects
    /// written by different threads share cache lines and every write moves
    /// the line between cores (passive false sharing, as in the
    /// cache-scratch benchmark). The last of
    /// two lines' worth lies past the line of the first, which is the one
    /// such a recycled object or a neighbouring thread's object shares. The
    /// rest stay in the list for later allocations; the cost is at most 128
    /// bytes per class, and only on this slow path.
    #[inline(never)]
    pub fn refill<B: Backend>(&mut self, backend: &B, class: u8) -> *mut u8 {
        let c = class as usize;
        let ListInfo {
            object_size, batch, ..
        } = self.info[c];
        if object_size == 0 {
            return ptr::null_mut();
        }
        if self.lists[c].len > 0 {
            // Not empty after all: nothing to fetch.
            // SAFETY: this is an active cache, and the list has an object.
            return unsafe { Self::pop(self, class) };
        }
        let mut max_len = self.lists[c].max_len;
        let start = START_BYTES.div_ceil(object_size).min(batch);
        let adopted = core::mem::take(&mut self.info[c].adopted);
        let starting = (max_len <= 1 || adopted) && start > 1;
        if starting && max_len < start {
            // Slow start goes on from here, a batch at most.
            self.set_max(backend.os(), c, start);
            max_len = start;
        }
        let want = max_len.min(batch).max(1);
        // SAFETY: the list is empty and its stack has room for
        // `cap >= SMALL_STACK` entries (at most that many are asked for).
        let out = unsafe {
            core::slice::from_raw_parts_mut(self.lists[c].slots, want.min(SMALL_STACK) as usize)
        };
        let got = if starting {
            backend.alloc_batch_apart(class, out)
        } else {
            backend.alloc_batch(class, out)
        } as u32;
        if got == 0 {
            return ptr::null_mut();
        }
        debug_assert!(got <= want.min(SMALL_STACK), "a batch longer than asked");
        // The batch is on the stack: a move to the class's own stack in
        // `set_max` carries it along.
        self.lists[c].set_len(got);
        // Slow start: grow by one up to a batch, then by batches, within the
        // byte budget (after giving back what other lists left idle).
        let grown = if max_len < batch {
            max_len + 1
        } else {
            (max_len + batch).min(MAX_LEN)
        };
        let extra = (grown - max_len) as usize * object_size as usize;
        let ticked = self.tick(backend, c);
        if !self.make_room(extra) && ticked {
            // Scavenging walks every list: only every SCAVENGE_EVERY slow calls.
            self.scavenge(backend);
        }
        if self.capacity + extra <= self.max_size || max_len == 0 {
            self.set_max(backend.os(), c, grown);
        }
        // The top object is returned (a starting list hands out the bottom
        // one, the last the backend gave, and keeps the top in its place);
        // nothing of the refilled batch counts as idle for the next
        // scavenge.
        let l = &mut self.lists[c];
        l.set_len(got - 1);
        l.low_water = 0;
        // SAFETY: slots[..got] hold the objects the backend gave.
        unsafe {
            let top = *l.slots.add(l.len as usize);
            if starting && got > 1 {
                let last = *l.slots;
                *l.slots = top;
                return last;
            }
            top
        }
    }

    /// Slow path after a `push` that returned false.
    #[inline(never)]
    pub fn overflow<B: Backend>(&mut self, backend: &B, class: u8) {
        let c = class as usize;
        let ListInfo {
            object_size, batch, ..
        } = self.info[c];
        let (len, max_len) = (self.lists[c].len, self.lists[c].max_len);
        if len <= max_len {
            return;
        }
        // Give back a batch, or everything over the maximum when that is
        // more. A list still in its slow start (maximum below a batch)
        // keeps half its maximum: given back whole, its next allocation
        // would refill it at once, and a list whose length wanders (a
        // thread that frees and allocates a class in random order, a few
        // live at a time) went back and forth between the two ends on
        // most of its slow-path calls (measurements: docs/performance.md,
        // "The classic allocator workloads under `LD_PRELOAD`").
        let n = if self.info[c].adopted {
            // A list adopted with the cache of a thread that exited and not
            // refilled since: all of it goes back, the object just freed with
            // it (often one another thread allocated and handed over), so
            // that the next allocation refills apart (see `retire`).
            len
        } else if max_len < batch {
            len - max_len / 2
        } else {
            batch.max(len - max_len).min(len)
        };
        self.release(backend, class, n);
        if max_len < batch {
            if self.make_room(object_size as usize) {
                self.set_max(backend.os(), c, max_len + 1);
            }
        } else {
            let i = &mut self.info[c];
            i.overages += 1;
            if i.overages > MAX_OVERAGES {
                i.overages = 0;
                self.set_max(backend.os(), c, (max_len - batch).max(batch));
            }
        }
        self.tick(backend, 0);
        let l = &self.lists[c];
        debug_assert!(
            l.len <= l.max_len + 1,
            "a list more than one past its maximum"
        );
    }
}

// SAFETY: only the list a cache is in writes its `prev` and `next`.
strata_base::impl_linked!(unsafe ThreadCache, prev, next);
