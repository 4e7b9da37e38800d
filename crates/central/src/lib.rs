//! # strata-central: size classes, central free lists, transfer caches
//!
//! The middle layer of strata. It turns spans from the page heap into objects
//! of fixed size classes and moves them in *batches* between the thread
//! caches above and the spans below:
//!
//! ```text
//!   thread caches ──batch──▶ TransferCache (per class, O(1) per batch)
//!                                 │ full / empty
//!                                 ▼
//!                           CentralList (per class: spans with free objects,
//!                                 │      fullest first)
//!                                 ▼ empty span / new span
//!                             page heap (PageSource)
//! ```
//!
//! An allocation is served, in order: by parked objects (up to what was
//! asked for; a part is topped up from the spans), by the fullest spans
//! with free objects, and only then by a new span. So memory parked by the
//! threads before is used before the heap grows. A free parks its objects
//! (whole batches, and parts of one from lists shorter than a batch, within
//! budgets of their own) or returns them to their spans.
//!
//! It is generic over [`PageSource`], what it needs from the page heap, which
//! [`strata_pageheap::PageHeap`] implements; its tests run over a fake.
//!
//! # Locking
//! Each class has two locks, the transfer cache's and the central list's;
//! neither is ever held while taking the other. Spans are asked of the page
//! heap and given back to it with neither held; the transfer cache's lock
//! is held while mapping its table of pointers (once per class,
//! [`PageSource::map_table`]). The spans' bitmaps come from one
//! pool under a lock of its own: taken alone when a span joins its class,
//! and inside the class's central lock when it leaves (never the other way
//! round).
//!
//! Batches move as arrays of pointers: [`Central::alloc_batch`] fills a
//! slice, [`Central::free_batch`] takes one, and parked objects are copied
//! into and out of their transfer cache without touching the objects.
//!
//! # Example: a fixed-size memory pool
//! [`Central`] works on its own as a pool of fixed-size blocks:
//! ```
//! use strata_central::{class_for, class_size_of, Central};
//! use strata_os::SystemOs;
//! use strata_pageheap::PageHeap;
//!
//! static POOL: Central<PageHeap<SystemOs>> = Central::new(PageHeap::new(SystemOs::new()));
//!
//! // A pool of 48-byte records.
//! let class = class_for(48, 16).unwrap();
//! assert_eq!(class_size_of(class), 48);
//! let a = POOL.alloc_one(class).unwrap();
//! let b = POOL.alloc_one(class).unwrap();
//! assert_ne!(a, b);
//! // SAFETY: both blocks came from this pool's class and are given back once.
//! unsafe {
//!     a.as_ptr().write_bytes(1, 48);
//!     POOL.free_one(class, a.as_ptr());
//!     POOL.free_one(class, b.as_ptr());
//! }
//! ```

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

mod central_list;
mod free_bits;
mod size_class;
mod source;
mod sync;
mod transfer;

#[cfg(test)]
mod fake;
#[cfg(all(test, strata_loom))]
mod loom_tests;
#[cfg(all(test, not(strata_loom)))]
mod tests;

use core::ptr::{self, NonNull};

use strata_base::{ForkLock, Lock};
use strata_pageheap::{Span, SpanList};

use central_list::CentralList;
use free_bits::BitmapPool;
pub use size_class::{
    class_for, class_for_size, class_index, class_size_of, is_object_offset, small_class,
    ClassInfo, CLASSES, MAX_SMALL, NUM_CLASSES,
};
pub use source::PageSource;
use sync::{AtomicU32, AtomicUsize, Ordering};
use transfer::TransferCache;

struct ClassLists {
    transfer: Lock<TransferCache>,
    central: Lock<CentralList>,
}

/// Per-class accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Spans of this class handed out by the page heap.
    pub spans: usize,
    /// Free objects sitting in those spans.
    pub span_free_objects: usize,
    /// Free objects in the transfer cache.
    pub transfer_objects: usize,
    /// Of `span_free_objects`, those never carved from their span (pages
    /// possibly never touched).
    pub uncarved_objects: usize,
}

