//! The central free list of one size class: the spans that still have free
//! objects, and the carving of objects out of them.
//!
//! Spans are filed in [`BUCKETS`] lists by how full they are, and objects are
//! always taken from the fullest span that has one. Nearly empty spans are
//! left alone, so their remaining objects come home and the span goes back to
//! the page heap instead of lingering with one object in use.
//!
//! A new span is not threaded into a free list up front: objects are carved
//! from its start as they are needed (`carved`), so pages nobody asked for are
//! never touched (and stay unfaulted). Objects that come back are marked in
//! the span's bitmap ([`crate::free_bits`]), never written to, and handed
//! out again lowest address first, before any more are carved.
//!
//! # Invariants
//! - A span is in a bucket list exactly when it has a free object (one
//!   freed back to it or an uncarved one): `allocated < capacity`.
//! - `allocated` counts the span's objects outside it (in thread caches,
//!   transfer caches, or with the program); a span with `allocated == 0`
//!   goes back to the page heap, and its bitmap to the pool.
//! - `allocated <= carved <= capacity`: only carved objects go out, and no
//!   more are carved than the span holds; the span's bitmap has exactly
//!   `carved - allocated` bits set, all below `carved`.

use core::ptr::NonNull;

use strata_pageheap::{Span, SpanList};

use crate::free_bits;
use crate::size_class::{object_index, ClassInfo};

/// Occupancy buckets.
pub(crate) const BUCKETS: usize = 4;

/// Spans [`CentralList::carve`] looks at in each bucket, at most.
const CARVE_LOOKS: usize = 4;

/// The spans of one class that have free objects.
pub(crate) struct CentralList {
    buckets: [SpanList; BUCKETS],
    /// Spans handed out by the page heap and not yet returned.
    pub(crate) spans: usize,
    /// Free objects held in spans (linked or uncarved).
    pub(crate) free_objects: usize,
    /// Of those, objects never carved (their pages may never have been
    /// touched, so they may cost no memory).
    pub(crate) uncarved_objects: usize,
}

impl CentralList {
    pub(crate) const fn new() -> Self {
        CentralList {
            buckets: [const { SpanList::new() }; BUCKETS],
            spans: 0,
            free_objects: 0,
            uncarved_objects: 0,
        }
    }

    fn bucket_of(span: &Span) -> usize {
        debug_assert!(
            span.allocated <= span.carved && span.carved <= span.capacity,
            "a span with more objects out than carved, or carved than it holds"
        );
        (span.allocated as usize * BUCKETS / span.capacity as usize).min(BUCKETS - 1)
    }

    fn has_free(span: &Span) -> bool {
        span.allocated < span.capacity
    }

    /// Files a span that just gained its first free object or a new span.
    ///
    /// # Safety
    /// `s` is a valid span of this class in no list.
    pub(crate) unsafe fn file(&mut self, s: *mut Span) {
        // SAFETY: caller's contract.
        unsafe {
            let b = Self::bucket_of(&*s);
            (*s).bucket = b as u8;
            self.buckets[b].push(s);
        }
    }

    /// Adds a fresh span from the page heap, which holds as many objects
    /// as fit its pages (the class's count, or more where the page heap
    /// rounded the span up to whole OS pages), with `bits`, a zeroed bitmap
    /// of [`free_bits::words_for`] that many objects. Returns how many
    /// objects it holds.
    ///
    /// # Safety
    /// `s` is a new small-object span of this class with nothing carved, and
    /// `bits` is the span's own bitmap, of [`span_objects`] bits.
    pub(crate) unsafe fn add_span(
        &mut self,
        s: *mut Span,
        info: &ClassInfo,
        bits: *mut u64,
    ) -> u32 {
        // SAFETY: caller's contract.
        let objects = unsafe {
            let objects = span_objects(&*s, info);
            debug_assert!(objects >= info.objects, "a span shorter than its class's");
            debug_assert!(
                (*s).allocated == 0 && (*s).carved == 0 && (*s).free_bits.is_null(),
                "a new span with objects carved"
            );
            (*s).free_bits = bits;
            (*s).bits_from = 0;
            (*s).capacity = objects;
            objects as usize
        };
        self.spans += 1;
        self.free_objects += objects;
        self.uncarved_objects += objects;
        // SAFETY: caller's contract.
        unsafe { self.file(s) };
        objects as u32
    }

