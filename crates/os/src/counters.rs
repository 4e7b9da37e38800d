//! System-call counters, shared by every [`crate::Os`] implementation so that a
//! user (through `strata::stats()`) can see what the allocator asked of the
//! kernel. Relaxed atomics: these are statistics, never used for control,
//! so they are core's atomics even where the loom models run.

use core::sync::atomic::{AtomicU64, Ordering};

/// Running totals of what an [`crate::Os`] did.
pub struct OsCounters {
    maps: AtomicU64,
    unmaps: AtomicU64,
    releases: AtomicU64,
    remaps: AtomicU64,
    populates: AtomicU64,
    residency_queries: AtomicU64,
    mapped_bytes: AtomicU64,
    released_bytes: AtomicU64,
    zeroed_bytes_written: AtomicU64,
}

/// A snapshot of [`OsCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsStats {
    /// `mmap` calls that succeeded.
    pub maps: u64,
    /// `munmap` calls.
    pub unmaps: u64,
    /// `madvise(MADV_DONTNEED)` calls (releases, and zeroing by release).
    pub releases: u64,
    /// `mremap` calls that succeeded.
    pub remaps: u64,
    /// Populate requests (`MADV_POPULATE_WRITE` or touching).
    pub populates: u64,
    /// `mincore` calls.
    pub residency_queries: u64,
    /// Bytes currently mapped from the kernel.
    pub mapped_bytes: u64,
    /// Bytes handed back with `MADV_DONTNEED`, in total.
    pub released_bytes: u64,
    /// Bytes [`crate::Os::zero`] had to write because they were resident.
    pub zeroed_bytes_written: u64,
}

impl OsCounters {
    /// All counters at zero.
    pub const fn new() -> Self {
        OsCounters {
            maps: AtomicU64::new(0),
            unmaps: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            remaps: AtomicU64::new(0),
            populates: AtomicU64::new(0),
            residency_queries: AtomicU64::new(0),
            mapped_bytes: AtomicU64::new(0),
            released_bytes: AtomicU64::new(0),
            zeroed_bytes_written: AtomicU64::new(0),
        }
    }

    pub(crate) fn on_map(&self, len: usize) {
        self.maps.fetch_add(1, Ordering::Relaxed);
        self.mapped_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn on_unmap(&self, len: usize) {
        self.unmaps.fetch_add(1, Ordering::Relaxed);
        self.mapped_bytes.fetch_sub(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn on_release(&self, len: usize) {
        self.releases.fetch_add(1, Ordering::Relaxed);
        self.released_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn on_remap(&self, old_len: usize, new_len: usize) {
        self.remaps.fetch_add(1, Ordering::Relaxed);
        self.mapped_bytes
            .fetch_add(new_len as u64, Ordering::Relaxed);
        self.mapped_bytes
            .fetch_sub(old_len as u64, Ordering::Relaxed);
    }

    pub(crate) fn on_populate(&self) {
        self.populates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn on_residency_query(&self) {
        self.residency_queries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn on_zero_written(&self, len: usize) {
        self.zeroed_bytes_written
            .fetch_add(len as u64, Ordering::Relaxed);
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> OsStats {
        OsStats {
            maps: self.maps.load(Ordering::Relaxed),
            unmaps: self.unmaps.load(Ordering::Relaxed),
            releases: self.releases.load(Ordering::Relaxed),
            remaps: self.remaps.load(Ordering::Relaxed),
            populates: self.populates.load(Ordering::Relaxed),
            residency_queries: self.residency_queries.load(Ordering::Relaxed),
            mapped_bytes: self.mapped_bytes.load(Ordering::Relaxed),
            released_bytes: self.released_bytes.load(Ordering::Relaxed),
            zeroed_bytes_written: self.zeroed_bytes_written.load(Ordering::Relaxed),
        }
    }
}

impl Default for OsCounters {
    fn default() -> Self {
        Self::new()
    }
}