/// The central layer: per-class transfer caches and central free lists over
/// a page source `P`.
///
/// The classes come last (`repr(C)`): in a static, the words every program
/// writes (the page source's, these, the first classes') then share pages,
/// and the classes a program does not use stay at the end, untouched.
#[repr(C)]
pub struct Central<P> {
    pages: P,
    /// Bytes parked in all transfer caches together, kept under
    /// [`TRANSFER_BUDGET`].
    transfer_bytes: AtomicUsize,
    /// Addresses of the shared tables, one per tier of
    /// [`transfer::TIERS`]: every class keeps its slice of a tier's
    /// (`class * TIERS[tier]` pointers in), 0 until mapped.
    shared_tables: [AtomicUsize; transfer::TIERS.len()],
    /// The page source's pressure epoch last acted on.
    pressure_seen: AtomicU32,
    /// The classes whose transfer cache ever parked an object, a bit each:
    /// the walks over every transfer cache visit only these. Taking every
    /// class's lock on each decay pass wrote to all of the classes' part
    /// of the static, 14 KiB, where a small program uses a few dozen
    /// classes (measurements: docs/performance.md, "A small program's
    /// footprint, mapping by mapping").
    parked_classes: [AtomicUsize; PARKED_WORDS],
    classes: [ClassLists; NUM_CLASSES],
    /// The spans' bitmaps ([`free_bits`]), for every class: taken alone,
    /// or inside a class's central lock.
    bitmaps: Lock<BitmapPool>,
}

/// Words of [`Central::parked_classes`].
const PARKED_WORDS: usize = NUM_CLASSES.div_ceil(usize::BITS as usize);

/// Bytes all transfer caches together may hold. Each class may hold up to
/// 4 MiB, which keeps a program that frees and reallocates a large working
/// set out of the spans; the shared budget keeps the memory a
/// producer/consumer program parks there bounded (measurements:
/// docs/performance.md, "Transfer caches").
pub const TRANSFER_BUDGET: usize = 16 << 20;

/// Parts of batches are parked only while all transfer caches together
/// hold less than this (whole batches: [`TRANSFER_BUDGET`]). Parts come
/// from lists shorter than a batch, among them the last frees of threads
/// that then wait, and parked they keep their spans resident until a
/// thread takes them or an idle pass returns them. With an eighth of the
/// budget, parts save about half the CPU time they save with a quarter,
/// and add a tenth of the peak (measurements: docs/performance.md,
/// "Transfer caches").
pub const PART_BUDGET: usize = TRANSFER_BUDGET / 8;

/// Batches a class's transfer cache holds: about 4 MiB worth, 2 to 256.
/// With less, a large working set freed and allocated again in random
/// order spends its time moving objects into spans and out again
/// (measurements: docs/performance.md, "Transfer caches").
fn transfer_capacity(info: &ClassInfo) -> usize {
    ((4 << 20) / (info.batch as usize * info.size as usize)).clamp(2, transfer::MAX_SLOTS)
}

impl<P: PageSource> Central<P> {
    strata_base::const_unless_loom! {
        /// A central layer over `pages`; it allocates nothing until used.
        pub fn new(pages: P) -> Self {
            Central {
                pages,
                classes: strata_base::array_unless_loom![
                    ClassLists { transfer: Lock::new(TransferCache::new()), central: Lock::new(CentralList::new()) };
                    NUM_CLASSES
                ],
                transfer_bytes: AtomicUsize::new(0),
                shared_tables: [AtomicUsize::new(0), AtomicUsize::new(0)],
                pressure_seen: AtomicU32::new(0),
                parked_classes: strata_base::array_unless_loom![AtomicUsize::new(0); PARKED_WORDS],
                bitmaps: Lock::new(BitmapPool::new()),
            }
        }
    }

    /// The page source beneath.
    #[inline]
    pub fn pages(&self) -> &P {
        &self.pages
    }

    /// Takes up to `out.len()` objects of `class` (1..NUM_CLASSES) into
    /// `out[..count]` and returns the count, 0 only when memory ran out. The
    /// objects form a stack: use them from the end (a fresh span's then come
    /// in address order). Nothing is written to the objects.
    ///
    /// Does not tick (read the clock for decay): the caller runs
    /// [`Central::tick`] on a beat of its own.
    pub fn alloc_batch(&self, class: u8, out: &mut [*mut u8]) -> usize {
        self.alloc_from(class, out, false)
    }

