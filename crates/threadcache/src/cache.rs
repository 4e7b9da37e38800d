//! One thread's cache: a free list per size class.
//!
//! # The fast path
//! `alloc` pops the head of its class's list; `free` pushes onto it. No lock,
//! no atomic read-modify-write: the cache belongs to one thread. Each list
//! keeps a length, an adaptive maximum and a low-water mark; the cache keeps
//! its total bytes against a budget.
//!
//! # Adapting
//! - A list that runs dry fetches a batch from the central layer and raises
//!   its maximum (by one up to the batch size, then by a batch), so a thread
//!   that allocates a lot from one class moves whole batches, and a thread
//!   that allocates little holds little.
//! - A list that grows past its maximum gives a batch back; a list that does
//!   so repeatedly has its maximum lowered.
//! - When the cache exceeds its byte budget it gives back half of what each
//!   list did not use since the last time (the low-water mark).
//!
//! # Invariants
//! - `len` is the number of objects linked from `head`; `size` is the sum of
//!   `len * object_size` over the lists.
//! - Only the owning thread touches a cache, except at thread exit (its
//!   destructor) and in the registry's statistics, which read the published
//!   size only.

use core::ptr;

use crate::sync::{AtomicUsize, Ordering};
use crate::Backend;

/// Size classes a cache has room for (the backend's class indices must be
/// below this).
pub const MAX_CLASSES: usize = 128;

/// Longest a list may grow.
const MAX_LEN: u32 = 8192;

/// Overflows tolerated before a list's maximum is lowered.
const MAX_OVERAGES: u32 = 3;

#[repr(C)]
#[derive(Clone, Copy)]
struct FreeList {
    head: *mut u8,
    len: u32,
    max_len: u32,
    low_water: u32,
    object_size: u32,
    overages: u32,
    batch: u32,
}

impl FreeList {
    const EMPTY: FreeList = FreeList {
        head: ptr::null_mut(),
        len: 0,
        max_len: 1,
        low_water: 0,
        object_size: 0,
        overages: 0,
        batch: 0,
    };

    /// Detaches the first `n` objects (1 <= n <= len) as a null-terminated
    /// list and returns its head.
    fn detach(&mut self, n: u32) -> *mut u8 {
        let head = self.head;
        let mut last = head;
        for _ in 1..n {
            // SAFETY: the list has at least n linked objects.
            last = unsafe { (last as *mut *mut u8).read() };
        }
        // SAFETY: `last` is the n-th object; the detached list is
        // null-terminated so whoever receives it can walk it by links alone.
        unsafe {
            self.head = (last as *mut *mut u8).read();
            (last as *mut *mut u8).write(ptr::null_mut());
        }
        self.len -= n;
        if self.low_water > self.len {
            self.low_water = self.len;
        }
        head
    }
}

/// A thread's cache of free objects.
#[repr(C)]
pub struct ThreadCache {
    size: usize,
    max_size: usize,
    lists: [FreeList; MAX_CLASSES],
    /// The size as last published for statistics (slow paths only).
    pub(crate) published: AtomicUsize,
    pub(crate) registry: *const (),
    pub(crate) slot: *const crate::Slot,
    pub(crate) prev: *mut ThreadCache,
    pub(crate) next: *mut ThreadCache,
}

impl ThreadCache {
    /// Initialises a cache in place.
    ///
    /// # Safety
    /// `this` points to writable memory for a `ThreadCache`.
    pub(crate) unsafe fn init<B: Backend>(this: *mut ThreadCache, backend: &B, max_size: usize) {
        // SAFETY: writable memory for a ThreadCache; every field is written.
        unsafe {
            this.write(ThreadCache {
                size: 0,
                max_size,
                lists: [FreeList::EMPTY; MAX_CLASSES],
                published: AtomicUsize::new(0),
                registry: ptr::null(),
                slot: ptr::null(),
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
            });
            let c = &mut *this;
            for class in 1..backend.num_classes().min(MAX_CLASSES) {
                let l = &mut c.lists[class];
                l.object_size = backend.class_size(class as u8) as u32;
                l.batch = backend.batch_size(class as u8) as u32;
            }
        }
    }

    /// Pops an object of `class`, or null if the list is empty.
    #[inline(always)]
    pub fn pop(&mut self, class: u8) -> *mut u8 {
        let l = &mut self.lists[class as usize];
        let head = l.head;
        if head.is_null() {
            return head;
        }
        // SAFETY: a cached object holds the next link in its first word.
        l.head = unsafe { (head as *mut *mut u8).read() };
        l.len -= 1;
        if l.len < l.low_water {
            l.low_water = l.len;
        }
        self.size -= l.object_size as usize;
        head
    }

