//! Where a cache's lists keep their pointers: one mapping per cache,
//! reserved whole, with small first stacks (one per class, at its place)
//! and middle stacks (handed out in turn) packed together (committed at
//! once: a page costs memory only once a list writes it), and an own stack
//! per class committed when the list's maximum outgrows its middle one
//! (see the parent module's invariants).

use core::ptr;

use strata_os::Os;

use super::{ThreadCache, MID_STACK, SLACK, SLOTS_PER_CLASS, SMALL_STACK};

impl ThreadCache {
    /// The stacks' mapping for `nclasses` classes and OS pages of `page`
    /// bytes: the own stacks' stride, and the offset and length of the
    /// packed stacks after them (the first stacks, then the middle ones;
    /// whole pages).
    pub(super) fn slots_layout(nclasses: usize, page: usize) -> (usize, usize, usize) {
        let word = core::mem::size_of::<*mut u8>();
        let stride = (SLOTS_PER_CLASS as usize * word).next_multiple_of(page);
        let packed = (nclasses * (SMALL_STACK + MID_STACK) as usize * word).next_multiple_of(page);
        (stride, nclasses * stride, packed)
    }

    /// The next middle stack not handed out: after the first stacks,
    /// which follow the own stacks (`slots_layout`). They go in the order
    /// lists outgrow their first stacks, not at their classes' places, so
    /// that the few a small program needs share pages (two to a page) even
    /// when their classes are not neighbours. A list moves to a middle
    /// stack at most once, so there is one for every class.
    fn take_mid_stack(&mut self) -> *mut *mut u8 {
        debug_assert!((self.mids_used as usize) < self.nclasses);
        let at = self.nclasses * self.own_stride / core::mem::size_of::<*mut u8>()
            + self.nclasses * SMALL_STACK as usize
            + self.mids_used as usize * MID_STACK as usize;
        self.mids_used += 1;
        // SAFETY: in the cache's mapping: the packed stacks hold
        // MID_STACK entries per class after the first stacks, and fewer
        // than `nclasses` were handed out before.
        unsafe { (self.slots_map as *mut *mut u8).add(at) }
    }

    /// Maps the stacks for `nclasses` classes: reserved, with the packed
    /// first stacks committed, or (an OS without reservations) readable
    /// and writable whole. Returns the mapping, its own stacks' stride and
    /// whether the own stacks need committing; `None` if the OS refused.
    pub(super) fn map_slots<O: Os>(os: &O, nclasses: usize) -> Option<(*mut u8, usize, bool)> {
        let (stride, small_at, small) = Self::slots_layout(nclasses, os.page_size());
        let total = small_at + small;
        match os.reserve(total, 1) {
            Ok(m) => {
                // SAFETY: the packed stacks are a page-aligned, uncommitted
                // part of the reservation just made.
                let first = unsafe { ptr::NonNull::new_unchecked(m.as_ptr().add(small_at)) };
                // SAFETY: as above.
                if unsafe { os.commit(first, small) }.is_err() {
                    // SAFETY: our reservation, nothing committed.
                    unsafe { os.unreserve(m, total) };
                    return None;
                }
                Some((m.as_ptr(), stride, true))
            }
            Err(_) => os.map(total, 1).ok().map(|m| (m.as_ptr(), stride, false)),
        }
    }

    /// Makes `class`'s own stack usable (committing it on first use).
    /// False if the OS refused: the list stays on its first stack.
    fn commit_own_stack<O: Os>(&mut self, os: &O, class: usize) -> bool {
        let (word, bit) = (class / 64, 1u64 << (class % 64));
        if self.committed[word] & bit != 0 {
            return true;
        }
        // SAFETY: the class's own stack is a page-aligned part of the
        // cache's reservation, not committed before (its bit is clear).
        let ok = unsafe {
            let at = ptr::NonNull::new_unchecked(self.slots_map.add(class * self.own_stride));
            os.commit(at, self.own_stride).is_ok()
        };
        if ok {
            self.committed[word] |= bit;
        }
        ok
    }

    /// Sets a list's maximum, keeping `capacity` in step, and moves the
    /// list to its middle stack, or its own, if the one it is on has no
    /// room for it (or keeps the maximum within its stack if the OS
    /// refuses the own one).
    pub(super) fn set_max<O: Os>(&mut self, os: &O, class: usize, max_len: u32) {
        let size = self.info[class].object_size as usize;
        let mut max_len = max_len;
        if max_len + SLACK > self.lists[class].cap && max_len + SLACK <= MID_STACK {
            // Only from a first stack (the only smaller one): once per list.
            let to = self.take_mid_stack();
            // SAFETY: a middle stack no list used: MID_STACK entries in the
            // committed packed part of the mapping, apart from the first.
            unsafe { self.move_list(class, to, MID_STACK) };
        }
        if max_len + SLACK > self.lists[class].cap {
            if self.commit_own_stack(os, class) {
                // SAFETY: the class's own stack: SLOTS_PER_CLASS entries
                // from `class * own_stride` bytes of the cache's mapping,
                // committed just now, apart from the packed stacks.
                unsafe {
                    let to = self.slots_map.add(class * self.own_stride) as *mut *mut u8;
                    self.move_list(class, to, SLOTS_PER_CLASS);
                }
            } else {
                max_len = self.lists[class].cap - SLACK;
            }
        }
        let l = &mut self.lists[class];
        debug_assert!(max_len + SLACK <= l.cap, "a list's maximum past its stack");
        self.capacity = self.capacity - l.max_len as usize * size + max_len as usize * size;
        l.max_len = max_len;
    }

    /// Moves `class`'s list to the stack at `to`, of `cap` entries.
    ///
    /// # Safety
    /// `to` is committed room for `cap` entries, at least the list's
    /// length, that does not overlap the stack the list is on.
    unsafe fn move_list(&mut self, class: usize, to: *mut *mut u8, cap: u32) {
        let l = &mut self.lists[class];
        debug_assert!(l.len <= cap);
        // SAFETY: the caller's contract; the list's `len` entries are live.
        unsafe { ptr::copy_nonoverlapping(l.slots, to, l.len as usize) };
        l.slots = to;
        l.cap = cap;
    }
}