    /// Like [`Central::alloc_batch`], but objects never handed out before
    /// first (carved in address order from a span that still has some), then
    /// the spans' free objects (the fullest span first), parked objects only
    /// when the spans have none: for a thread cache's list that starts out,
    /// which hands out the last of a few objects, so that a new thread's
    /// first object lies cache lines apart from what other threads freed or
    /// took just before (strata-threadcache's `refill`). Parked objects are
    /// often neighbours of each other (the objects parked last): handing
    /// them out first made the cache-scratch benchmark 3.6x slower. A span's
    /// free objects lie where their frees left them, so the few one thread
    /// takes can share cache lines with another thread's; carved ones are a
    /// run of addresses no other thread holds. A new span is not taken for
    /// this: a program whose threads each leave a block behind would spread
    /// those blocks over new pages (measurements: docs/performance.md,
    /// "Where the C view misses, and why").
    pub fn alloc_batch_apart(&self, class: u8, out: &mut [*mut u8]) -> usize {
        self.alloc_from(class, out, true)
    }

    fn alloc_from(&self, class: u8, out: &mut [*mut u8], spans_first: bool) -> usize {
        let n = out.len();
        let info = &CLASSES[class as usize];
        let lists = &self.classes[class as usize];
        if spans_first {
            let mut central = lists.central.lock();
            let got = match central.carve(out, info) {
                0 => central.take(out, info),
                got => got,
            };
            if got > 0 {
                return got;
            }
        }
        // Parked objects first, a whole batch or what there is: handing
        // them out touches no span, and no new span is taken while objects
        // sit parked. A part is topped up from the spans, so that a refill
        // is not spent on a few objects (what was tried before:
        // docs/performance.md, "Transfer caches").
        let parked = self.pop_parked(class, out);
        if parked == n || (spans_first && parked > 0) {
            // (Spans first found them empty a moment ago.)
            return parked;
        }
        let got = parked + lists.central.lock().take(&mut out[parked..], info);
        if got > 0 {
            return got;
        }
        // No free object anywhere: get a new span, outside the class lock
        // so other threads can keep freeing into this class meanwhile.
        let Some(span) = self.pages.alloc_span(info.pages as usize, class) else {
            return 0;
        };
        // SAFETY: the span is ours, fresh.
        let objects = central_list::span_objects(unsafe { span.as_ref() }, info);
        let bits = self
            .bitmaps
            .lock()
            .alloc(free_bits::words_for(objects), |bytes| {
                self.pages.map_table(bytes)
            });
        if bits.is_null() {
            // SAFETY: none of its objects was handed out (none was carved).
            unsafe { self.pages.free_span(span) };
            return 0;
        }
        let mut central = lists.central.lock();
        // SAFETY: a fresh span of this class with nothing carved, and a
        // bitmap of its own for `objects` objects.
        let objects = unsafe { central.add_span(span.as_ptr(), info, bits) };
        size_class::note_span_objects(class, objects);
        let got = central.take(out, info);
        // Objects freed into the class while the span was fetched are taken
        // first (fullest span first), which can leave the fresh span
        // untouched; only a returning object hands a span back to the page
        // heap, so an untouched one goes back now (found by a loom model,
        // docs/concurrency.md).
        // SAFETY: the span is ours, of this class, and filed by `add_span`.
        if unsafe { central.withdraw_if_unused(span.as_ptr()) } {
            // SAFETY: it left its class just now, under this lock.
            unsafe { self.drop_bitmap(span) };
            drop(central);
            // SAFETY: none of its objects was handed out.
            unsafe { self.pages.free_span(span) };
        }
        got
    }

    /// Gives the bitmap of a span that just left its class back to the
    /// pool, under the class's central lock (so that [`Central::span_holds`],
    /// which reads a span's bitmap under that lock, finds it whole or not
    /// at all). The pool's lock is taken inside the class's, never the
    /// other way round.
    ///
    /// # Safety
    /// `span` was filed with a bitmap from the pool and left its class, with
    /// none of its objects out, under the class lock the caller holds.
    unsafe fn drop_bitmap(&self, span: NonNull<Span>) {
        // SAFETY: caller's contract: the span is nobody's but the caller's.
        let (bits, words) = unsafe {
            let s = &mut *span.as_ptr();
            let bits = core::mem::replace(&mut s.free_bits, ptr::null_mut());
            s.bits_from = 0;
            (bits, free_bits::words_for(s.capacity))
        };
        // SAFETY: the span's own bitmap, from the pool, unused from now on.
        unsafe { self.bitmaps.lock().release(bits, words) };
    }