    /// Takes span `s` out of the lists if none of its objects is handed out
    /// (a fresh span that `take` did not need): the caller gives it back to
    /// the page heap, and its bitmap to the pool. Returns whether it did.
    ///
    /// # Safety
    /// `s` is a span of this class in one of the lists; the lock is held.
    pub(crate) unsafe fn withdraw_if_unused(&mut self, s: *mut Span) -> bool {
        // SAFETY: caller's contract.
        let span = unsafe { &*s };
        if span.allocated != 0 {
            return false;
        }
        // SAFETY: caller's contract: the span is in its bucket's list.
        unsafe { self.buckets[span.bucket as usize].remove(s) };
        self.spans -= 1;
        self.free_objects -= span.capacity as usize;
        self.uncarved_objects -= (span.capacity - span.carved) as usize;
        true
    }

    /// Takes up to `out.len()` objects into `out[..count]` and returns the
    /// count, 0 when no span has a free object. The objects are stored as a
    /// stack: the last one is the first the span gave (for a fresh span, the
    /// lowest address), so popping from the end hands them out in address
    /// order. Nothing is written to the objects.
    pub(crate) fn take(&mut self, out: &mut [*mut u8], info: &ClassInfo) -> usize {
        let n = out.len();
        let mut got = 0;
        while got < n {
            let Some(b) = (0..BUCKETS).rev().find(|&b| !self.buckets[b].is_empty()) else {
                break;
            };
            let s = self.buckets[b].first();
            // SAFETY: spans in the lists are valid, in use by this class, and
            // only touched under this class's lock (held by the caller).
            unsafe {
                self.buckets[b].remove(s);
                let span = &mut *s;
                while got < n && Self::has_free(span) {
                    if span.allocated == span.carved {
                        self.uncarved_objects -= 1;
                    }
                    out[got] = pop_object(span, info);
                    got += 1;
                }
                if Self::has_free(span) {
                    self.file(s);
                }
            }
        }
        self.free_objects -= got;
        out[..got].reverse();
        got
    }

    /// Carves up to `out.len()` objects never handed out before, all from
    /// one span, into `out` as [`CentralList::take`] stores them (the last
    /// one is the lowest address); 0 if none of the spans it looks at has
    /// such objects. Looks at the first [`CARVE_LOOKS`] spans of each
    /// bucket only: the span being carved is a recent one, near the front.
    pub(crate) fn carve(&mut self, out: &mut [*mut u8], info: &ClassInfo) -> usize {
        let Some(s) = self.buckets.iter().find_map(|list| {
            list.iter()
                .take(CARVE_LOOKS)
                // SAFETY: spans in the lists are valid, and only touched under
                // this class's lock (held by the caller).
                .find(|&s| unsafe { (*s).carved < (*s).capacity })
        }) else {
            return 0;
        };
        // SAFETY: as above; the span is in its bucket's list.
        unsafe {
            let span = &mut *s;
            self.buckets[span.bucket as usize].remove(s);
            let n = out.len().min((span.capacity - span.carved) as usize);
            for o in out[..n].iter_mut().rev() {
                *o = carve_object(span, info);
            }
            self.uncarved_objects -= n;
            self.free_objects -= n;
            if Self::has_free(span) {
                self.file(s);
            }
            n
        }
    }