    /// Pushes a freed object of `class`. Returns false when the list or the
    /// cache went over its limit and the slow path must run.
    ///
    /// # Safety
    /// `obj` is a free object of `class`, at least 8 bytes, owned by nobody.
    #[inline(always)]
    pub unsafe fn push(&mut self, obj: *mut u8, class: u8) -> bool {
        let l = &mut self.lists[class as usize];
        // SAFETY: the object is ours and big enough for a link.
        unsafe { (obj as *mut *mut u8).write(l.head) };
        l.head = obj;
        l.len += 1;
        self.size += l.object_size as usize;
        l.len <= l.max_len && self.size <= self.max_size
    }

    /// Refills an empty list from the backend and returns one object, or null
    /// when memory ran out.
    #[inline(never)]
    pub fn refill<B: Backend>(&mut self, backend: &B, class: u8) -> *mut u8 {
        let l = &mut self.lists[class as usize];
        let batch = l.batch;
        let want = l.max_len.min(batch).max(1);
        let (head, got) = backend.alloc_batch(class, want as usize);
        if got == 0 {
            return ptr::null_mut();
        }
        // Slow start: grow by one up to a batch, then by batches.
        l.max_len = if l.max_len < batch {
            l.max_len + 1
        } else {
            (l.max_len + batch).min(MAX_LEN)
        };
        // SAFETY: `got` linked objects; the first is returned, the rest cached.
        l.head = if got > 1 {
            unsafe { (head as *mut *mut u8).read() }
        } else {
            ptr::null_mut()
        };
        l.len = got as u32 - 1;
        self.size += l.len as usize * l.object_size as usize;
        self.publish();
        head
    }

    /// Slow path after a `push` that returned false.
    #[inline(never)]
    pub fn overflow<B: Backend>(&mut self, backend: &B, class: u8) {
        let l = &mut self.lists[class as usize];
        if l.len > l.max_len {
            let batch = l.batch;
            // Give back a batch (or everything over the maximum when smaller).
            let n = batch.min(l.len);
            self.release(backend, class, n);
            let l = &mut self.lists[class as usize];
            if l.max_len < batch {
                l.max_len += 1;
            } else {
                l.overages += 1;
                if l.overages > MAX_OVERAGES {
                    l.max_len = (l.max_len - batch).max(batch);
                    l.overages = 0;
                }
            }
        }
        if self.size > self.max_size {
            self.scavenge(backend);
        }
        self.publish();
    }

    /// Gives `n` objects of `class` back, in batches so whole batches can
    /// land in the transfer cache.
    fn release<B: Backend>(&mut self, backend: &B, class: u8, mut n: u32) {
        let l = &mut self.lists[class as usize];
        let object_size = l.object_size as usize;
        let batch = l.batch.max(1);
        while n > 0 {
            let k = n.min(batch);
            let l = &mut self.lists[class as usize];
            let head = l.detach(k);
            self.size -= k as usize * object_size;
            // SAFETY: k linked free objects of this class.
            unsafe { backend.free_batch(class, head, k as usize) };
            n -= k;
        }
    }

    /// Gives back half of what each list left unused since the last scavenge;
    /// if the cache is still over budget (every list busy), half of each list.
    fn scavenge<B: Backend>(&mut self, backend: &B) {
        for class in 1..MAX_CLASSES {
            let l = &self.lists[class];
            let low = l.low_water.min(l.len);
            if low > 0 {
                self.release(backend, class as u8, low.div_ceil(2));
                let l = &mut self.lists[class];
                if l.max_len > l.batch {
                    l.max_len = (l.max_len - l.batch).max(l.batch);
                }
            }
            let l = &mut self.lists[class];
            l.low_water = l.len;
        }
        if self.size > self.max_size {
            for class in 1..MAX_CLASSES {
                let n = self.lists[class].len;
                if n > 0 {
                    self.release(backend, class as u8, n.div_ceil(2));
                    let l = &mut self.lists[class];
                    l.low_water = l.len;
                }
            }
        }
    }

    /// Gives every cached object back (thread exit, or on request).
    pub fn flush<B: Backend>(&mut self, backend: &B) {
        for class in 1..MAX_CLASSES {
            let n = self.lists[class].len;
            if n > 0 {
                self.release(backend, class as u8, n);
            }
            self.lists[class].low_water = 0;
        }
        self.publish();
    }

    fn publish(&self) {
        self.published.store(self.size, Ordering::Relaxed);
    }

    /// Bytes held in this cache.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Objects held for `class`.
    pub fn len(&self, class: u8) -> usize {
        self.lists[class as usize].len as usize
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}
