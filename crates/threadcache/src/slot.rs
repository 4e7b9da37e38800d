//! A thread's slot: the one word the fast paths read, holding the thread's
//! cache or a sentinel that says why it has none (not made yet, being made,
//! destroyed at thread exit).
//!
//! # Invariants
//! - A slot always holds a cache pointer: a live cache, or one of the
//!   [`SENTINELS`], whose lists are empty with a maximum of zero, so both
//!   fast paths fall through to the slow path without a state check.
//! - The sentinels are never written.
//! - Only the owning thread writes its slot.

use core::cell::Cell;
use core::ptr::NonNull;

use crate::cache::ThreadCache;

/// The states of a thread with no live cache, each a static, all-zero
/// [`ThreadCache`] whose lists are empty with maximum zero. A slot always
/// holds a cache pointer, so the fast paths need no state check: an
/// allocation from a sentinel finds an empty list and a free finds a full
/// one, and both land on the slow path, which tells the states apart.
#[repr(C)]
#[doc(hidden)]
pub struct Sentinels([ThreadCache; 3]);

// SAFETY: the sentinels are never written: `pop` only reads an empty list and
// `try_push` refuses a list whose maximum is zero before writing.
unsafe impl Sync for Sentinels {}

/// The sentinel caches. A [`Slot`] starts as this static's address (the
/// `UNINIT` sentinel is the first), so a slot defined outside Rust's
/// `thread_local!` (strata's initial-exec TLS word, written in assembly) is
/// initialised with a relocation to this symbol; see [`Slot::INITIAL_IS_SENTINELS`].
#[doc(hidden)]
pub static SENTINELS: Sentinels = Sentinels([
    ThreadCache::sentinel(),
    ThreadCache::sentinel(),
    ThreadCache::sentinel(),
]);

pub(crate) const UNINIT: usize = 0;
pub(crate) const INITIALISING: usize = 1;
pub(crate) const DESTROYED: usize = 2;

pub(crate) const fn sentinel(state: usize) -> *mut ThreadCache {
    &raw const SENTINELS.0[state] as *mut ThreadCache
}

/// How the fast paths reach the calling thread's [`Slot`]: `word` reads what
/// it holds (the only access on the fast path), `slot` gives the slot itself
/// to the slow paths, which write it. `&Slot` is one (a slot from a
/// `thread_local!`); an owner with a cheaper way to read its thread-local
/// word (strata's initial-exec TLS) implements it on a token type.
///
/// # Safety
/// `word` must return the current content of the calling thread's slot, and
/// `slot` that same slot, which only the calling thread uses.
pub unsafe trait ThreadSlot<'a>: Copy {
    /// The slot's current word.
    fn word(self) -> *mut ThreadCache;
    /// The slot.
    fn slot(self) -> &'a Slot;
}

// SAFETY: a `&Slot` is read and handed on as it is.
unsafe impl<'a> ThreadSlot<'a> for &'a Slot {
    #[inline(always)]
    fn word(self) -> *mut ThreadCache {
        self.0.get()
    }

    #[inline(always)]
    fn slot(self) -> &'a Slot {
        self
    }
}

/// A thread's slot: its cache, or a sentinel saying why it has none. Declare
/// one per thread with a const-initialised `thread_local!`.
#[repr(transparent)]
pub struct Slot(Cell<*mut ThreadCache>);

impl Slot {
    /// A slot is one pointer-sized word whose initial value is the address
    /// of [`SENTINELS`]: what a slot defined in assembly must hold (checked
    /// here at compile time and by a test).
    pub const INITIAL_IS_SENTINELS: () = {
        assert!(core::mem::size_of::<Slot>() == core::mem::size_of::<usize>());
        // sentinel(UNINIT) is &SENTINELS.0[0]: at offset 0 (repr(C)).
        assert!(UNINIT == 0 && core::mem::offset_of!(Sentinels, 0) == 0);
    };

    /// The slot of a thread that has not used the allocator yet.
    pub const fn new() -> Self {
        Slot(Cell::new(sentinel(UNINIT)))
    }

    /// Makes `c`, the thread's new live cache, what the slot holds.
    pub(crate) fn publish(&self, c: *mut ThreadCache) {
        self.0.set(c);
    }

    pub(crate) fn set_state(&self, state: usize) {
        self.0.set(sentinel(state));
    }

    pub(crate) fn is(&self, state: usize) -> bool {
        self.0.get() == sentinel(state)
    }

    /// Whether this thread's cache has been destroyed (thread exit).
    pub fn is_destroyed(&self) -> bool {
        self.is(DESTROYED)
    }

    /// This thread's live cache, if any.
    #[inline]
    pub fn cache(&self) -> Option<NonNull<ThreadCache>> {
        let c = self.0.get();
        let base = sentinel(0) as usize;
        let end = base + core::mem::size_of::<Sentinels>();
        if (base..end).contains(&(c as usize)) {
            None
        } else {
            NonNull::new(c)
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}