    /// Gives back the objects of `class` in `objs`, a batch at a time: they
    /// are parked as they are (their pointers copied) for the next
    /// [`Central::alloc_batch`] while the class's transfer cache and the
    /// shared budget have room, else returned to their spans; nothing is
    /// written to the objects until they go back to their spans. Does not
    /// tick, as [`Central::alloc_batch`].
    ///
    /// # Safety
    /// `objs` holds distinct objects of `class` allocated from this central
    /// layer and no longer used.
    pub unsafe fn free_batch(&self, class: u8, objs: &[*mut u8]) {
        let info = &CLASSES[class as usize];
        let batch = info.batch as usize;
        for chunk in objs.chunks(batch.max(1)) {
            if !self.park(class, chunk) {
                // SAFETY: forwarded contract.
                unsafe { self.release_to_spans(class, chunk) };
            }
        }
    }

    /// Takes up to `out.len()` parked objects of `class` into `out`.
    fn pop_parked(&self, class: u8, out: &mut [*mut u8]) -> usize {
        let got = self.classes[class as usize].transfer.lock().pop(out);
        self.unreserve_transfer(&CLASSES[class as usize], got);
        got
    }

    /// Parks `objs` (at most a batch) in the transfer cache of `class`, if
    /// the budget and the cache have room.
    fn park(&self, class: u8, objs: &[*mut u8]) -> bool {
        let info = &CLASSES[class as usize];
        let budget = if objs.len() < info.batch as usize {
            PART_BUDGET
        } else {
            TRANSFER_BUDGET
        };
        if !self.reserve_transfer(info, objs.len(), budget) {
            return false;
        }
        let parked = self.classes[class as usize].transfer.lock().push(
            objs,
            info.batch as usize,
            transfer_capacity(info),
            |tier| self.shared_table(tier, class),
            |bytes| self.pages.map_table(bytes),
        );
        if !parked {
            self.unreserve_transfer(info, objs.len());
            return false;
        }
        let (word, bit) = (
            class as usize / usize::BITS as usize,
            1 << (class as u32 % usize::BITS),
        );
        // Written once per class: a load, where the bit is set already.
        if self.parked_classes[word].load(Ordering::Relaxed) & bit == 0 {
            self.parked_classes[word].fetch_or(bit, Ordering::Relaxed);
        }
        true
    }

