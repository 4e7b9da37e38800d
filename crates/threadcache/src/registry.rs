//! The registry of thread caches: creating a thread's cache on first use,
//! destroying it at thread exit, and the states in between.
//!
//! # Lifecycle
//! The slot (a thread-local cell the owner declares) holds `UNINIT` (null),
//! `INITIALISING`, `DESTROYED`, or a pointer to the thread's live cache.
//! Creation maps a record from the OS pool, registers a pthread key
//! destructor for the thread, and only then publishes the pointer; anything
//! the thread allocates meanwhile (glibc's `pthread_setspecific` calls
//! `calloc` for keys past the first 32) goes straight to the backend.
//!
//! The destructor marks the slot `DESTROYED` *before* flushing, so frees and
//! allocations made by later destructors of the same thread never touch the
//! cache being dismantled.
//!
//! # Invariants
//! - Only the owning thread writes its slot.
//! - Every live cache is in the registry's list; its record returns to the
//!   pool only after it has been flushed and unlinked.

use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use strata_base::{ForkLock, List, Lock, MetaPool};

use crate::budget::{fair_share, Budget};
use crate::cache::ThreadCache;
use crate::slot::{Slot, ThreadSlot, DESTROYED, INITIALISING, UNINIT};
use crate::sync::{AtomicUsize, Ordering};
use crate::{Backend, Hooks, NoHooks};

/// Zeroes the first word of `p` when `CLEAR` (the mark a C `free` leaves
/// in freed objects: see [`ThreadCaches::alloc_with`]).
///
/// # Safety
/// `p` is a free object (of at least 8 bytes) now the caller's.
#[inline(always)]
unsafe fn clear_first_word<const CLEAR: bool>(p: *mut u8) {
    if CLEAR {
        // SAFETY: caller's contract.
        unsafe { (p as *mut usize).write(0) };
    }
}

/// Default byte budget of one thread's cache: 32 MiB.
///
/// The budget is a ceiling, not a reservation: a list's maximum grows only
/// when the thread keeps refilling it, so a cache holds this much only for a
/// thread that frees and reuses that much. Less sends a large working set
/// that is freed and reused through the transfer caches and the spans;
/// this much did not raise the peak RSS of multi-threaded programs
/// (measurements: docs/performance.md, "Thread-cache budget").
pub(crate) const DEFAULT_MAX_CACHE_BYTES: usize = 32 << 20;

/// The bytes all caches together may hold by default (see
/// [`crate::budget`]): up to two busy threads get the full per-thread
/// maximum, 512 threads the floor each.
pub(crate) const DEFAULT_TOTAL_CACHE_BYTES: usize = 64 << 20;

/// Every live cache, linked through `prev`/`next`, the caches exited
/// threads left for the next ones (`crate::retired`), and how many were
/// ever created; only reached under the registry's `list` lock. A cache is
/// in one of the two lists at most.
pub(crate) struct CacheList {
    caches: List<ThreadCache>,
    pub(crate) retired: List<ThreadCache>,
    created: u64,
}

impl CacheList {
    /// Links a new cache at the front.
    ///
    /// # Safety
    /// `c` is a live cache in no list; the list's caches are live.
    unsafe fn insert(&mut self, c: *mut ThreadCache) {
        // SAFETY: caller's contract.
        unsafe { self.caches.push(c) };
        self.created += 1;
    }

    /// Unlinks a live cache.
    ///
    /// # Safety
    /// `c` is in the live list.
    pub(crate) unsafe fn remove(&mut self, c: *mut ThreadCache) {
        // SAFETY: caller's contract.
        unsafe { self.caches.remove(c) };
    }

    /// Caches alive now.
    fn live(&self) -> usize {
        self.caches.len()
    }

    /// The bytes each cache in the list holds now.
    fn held(&self) -> impl Iterator<Item = usize> + '_ {
        self.caches
            .iter()
            // SAFETY: caches in the list are live, and stay so while the
            // list's lock (which the caller holds) keeps them in it.
            .map(|c| unsafe { ThreadCache::held_bytes(c) })
    }

    /// The bytes every cache in the list, or kept for the next thread,
    /// holds now.
    fn cached_bytes(&self) -> usize {
        // SAFETY: retired caches are whole records, kept by the list.
        let retired = self
            .retired
            .iter()
            .map(|c| unsafe { ThreadCache::held_bytes(c) });
        self.held().chain(retired).sum()
    }
}

