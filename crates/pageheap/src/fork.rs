//! The heap around `fork`: its locks are taken before the fork and
//! released (parent) or reset (child) after it, so that the child never
//! finds one held by a thread that does not exist there. The parked large
//! blocks ([`crate::kept`]) need nothing: their slots are single words.

use strata_base::ForkLock;
use strata_os::Os;

use crate::PageHeap;

impl<O: Os> PageHeap<O> {
    /// Takes the heap's locks before `fork` (call after the layers above took
    /// theirs).
    pub fn fork_prepare(&self) {
        self.arena.map_lock().fork_prepare();
        self.state.fork_prepare();
        self.records.lock_for_fork().fork_prepare();
    }

    /// Releases the locks in the parent after `fork`.
    ///
    /// # Safety
    /// After [`PageHeap::fork_prepare`] on this thread.
    pub unsafe fn fork_parent(&self) {
        // SAFETY: forwarded contract.
        unsafe {
            self.records.lock_for_fork().fork_parent();
            self.state.fork_parent();
            self.arena.map_lock().fork_parent();
        }
    }

    /// Resets the locks in the child after `fork`.
    ///
    /// # Safety
    /// In the child, after [`PageHeap::fork_prepare`] in the parent.
    pub unsafe fn fork_child(&self) {
        // SAFETY: forwarded contract.
        unsafe {
            self.records.lock_for_fork().fork_child();
            self.state.fork_child();
            self.arena.map_lock().fork_child();
        }
    }
}
