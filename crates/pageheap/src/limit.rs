//! A soft limit on the memory the heap holds: as the process nears it, free
//! memory goes back to the OS before the heap grows, so that a program in a
//! container gives back what it does not use before the kernel's OOM killer
//! acts on what it does.
//!
//! The limit is the smaller of the one set by the owner
//! ([`PageHeap::set_memory_limit`], `STRATA_MEMORY_LIMIT`) and the cgroup's
//! ([`strata_os::Os::memory_limit`]), which is read on the first decay pass
//! and again every [`REFRESH_PASSES`] passes (a few file reads every few
//! seconds of activity). The heap measures itself by its own accounting
//! (pages in use, free but dirty, huge mappings, metadata): no system call.
//!
//! When the heap, with what it is about to grow by, would pass seven
//! eighths of the limit, it releases every free page and bumps a pressure
//! epoch; the layers above watch the epoch and give back what they cache
//! (transfer caches, thread caches on their next periodic check), which the
//! next release returns to the OS.

use strata_os::Os;

use crate::sync::{AtomicU32, AtomicUsize, Ordering};
use crate::{PageHeap, PAGE_SHIFT};

/// Decay passes between two reads of the cgroup's limit.
const REFRESH_PASSES: u32 = 16;

/// No limit.
const NONE: usize = usize::MAX;

/// Both limits are stored inverted (`!bytes`), so that "none" is zero and a
/// heap in a static is all zero bytes (`.bss`, no memory until written).
pub(crate) struct MemoryLimit {
    /// `!bytes`, from the owner; 0 (`!NONE`) if unset.
    user: AtomicUsize,
    /// `!bytes`, from the cgroup when last read; 0 (`!NONE`) if none.
    cgroup: AtomicUsize,
    /// Bumped on every release under pressure.
    epoch: AtomicU32,
    /// Decay passes since the cgroup was last read.
    passes: AtomicU32,
}

impl MemoryLimit {
    strata_base::const_unless_loom! {
        pub(crate) fn new() -> MemoryLimit {
            MemoryLimit {
                user: AtomicUsize::new(!NONE),
                cgroup: AtomicUsize::new(!NONE),
                epoch: AtomicU32::new(0),
                passes: AtomicU32::new(0),
            }
        }
    }

    /// The limit in force, in bytes (`NONE` if none).
    fn bytes(&self) -> usize {
        // The lower of two limits is the higher of their inverses.
        !self
            .user
            .load(Ordering::Relaxed)
            .max(self.cgroup.load(Ordering::Relaxed))
    }
}

impl<O: Os> PageHeap<O> {
    /// Sets a soft limit on the memory the heap holds (`None`: only the
    /// cgroup's, if any): near it, free memory is released before the heap
    /// grows, and the layers above are asked to give back what they cache.
    pub fn set_memory_limit(&self, bytes: Option<usize>) {
        self.limit
            .user
            .store(!bytes.unwrap_or(NONE), Ordering::Relaxed);
    }

    /// The limit in force: the owner's or the cgroup's, whichever is lower.
    pub fn memory_limit(&self) -> Option<usize> {
        Some(self.limit.bytes()).filter(|&b| b != NONE)
    }

    /// Changes each time the heap released memory because it neared its
    /// limit: the layers above give back what they cache when it changes.
    #[inline]
    pub fn pressure_epoch(&self) -> u32 {
        self.limit.epoch.load(Ordering::Relaxed)
    }

    /// Before the heap takes `bytes` more from the OS (outside the lock):
    /// near the limit, release what is free first.
    pub(crate) fn make_room(&self, bytes: usize) {
        let limit = self.limit.bytes();
        if limit != NONE && self.held_bytes().saturating_add(bytes) > limit - limit / 8 {
            self.relieve();
        }
    }

    /// On each decay pass: reads the cgroup's limit now and then, and
    /// releases if the heap is near the limit already.
    pub(crate) fn limit_pass(&self) {
        if self.limit.passes.fetch_add(1, Ordering::Relaxed) % REFRESH_PASSES == 0 {
            let cgroup = self.os.memory_limit().unwrap_or(NONE);
            self.limit.cgroup.store(!cgroup, Ordering::Relaxed);
        }
        let limit = self.limit.bytes();
        if limit != NONE && self.held_bytes() > limit - limit / 8 {
            self.relieve();
        }
    }

    /// Bytes the heap holds that may be resident (its own accounting).
    fn held_bytes(&self) -> usize {
        let pages = self.state.lock().resident();
        (pages << PAGE_SHIFT) + self.records.mapped_bytes()
    }

    #[cold]
    fn relieve(&self) {
        self.limit.epoch.fetch_add(1, Ordering::Relaxed);
        self.release_free_memory();
    }
}