/// Totals over all thread caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadCacheStats {
    /// Caches alive now.
    pub live_caches: usize,
    /// Caches created since start.
    pub created: u64,
    /// Bytes in all caches (each list as its thread last stored its
    /// length).
    pub cached_bytes: usize,
}

/// All thread caches over a backend `B`.
/// The owner's hooks are `H` ([`Hooks`]).
///
/// The backend comes last (`repr(C)`): in a static, the registry's own
/// words, which every program writes when its first cache is made, then
/// sit at the static's start, next to the statics before it, rather than
/// on a page of their own after the backend's tens of KiB.
#[repr(C)]
pub struct ThreadCaches<B: Backend, H: Hooks = NoHooks> {
    pub(crate) records: MetaPool<ThreadCache>,
    pub(crate) list: Lock<CacheList>,
    /// pthread key + 1, or 0 while not created.
    key: AtomicUsize,
    key_lock: Lock<()>,
    /// Xor `DEFAULT_MAX_CACHE_BYTES` (zero by default: see the type's docs).
    max_cache_bytes: AtomicUsize,
    /// Xor `DEFAULT_TOTAL_CACHE_BYTES`.
    total_cache_bytes: AtomicUsize,
    /// The budgets the caches share, refitted on their periodic checks.
    pub(crate) budget: Budget,
    hooks: PhantomData<fn() -> H>,
    pub(crate) backend: B,
}

impl<B: Backend> ThreadCaches<B> {
    strata_base::const_unless_loom! {
        /// Thread caches over `backend`, with no hooks. Nothing is created
        /// until first use.
        pub fn new(backend: B) -> Self {
            Self::with_hooks(backend)
        }
    }
}

impl<B: Backend, H: Hooks> ThreadCaches<B, H> {
    strata_base::const_unless_loom! {
        /// Thread caches over `backend` with the owner's hooks `H`. Nothing
        /// is created until first use.
        pub fn with_hooks(backend: B) -> Self {
            ThreadCaches {
                backend,
                records: MetaPool::new(),
                list: Lock::new(CacheList { caches: List::new(), retired: List::new(), created: 0 }),
                key: AtomicUsize::new(0),
                key_lock: Lock::new(()),
                max_cache_bytes: AtomicUsize::new(0),
                total_cache_bytes: AtomicUsize::new(0),
                budget: Budget::new(DEFAULT_TOTAL_CACHE_BYTES, DEFAULT_MAX_CACHE_BYTES),
                hooks: PhantomData,
            }
        }
    }

    /// The backend beneath.
    #[inline]
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Sets the largest byte budget of one cache; each gets its share of
    /// the total within `[min(128 KiB, bytes), bytes]`. Caches refit
    /// themselves on their next periodic check.
    pub fn set_max_cache_bytes(&self, bytes: usize) {
        self.max_cache_bytes.store(
            bytes.max(64 << 10) ^ DEFAULT_MAX_CACHE_BYTES,
            Ordering::Relaxed,
        );
        self.update_budget(self.list.lock().live());
    }

    /// Sets the bytes all caches together may hold (see
    /// [`ThreadCaches::set_max_cache_bytes`] for one cache's ceiling).
    pub fn set_total_cache_bytes(&self, bytes: usize) {
        let bytes = bytes.max(64 << 10);
        let old = self
            .total_cache_bytes
            .swap(bytes ^ DEFAULT_TOTAL_CACHE_BYTES, Ordering::Relaxed)
            ^ DEFAULT_TOTAL_CACHE_BYTES;
        self.budget.grow_total(bytes as isize - old as isize);
        self.update_budget(self.list.lock().live());
    }

    /// Sets each cache's fair share for the caches live now.
    pub(crate) fn update_budget_now(&self) {
        self.update_budget(self.list.lock().live());
    }