    /// Returns one object of `class` to its span. Returns the span if it
    /// became entirely free: the caller gives it back to the page heap, and
    /// its bitmap to the pool.
    ///
    /// An object already free in its span, one its span never handed out,
    /// or any object of a span none of whose objects is out, cannot be taken
    /// back: the object was freed twice (a double free the thread caches did
    /// not see) or never allocated. The program stops with a message rather
    /// than handing the object out twice or the span back to the page heap
    /// while its objects may still be in use.
    ///
    /// # Safety
    /// `obj` lies in span `s`, which is of this class, `class`.
    pub(crate) unsafe fn put(
        &mut self,
        s: *mut Span,
        obj: *mut u8,
        class: u8,
    ) -> Option<NonNull<Span>> {
        // SAFETY: caller's contract; the lock is held.
        unsafe {
            let span = &mut *s;
            let i = match carved_index(span, class, obj) {
                Some(i) if span.allocated != 0 && free_bits::set(span.free_bits, i) => i,
                _ => double_free(obj),
            };
            self.free_objects += 1;
            let had_free = Self::has_free(span);
            span.bits_from = span.bits_from.min((i / 64) as u32);
            span.allocated -= 1;
            if span.allocated == 0 {
                if had_free {
                    self.buckets[span.bucket as usize].remove(s);
                }
                self.spans -= 1;
                self.free_objects -= span.capacity as usize;
                self.uncarved_objects -= (span.capacity - span.carved) as usize;
                return NonNull::new(s);
            }
            if !had_free {
                self.file(s);
            } else {
                let b = Self::bucket_of(span);
                if b != span.bucket as usize {
                    self.buckets[span.bucket as usize].remove(s);
                    span.bucket = b as u8;
                    self.buckets[b].push(s);
                }
            }
        }
        None
    }
}

/// The objects a span of this class holds: as many as fit its pages (the
/// class's count, or more where the page heap rounded the span up to whole
/// OS pages).
pub(crate) fn span_objects(span: &Span, info: &ClassInfo) -> u32 {
    (span.len_bytes() / info.size as usize) as u32
}

/// The index of `obj` among the objects of `class` carved so far from
/// `span`, or `None` if it is not the start of one of them.
#[inline]
pub(crate) fn carved_index(span: &Span, class: u8, obj: *mut u8) -> Option<usize> {
    let i = object_index(class, (obj as usize).wrapping_sub(span.start_addr()));
    (i < u64::from(span.carved)).then_some(i as usize)
}

/// Stops the program over an object freed twice.
#[cold]
#[inline(never)]
pub(crate) fn double_free(obj: *mut u8) -> ! {
    let addr = strata_os::Hex::new(obj as usize);
    strata_os::fatal_parts(&[
        b"strata: free(",
        addr.as_bytes(),
        b"): block is not allocated (double free?)\n",
    ])
}

/// Pops one object from a span that has one: the lowest freed back to it,
/// or else the next never carved.
///
/// # Safety
/// The span has a free object; the class lock is held.
unsafe fn pop_object(span: &mut Span, info: &ClassInfo) -> *mut u8 {
    debug_assert!(
        span.allocated < span.capacity,
        "more objects out than the span holds"
    );
    if span.allocated < span.carved {
        // SAFETY: `carved - allocated` bits are set, all inside the bitmap,
        // none below `bits_from`.
        let i = unsafe { free_bits::take_lowest(span.free_bits, &mut span.bits_from) };
        debug_assert!(
            i < span.carved as usize,
            "a free bit past the carved objects"
        );
        span.allocated += 1;
        return (span.start_addr() + i * info.size as usize) as *mut u8;
    }
    // SAFETY: caller's contract.
    unsafe { carve_object(span, info) }
}

/// Carves the span's next object, never handed out before.
///
/// # Safety
/// `span` is a span of this class with `carved < capacity`; the lock is held.
unsafe fn carve_object(span: &mut Span, info: &ClassInfo) -> *mut u8 {
    debug_assert!(span.carved < span.capacity, "a span carved past its end");
    span.allocated += 1;
    let obj = span.start_addr() + span.carved as usize * info.size as usize;
    span.carved += 1;
    // The checked build recognises a freed object by a tag in its second
    // word; a fresh object may sit where a freed one of the same class once
    // did (the pages were reused since), so its stale tag is cleared.
    #[cfg(feature = "checked")]
    if info.size >= 16 {
        // SAFETY: a fresh object of at least 16 bytes, owned by the caller
        // from now on.
        unsafe { (obj as *mut usize).add(1).write(0) };
    }
    obj as *mut u8
}
