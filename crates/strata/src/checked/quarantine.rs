//! The quarantine: the last small objects freed wait here, tagged and
//! poisoned, before they go back to a free list, so that a freed object is
//! not the next one handed out. Meanwhile a second free of one is a double
//! free found by its tag, and a write into one is found when it leaves (its
//! poison is checked) instead of corrupting whoever got it next.
//!
//! One ring for the process, under a lock held for a few instructions (the
//! checks and the poison are written outside it). A ring per thread would
//! need no lock, but thread-local storage has no destructor of its own here
//! (`crate::tls`): the objects in the ring of every thread that exited would
//! be lost, or the thread caches' exit path would have to know about it.
//!
//! # Invariants
//! - At most [`SLOTS`] objects, and at most [`MAX_BYTES`] bytes of them
//!   unless one free's room-making ([`EVICT_BATCH`] objects) fell short.
//! - Every object in the ring is retired ([`super::object::retire`]) and
//!   counted as in use by its span; it leaves in the order it came.
//! - The lock is never held while anything else is called; `fork` takes it
//!   (`fork_prepare`) so the child finds it free.

use strata_base::Lock;

use super::object;
use crate::bad_free::{report, BadFreeKind};
use crate::global::HEAP;
use crate::tls::this_thread;

/// Objects the ring holds at most.
pub(crate) const SLOTS: usize = 256;
/// Bytes of objects the ring holds at most.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// Objects one free may push out to make room.
const EVICT_BATCH: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    ptr: usize,
    class: u8,
}

const EMPTY: Entry = Entry { ptr: 0, class: 0 };

struct Ring {
    slots: [Entry; SLOTS],
    /// The oldest entry.
    head: usize,
    len: usize,
    bytes: usize,
}

impl Ring {
    fn pop(&mut self) -> Entry {
        let e = self.slots[self.head];
        self.head = (self.head + 1) % SLOTS;
        self.len -= 1;
        self.bytes -= strata_central::class_size_of(e.class);
        e
    }
}

static RING: Lock<Ring> = Lock::new(Ring {
    slots: [EMPTY; SLOTS],
    head: 0,
    len: 0,
    bytes: 0,
});

/// Puts the retired object `p` of `class` in quarantine, and sends back to
/// the free lists the oldest objects it pushes out.
///
/// # Safety
/// `p` is a retired object of `class` that nobody uses, not in the ring.
pub(crate) unsafe fn admit(p: *mut u8, class: u8) {
    let size = strata_central::class_size_of(class);
    let mut out = [EMPTY; EVICT_BATCH];
    let mut n = 0;
    {
        let mut r = RING.lock();
        while r.len > 0 && n < EVICT_BATCH && (r.len == SLOTS || r.bytes + size > MAX_BYTES) {
            out[n] = r.pop();
            n += 1;
        }
        let at = (r.head + r.len) % SLOTS;
        r.slots[at] = Entry {
            ptr: p as usize,
            class,
        };
        r.len += 1;
        r.bytes += size;
    }
    for e in &out[..n] {
        // SAFETY: out of the ring, so ours: a retired object of its class.
        unsafe { release(e) };
    }
}

/// Sends every object in quarantine back to the free lists (for
/// [`crate::release_free_memory`]).
pub(crate) fn drain() {
    loop {
        let mut out = [EMPTY; EVICT_BATCH];
        let mut n = 0;
        {
            let mut r = RING.lock();
            while r.len > 0 && n < EVICT_BATCH {
                out[n] = r.pop();
                n += 1;
            }
        }
        if n == 0 {
            return;
        }
        for e in &out[..n] {
            // SAFETY: out of the ring, so ours: a retired object.
            unsafe { release(e) };
        }
    }
}

/// An object leaving quarantine: back to this thread's cache if nobody
/// wrote it meanwhile; reported (and kept out of use) otherwise.
///
/// # Safety
/// `e` was just taken out of the ring.
unsafe fn release(e: &Entry) {
    let p = e.ptr as *mut u8;
    // SAFETY: a retired object of its class, in an in-use span (its span
    // counts it as allocated while it is in quarantine).
    if unsafe { !object::still_retired(p, e.class) } {
        return report(p, BadFreeKind::WriteAfterFree);
    }
    // SAFETY: a free object of this class nobody uses.
    unsafe { HEAP.free(this_thread(), p, e.class) }
}

/// Takes the ring's lock before `fork`.
pub(crate) fn fork_prepare() {
    RING.raw_lock();
}

/// Releases it in the parent.
///
/// # Safety
/// After [`fork_prepare`] on this thread.
pub(crate) unsafe fn fork_parent() {
    // SAFETY: caller's contract: this thread holds the lock.
    unsafe { RING.raw_unlock() }
}

/// Frees it in the child.
///
/// # Safety
/// In the child of a `fork` whose parent ran [`fork_prepare`].
pub(crate) unsafe fn fork_child() {
    // SAFETY: caller's contract.
    unsafe { RING.reset_in_child() }
}