    /// Sets each cache's fair share for `live` caches.
    fn update_budget(&self, live: usize) {
        self.budget.set_fair(fair_share(
            self.max_cache_bytes.load(Ordering::Relaxed) ^ DEFAULT_MAX_CACHE_BYTES,
            self.total_cache_bytes.load(Ordering::Relaxed) ^ DEFAULT_TOTAL_CACHE_BYTES,
            live,
        ));
    }

    /// Each cache's fair share of the budget now.
    pub fn cache_budget_now(&self) -> usize {
        self.budget.fair()
    }

    /// Allocates an object of `class` for a request described by `size`
    /// (the owner's word for its sampler, passed on as is: see
    /// [`crate::Sampler::offer`]; 0 if not known) for the thread owning
    /// `slot`.
    #[inline(always)]
    pub fn alloc<'a>(&'static self, slot: impl ThreadSlot<'a>, class: u8, size: usize) -> *mut u8 {
        self.alloc_with::<false>(slot, class, size)
    }

    /// [`ThreadCaches::alloc`], with the object's first word zeroed when
    /// `CLEAR_FIRST_WORD` (a caller that marks freed objects there: C's
    /// `free`). On the fast path the store comes right after the pop, and
    /// every call after it is a tail call, so nothing is kept on the stack.
    #[inline(always)]
    pub fn alloc_with<'a, const CLEAR_FIRST_WORD: bool>(
        &'static self,
        slot: impl ThreadSlot<'a>,
        class: u8,
        size: usize,
    ) -> *mut u8 {
        let p = self.alloc_cached::<CLEAR_FIRST_WORD>(slot, class, size);
        if !p.is_null() {
            return p;
        }
        self.alloc_slow::<CLEAR_FIRST_WORD>(slot.slot(), class, size)
    }

    /// The fast path of [`ThreadCaches::alloc_with`] alone: an object from
    /// the thread's cache, or null (nothing else tried) if its list is
    /// empty. For a caller that puts its whole slow path out of line, so
    /// that this one keeps nothing on the stack.
    #[inline(always)]
    pub fn alloc_cached<'a, const CLEAR_FIRST_WORD: bool>(
        &'static self,
        slot: impl ThreadSlot<'a>,
        class: u8,
        size: usize,
    ) -> *mut u8 {
        let c = slot.word();
        // SAFETY: the slot holds this thread's cache or a sentinel.
        let p = unsafe { ThreadCache::pop(c, class) };
        if !p.is_null() {
            // SAFETY: a free object, now the caller's.
            unsafe { clear_first_word::<CLEAR_FIRST_WORD>(p) };
            // SAFETY: the pop succeeded, so `c` is this thread's live cache.
            if unsafe { ThreadCache::count_event(c) } {
                let p = Self::event(size, self, slot.slot(), p);
                // SAFETY: `event` returns the object it was given.
                unsafe { core::hint::assert_unchecked(!p.is_null()) };
                return p;
            }
        }
        p
    }

    /// The countdown expired on an allocation that got `p`, for `size`
    /// bytes: the periodic check, and the sampler's offer if the countdown
    /// was armed for one. Returns what to hand out: `p`, or the sampler's
    /// block (then `p` goes back on its list).
    ///
    /// The size comes first and the class not at all (the backend finds it
    /// from `p`): C's `malloc` has the size in the first argument register
    /// already, and a fast path that had to keep the class or move the size
    /// for this call cost two instructions more per allocation.
    #[cold]
    #[inline(never)]
    extern "C" fn event(size: usize, this: &'static Self, slot: &Slot, p: *mut u8) -> *mut u8 {
        let Some(mut c) = slot.cache() else {
            return p;
        };
        // SAFETY: the slot's cache belongs to this thread.
        let c = unsafe { c.as_mut() };
        let mut out = p;
        let pass = c.next_pass_at();
        let offer = c.on_event(&this.backend);
        if c.next_pass_at() != pass {
            // An idle pass ran: so may the retired caches' (`crate::retired`).
            this.reap_retired();
        }
        if offer {
            let class = this.backend.class_of_object(p);
            let block = match class {
                0 => None,
                _ => (H::SAMPLER.offer)(c.sample_state(), class, size),
            };
            if let Some(block) = block {
                // SAFETY: `p` was just taken from this cache's list of
                // `class` and is handed to nobody; `overflow` trims the
                // list if it is now over its maximum.
                unsafe {
                    c.push(&this.backend, p, class);
                    c.overflow(&this.backend, class);
                }
                out = block.as_ptr();
            }
        }
        c.rearm(&H::SAMPLER);
        out
    }

    /// Frees an object of `class` on the thread owning `slot` (whichever
    /// thread allocated it).
    ///
    /// # Safety
    /// `obj` is a live object of `class` from this registry's backend.
    #[inline(always)]
    pub unsafe fn free<'a>(&'static self, slot: impl ThreadSlot<'a>, obj: *mut u8, class: u8) {
        let c = slot.word();
        // SAFETY: the slot holds this thread's cache or a sentinel; the
        // object is given up by the caller.
        if unsafe { !ThreadCache::try_push(c, obj, class) } {
            // SAFETY: forwarded contract.
            unsafe { self.free_slow(slot.slot(), obj, class) }
        }
    }

    #[inline(never)]
    fn alloc_slow<const CLEAR_FIRST_WORD: bool>(
        &'static self,
        slot: &Slot,
        class: u8,
        size: usize,
    ) -> *mut u8 {
        let mut cache = slot.cache();
        if cache.is_none() && slot.is(UNINIT) {
            cache = self.create(slot);
        }
        if let Some(mut c) = cache {
            // SAFETY: the slot's cache belongs to this thread (live, or just
            // created with its lists empty).
            // SAFETY: as above.
            let cache = unsafe { c.as_mut() };
            let p = cache.refill(&self.backend, class);
            // The mark is cleared on the object from the list, before the
            // sampler may swap in a block of its own: a sampled block is
            // sized to the request, and a word written into one of 1-7
            // bytes would land in its guard.
            if !p.is_null() {
                // SAFETY: a free object, now the caller's.
                unsafe { clear_first_word::<CLEAR_FIRST_WORD>(p) };
            }
            // The sampler may want allocations of this class examined more
            // often from now on, this one included.
            if !p.is_null() && (H::SAMPLER.on_refill)(cache.sample_state(), class) {
                cache.rearm(&H::SAMPLER);
            }
            // A refill counts for the countdown too, so that the sampler
            // sees every allocation a cache serves.
            // SAFETY: this thread's live cache, which just served `p`.
            if !p.is_null() && unsafe { ThreadCache::count_event(c.as_ptr()) } {
                return Self::event(size, self, slot, p);
            }
            return p;
        }
        if class as usize >= self.backend.num_classes() || class == 0 {
            return ptr::null_mut();
        }
        // A thread without a cache has no beat of its own: it ticks on
        // every object, as the backend's batches do not.
        self.backend.tick();
        let mut one = [ptr::null_mut()];
        self.backend.alloc_batch(class, &mut one);
        if !one[0].is_null() {
            // SAFETY: a free object, now the caller's.
            unsafe { clear_first_word::<CLEAR_FIRST_WORD>(one[0]) };
        }
        one[0]
    }

    #[inline(never)]
    unsafe extern "C" fn free_slow(&'static self, slot: &Slot, obj: *mut u8, class: u8) {
        let mut cache = slot.cache();
        if cache.is_none() && slot.is(UNINIT) {
            cache = self.create(slot);
        }
        if let Some(mut c) = cache {
            // SAFETY: this thread's cache; forwarded contract.
            unsafe {
                let c = c.as_mut();
                c.push(&self.backend, obj, class);
                c.overflow(&self.backend, class);
            }
            return;
        }
        self.backend.tick();
        // SAFETY: forwarded contract.
        unsafe { self.backend.free_batch(class, &[obj]) }
    }

    /// Creates this thread's cache. Returns `None` (and leaves the thread
    /// served centrally) if a record or a pthread key cannot be had.
    fn create(&'static self, slot: &Slot) -> Option<NonNull<ThreadCache>> {
        slot.set_state(INITIALISING);
        H::on_first_use();
        let Some(key) = self.key() else {
            slot.set_state(DESTROYED);
            return None;
        };
        self.update_budget(self.list.lock().live() + 1);
        let rec = if let Some(rec) = self.take_retired() {
            // SAFETY: a kept cache, just taken out of the retired list.
            unsafe { ThreadCache::adopt(rec.as_ptr(), &self.backend, &self.budget) };
            rec
        } else {
            let Some(rec) = self.records.alloc(self.backend.os()) else {
                slot.set_state(UNINIT);
                return None;
            };
            // SAFETY: a record of this registry's pool, which holds only
            // caches of this backend: never used, or freed by `destroy`
            // after a flush.
            if !unsafe { ThreadCache::init(rec.as_ptr(), &self.backend, &self.budget) } {
                // SAFETY: the record is unused.
                unsafe { self.records.free(rec) };
                slot.set_state(UNINIT);
                return None;
            }
            rec
        };
        let c = rec.as_ptr();
        // SAFETY: our record, just initialised.
        unsafe {
            (*c).registry = self as *const Self as *const ();
            (*c).slot = slot as *const Slot;
        }
        // May call calloc (glibc, keys >= 32): the slot says INITIALISING, so
        // that allocation is served centrally.
        // SAFETY: a valid key; the value is our record.
        if unsafe { libc::pthread_setspecific(key, c as *const libc::c_void) } != 0 {
            // SAFETY: the record is used by nobody; an adopted cache's
            // objects go back first.
            unsafe {
                (*c).flush(&self.backend);
                (*c).leave_budget();
                self.records.free(rec);
            }
            slot.set_state(DESTROYED);
            return None;
        }
        // SAFETY: our record, a live cache in no list.
        unsafe { self.register(c) };
        // Sampling from the first allocation on, if it is on.
        // SAFETY: our record, a live cache.
        unsafe { (*c).rearm(&H::SAMPLER) };
        slot.publish(c);
        Some(rec)
    }

    /// Adds a live cache to the registry's list (for `stats` and `fork`).
    ///
    /// # Safety
    /// `c` is a live cache of this registry, in no list.
    pub(crate) unsafe fn register(&self, c: *mut ThreadCache) {
        let mut list = self.list.lock();
        // SAFETY: forwarded contract.
        unsafe { list.insert(c) };
        self.update_budget(list.live());
    }

    #[cfg(all(test, strata_loom))]
    /// Takes a cache out of the registry's list; its record may then go
    /// back to the pool.
    ///
    /// # Safety
    /// `c` was registered with [`ThreadCaches::register`] and not since
    /// unregistered.
    pub(crate) unsafe fn unregister(&self, c: *mut ThreadCache) {
        let mut list = self.list.lock();
        // SAFETY: forwarded contract.
        unsafe { list.remove(c) };
        self.update_budget(list.live());
    }

    pub(crate) fn key(&'static self) -> Option<libc::pthread_key_t> {
        let k = self.key.load(Ordering::Acquire);
        if k != 0 {
            return Some((k - 1) as libc::pthread_key_t);
        }
        let _g = self.key_lock.lock();
        let k = self.key.load(Ordering::Acquire);
        if k != 0 {
            return Some((k - 1) as libc::pthread_key_t);
        }
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: registers a destructor that is valid for the process
        // lifetime (self is 'static).
        if unsafe { libc::pthread_key_create(&mut key, Some(destroy::<B, H>)) } != 0 {
            return None;
        }
        self.key.store(key as usize + 1, Ordering::Release);
        Some(key)
    }

    /// Flushes the calling thread's cache back to the backend (its objects
    /// become available to other threads).
    pub fn flush_current(&'static self, slot: &Slot) {
        if let Some(mut c) = slot.cache() {
            // SAFETY: this thread's cache.
            unsafe { c.as_mut().flush(&self.backend) };
        }
    }

    /// Re-arms the calling thread's countdown now (after the sampler's
    /// settings changed), instead of at its next expiry.
    pub fn rearm_current(&'static self, slot: &Slot) {
        if let Some(mut c) = slot.cache() {
            // SAFETY: this thread's cache.
            unsafe { c.as_mut() }.rearm(&H::SAMPLER);
        }
    }

    /// Whether `obj` is among the free objects of `class` in the calling
    /// thread's cache (for confirming a suspected double free).
    pub fn holds(&self, slot: &Slot, obj: *mut u8, class: u8) -> bool {
        // SAFETY: this thread's cache, read on this thread.
        slot.cache()
            .is_some_and(|c| unsafe { c.as_ref() }.holds(obj, class))
    }

    /// Totals over every live cache.
    pub fn stats(&self) -> ThreadCacheStats {
        let list = self.list.lock();
        ThreadCacheStats {
            live_caches: list.live(),
            created: list.created,
            cached_bytes: list.cached_bytes(),
        }
    }

    /// Adds the objects every cache holds now (the live ones, and those
    /// kept for the next threads), class by class, into `out[class]`,
    /// under the registry's lock.
    pub fn add_cached_objects(&self, out: &mut [usize]) {
        let list = self.list.lock();
        for c in list.caches.iter().chain(list.retired.iter()) {
            // SAFETY: caches in either list are whole records, kept there by
            // the lock we hold.
            unsafe { ThreadCache::add_held_objects(c, out) };
        }
    }

    /// Calls `f` with the bytes each live cache holds (newest
    /// cache first), read-only, under the registry's lock: `f` must not
    /// allocate or reach this registry (copy the figures out, then use
    /// them).
    pub fn for_each_cache(&self, mut f: impl FnMut(usize)) {
        self.list.lock().held().for_each(&mut f);
    }

    /// Takes the registry's locks before `fork`.
    pub fn fork_prepare(&self) {
        self.key_lock.fork_prepare();
        self.list.fork_prepare();
        self.records.lock_for_fork().fork_prepare();
    }

    /// Releases them in the parent.
    ///
    /// # Safety
    /// After [`ThreadCaches::fork_prepare`] on this thread.
    pub unsafe fn fork_parent(&self) {
        // SAFETY: forwarded contract.
        unsafe {
            self.records.lock_for_fork().fork_parent();
            self.list.fork_parent();
            self.key_lock.fork_parent();
        }
    }

    /// Resets them in the child, and takes back the caches of the parent's
    /// other threads, which do not exist in the child: their objects go
    /// back to the backend (they would otherwise stay stranded, counted as
    /// cached, for the child's lifetime) and their records to the pool.
    /// `current` is the forking thread's cache, kept.
    ///
    /// A thread the fork caught in the middle of its own fast path (no
    /// lock guards it) leaves at worst an object or a batch neither in its
    /// list nor in the backend: a leak in the child, never an object held
    /// twice.
    ///
    /// # Safety
    /// In the child, after [`ThreadCaches::fork_prepare`] in the parent, and
    /// after the backend's locks were reset.
    pub unsafe fn fork_child(&self, current: Option<NonNull<ThreadCache>>) {
        // SAFETY: forwarded contract.
        unsafe {
            self.records.lock_for_fork().fork_child();
            self.list.fork_child();
            self.key_lock.fork_child();
        }
        let current = current.map_or(core::ptr::null_mut(), NonNull::as_ptr);
        let mut list = self.list.lock();
        while let Some(c) = list.caches.iter().find(|&c| c != current) {
            // SAFETY: a cache of the list whose thread does not exist in
            // the child: nothing else can touch it; its record came from
            // this registry's pool.
            unsafe {
                list.remove(c);
                (*c).flush(&self.backend);
                (*c).leave_budget();
                self.records.free(NonNull::new_unchecked(c));
            }
        }
    }
}

/// The pthread key destructor: keeps a thread's cache for the next thread
/// (`crate::retired`), or flushes and frees it.
extern "C" fn destroy<B: Backend, H: Hooks>(arg: *mut libc::c_void) {
    let c = arg as *mut ThreadCache;
    if c.is_null() {
        return;
    }
    // SAFETY: the value was set by `create` to a live cache of a
    // `ThreadCaches<B, H>` that is 'static; its slot is this thread's
    // thread-local, which outlives pthread key destructors.
    unsafe {
        let reg = &*((*c).registry as *const ThreadCaches<B, H>);
        let slot = &*(*c).slot;
        // From now on this thread is served centrally.
        slot.set_state(DESTROYED);
        reg.retire(c);
        reg.backend.thread_exited(reg.list.lock().live());
    }
}