    /// The classes whose transfer cache ever parked an object (the only
    /// ones that can hold any), in increasing order. One that parks while
    /// a walk runs may be missed, as if it had parked just after.
    fn parked_classes(&self) -> impl Iterator<Item = u8> + '_ {
        (0..PARKED_WORDS).flat_map(move |w| {
            let mut bits = self.parked_classes[w].load(Ordering::Relaxed);
            core::iter::from_fn(move || {
                let b = bits.trailing_zeros();
                (bits != 0).then(|| {
                    bits &= bits - 1;
                    (w * usize::BITS as usize + b as usize) as u8
                })
            })
        })
    }

    /// Gives back the objects of `class` in `objs` straight to their spans,
    /// never parking them: for caches that go away (an exiting thread's),
    /// whose objects no thread is waiting for.
    ///
    /// # Safety
    /// As for [`Central::free_batch`].
    pub unsafe fn free_to_spans(&self, class: u8, objs: &[*mut u8]) {
        self.tick();
        for chunk in objs.chunks(transfer::MAX_BATCH * 8) {
            // SAFETY: forwarded contract.
            unsafe { self.release_to_spans(class, chunk) };
        }
    }

    /// The slice of the shared table of `tier` for `class`
    /// (`TIERS[tier]` pointers), mapping the table on first use. Two
    /// threads that map it at once both map, one publishes its table and
    /// the other's stays unused (address space only: a table is never
    /// touched before it is published).
    fn shared_table(&self, tier: usize, class: u8) -> Option<NonNull<*mut u8>> {
        let slice_bytes = transfer::TIERS[tier] * core::mem::size_of::<*mut u8>();
        let table = &self.shared_tables[tier];
        let mut base = table.load(Ordering::Acquire);
        if base == 0 {
            let mine = self.pages.map_table(NUM_CLASSES * slice_bytes)?.as_ptr() as usize;
            base = match table.compare_exchange(0, mine, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => mine,
                Err(theirs) => theirs,
            };
        }
        NonNull::new((base + class as usize * slice_bytes) as *mut *mut u8)
    }

    /// Takes room for `objects` of `info`'s class in the shared transfer
    /// budget.
    fn reserve_transfer(&self, info: &ClassInfo, objects: usize, budget: usize) -> bool {
        let bytes = objects * info.size as usize;
        if self.transfer_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes <= budget {
            return true;
        }
        self.transfer_bytes.fetch_sub(bytes, Ordering::Relaxed);
        false
    }

    /// `objects` of the class left the transfer caches (or never went in).
    fn unreserve_transfer(&self, info: &ClassInfo, objects: usize) {
        self.transfer_bytes
            .fetch_sub(objects * info.size as usize, Ordering::Relaxed);
    }

    /// Returns `objs` to their spans.
    ///
    /// # Safety
    /// As for [`Central::free_batch`].
    unsafe fn release_to_spans(&self, class: u8, objs: &[*mut u8]) {
        let lists = &self.classes[class as usize];
        let mut empty = SpanList::new();
        {
            let mut central = lists.central.lock();
            for &obj in objs {
                // A span of another class (or none, or a free one: its
                // class is 0) means the object's own span went back to the
                // page heap: this is a second free of the object.
                let span = match self.pages.span_of(obj as usize) {
                    // SAFETY: span records are never unmapped; the class of
                    // a span that holds objects of ours changes only after
                    // they have all come back.
                    Some(s) if unsafe { s.as_ref() }.size_class() == class => s,
                    _ => central_list::double_free(obj),
                };
                // SAFETY: the object belongs to this span and class.
                if let Some(s) = unsafe { central.put(span.as_ptr(), obj, class) } {
                    // SAFETY: the span left its class in `put`, under this
                    // lock, and every list.
                    unsafe {
                        self.drop_bitmap(s);
                        empty.push(s.as_ptr());
                    }
                }
            }
        }
        // Spans go back to the page heap outside the class lock.
        while !empty.is_empty() {
            let s = empty.first();
            // SAFETY: s is in our local list and entirely free.
            unsafe {
                empty.remove(s);
                self.pages.free_span(NonNull::new_unchecked(s));
            }
        }
    }

    /// One object of `class`, for callers without a thread cache.
    pub fn alloc_one(&self, class: u8) -> Option<NonNull<u8>> {
        self.tick();
        let mut one = [ptr::null_mut()];
        self.alloc_batch(class, &mut one);
        NonNull::new(one[0])
    }

    /// Gives back one object of `class`, straight to its span (where a
    /// second free of it is caught), never parked.
    ///
    /// # Safety
    /// `obj` is an object of `class` from this central layer, no longer used.
    pub unsafe fn free_one(&self, class: u8, obj: *mut u8) {
        self.tick();
        // SAFETY: forwarded contract.
        unsafe { self.release_to_spans(class, &[obj]) }
    }

    /// Amortised idle work: on every object [`Central::alloc_one`] and
    /// [`Central::free_one`] move and every call of
    /// [`Central::free_to_spans`], and on the beat of whoever moves batches
    /// ([`Central::alloc_batch`] and [`Central::free_batch`] do not tick: a
    /// thread cache ticks every 64 slow-path calls and at its idle passes,
    /// which spares a clock read per batch). When the page source runs a decay
    /// pass (at most every quarter of the delay), batches that sat in a
    /// transfer cache since the previous pass go back to their spans, so
    /// that spans left empty return to the page heap and decay with it.
    #[inline]
    pub fn tick(&self) {
        if self.pages.tick() {
            self.drain_idle_transfer_caches();
        }
        let epoch = self.pages.pressure_epoch();
        if epoch != self.pressure_seen.load(Ordering::Relaxed) {
            self.relieve(epoch);
        }
    }

    /// The page source neared its memory limit: everything parked goes
    /// back to its spans (once per epoch, by whichever thread sees it
    /// first), and the spans left empty to the page source.
    #[cold]
    fn relieve(&self, epoch: u32) {
        let seen = self.pressure_seen.swap(epoch, Ordering::Relaxed);
        if seen != epoch {
            self.drain_transfer_caches();
        }
    }

    /// Gives back to their spans one `parts`th of the batches parked in
    /// every transfer cache (rounded up; all of them for 0 or 1): called
    /// when a thread exits with `parts` threads left, so that what the
    /// threads parked shrinks with them and is all back once one is left,
    /// at a cost spread over the exits. Returns the objects moved.
    pub fn drain_share(&self, parts: usize) -> usize {
        self.parked_classes()
            .map(|class| {
                let parked = self.classes[class as usize].transfer.lock().len();
                self.drain_class(class, parked.div_ceil(parts.max(1)))
            })
            .sum()
    }

    /// Gives back to their spans the batches every transfer cache held
    /// unused since the last call. Returns the objects moved.
    #[cold]
    pub fn drain_idle_transfer_caches(&self) -> usize {
        self.parked_classes()
            .map(|class| {
                let idle = self.classes[class as usize].transfer.lock().take_idle();
                self.drain_class(class, idle)
            })
            .sum()
    }

    /// Whether `obj` is parked, free, in the transfer cache of `class`: a
    /// search under the class's transfer lock, for confirming a suspected
    /// double free.
    pub fn transfer_holds(&self, class: u8, obj: *mut u8) -> bool {
        self.classes[class as usize].transfer.lock().holds(obj)
    }

    /// Whether `obj` is a free object of `class` in its span (freed back to
    /// it, not merely never carved): a free of it now would be a second one.
    /// Takes the class's central lock; for the checks of a suspected double
    /// free, not for the fast path.
    pub fn span_holds(&self, class: u8, obj: *mut u8) -> bool {
        let Some(span) = self.pages.span_of(obj as usize) else {
            return false;
        };
        let _central = self.classes[class as usize].central.lock();
        // SAFETY: span records are never unmapped; a span of this class
        // keeps its class and bitmap while the class lock is held.
        let s = unsafe { span.as_ref() };
        if s.size_class() != class || s.free_bits.is_null() {
            return false;
        }
        // SAFETY: the bitmap covers the span's objects, and `i` is one of
        // the carved ones.
        central_list::carved_index(s, class, obj)
            .is_some_and(|i| unsafe { free_bits::is_set(s.free_bits, i) })
    }

    /// Moves every batch parked in the transfer caches back into its spans,
    /// so that spans left empty return to the page heap (and can be
    /// released to the OS). Returns the objects moved.
    pub fn drain_transfer_caches(&self) -> usize {
        self.parked_classes()
            .map(|class| self.drain_class(class, usize::MAX))
            .sum()
    }

    /// Moves up to `objects` parked objects of `class` back into their
    /// spans, a batch at a time. Returns the objects moved.
    fn drain_class(&self, class: u8, mut objects: usize) -> usize {
        let batch = CLASSES[class as usize].batch as usize;
        let mut objs = [ptr::null_mut(); transfer::MAX_BATCH];
        let mut moved = 0;
        while objects > 0 {
            let got = self.pop_parked(class, &mut objs[..batch.min(objects)]);
            if got == 0 {
                break;
            }
            objects -= got;
            // SAFETY: parked free objects of this class; `release_to_spans`
            // never parks them again.
            unsafe { self.release_to_spans(class, &objs[..got]) };
            moved += got;
        }
        moved
    }

    /// Accounting for one class.
    pub fn class_stats(&self, class: u8) -> ClassStats {
        let lists = &self.classes[class as usize];
        let transfer = lists.transfer.lock().len();
        let central = lists.central.lock();
        ClassStats {
            spans: central.spans,
            span_free_objects: central.free_objects,
            transfer_objects: transfer,
            uncarved_objects: central.uncarved_objects,
        }
    }

    /// Takes every class lock before `fork`.
    pub fn fork_prepare(&self) {
        for c in self.classes.iter() {
            c.transfer.fork_prepare();
            c.central.fork_prepare();
        }
        self.bitmaps.fork_prepare();
    }

    /// Releases the class locks in the parent after `fork`.
    ///
    /// # Safety
    /// After [`Central::fork_prepare`] on this thread.
    pub unsafe fn fork_parent(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.bitmaps.fork_parent() };
        for c in self.classes.iter() {
            // SAFETY: forwarded contract.
            unsafe {
                c.central.fork_parent();
                c.transfer.fork_parent();
            }
        }
    }

    /// Resets the class locks in the child after `fork`.
    ///
    /// # Safety
    /// In the child, after [`Central::fork_prepare`] in the parent.
    pub unsafe fn fork_child(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.bitmaps.fork_child() };
        for c in self.classes.iter() {
            // SAFETY: forwarded contract.
            unsafe {
                c.central.fork_child();
                c.transfer.fork_child();
            }
        }
    }
}
