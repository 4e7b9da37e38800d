//! What strata holds and what it asked of the kernel, for users who want to
//! see where their memory is.

use strata_os::Dec;

use crate::layers::Heap;

/// A snapshot of strata's accounting. Byte counts are exact at the moment
/// each layer was read; layers are read one after another, so totals taken
/// while other threads allocate can disagree slightly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes the page heap has mapped for user memory.
    pub mapped_bytes: usize,
    /// Bytes of spans in use: large allocations plus small-object spans.
    pub in_use_bytes: usize,
    /// Bytes in spans in use minus the free objects cached in the layers: an
    /// estimate of what the program holds.
    pub allocated_bytes: usize,
    /// Bytes in free spans that may be resident (returned to the OS after
    /// the decay delay or by `release_free_memory`).
    pub free_dirty_bytes: usize,
    /// Bytes in free spans known to read as zero, not resident.
    pub free_clean_bytes: usize,
    /// Bytes of free objects in thread caches (as last published).
    pub thread_cache_bytes: usize,
    /// Bytes of free objects in central lists and transfer caches.
    pub central_free_bytes: usize,
    /// Of `central_free_bytes`, the batches parked in transfer caches.
    pub transfer_cache_bytes: usize,
    /// Of `central_free_bytes`, free objects inside partly used spans.
    pub span_free_bytes: usize,
    /// Of `span_free_bytes`, objects never carved from their span: pages
    /// that may never have been touched (not resident).
    pub uncarved_bytes: usize,
    /// Bytes of metadata (span records, thread caches) mapped from the OS.
    pub metadata_bytes: usize,
    /// Bytes of strata's memory that may be resident now: spans in use
    /// (less objects never carved from them), free spans not yet given back,
    /// huge blocks in use or cached, and metadata. An upper estimate from
    /// strata's own accounting, with no system call: memory the kernel has
    /// not yet backed (a block allocated and never touched) counts too.
    pub resident_bytes: usize,
    /// The most `resident_bytes` has been since start (metadata as now).
    pub peak_resident_bytes: usize,
    /// Bytes handed back to the OS with `MADV_DONTNEED`, in total.
    pub released_bytes_total: u64,
    /// Bytes in huge blocks (mappings of their own) in use.
    pub huge_in_use_bytes: usize,
    /// Bytes in freed huge mappings kept for reuse.
    pub huge_cached_bytes: usize,
    /// Huge blocks resized by `mremap` instead of copying.
    pub huge_remaps: u64,
    /// Large blocks that `realloc` grew out of the heap into a mapping of
    /// their own (one copy; their later growth is an `mremap`).
    pub large_moves: u64,
    /// Decay passes that released memory.
    pub decay_releases: u64,
    /// The decay delay in force (ms).
    pub decay_ms: u64,
    /// Thread caches alive.
    pub thread_caches: usize,
    /// `mmap` calls.
    pub mmap_calls: u64,
    /// `munmap` calls.
    pub munmap_calls: u64,
    /// `madvise(MADV_DONTNEED)` calls.
    pub release_calls: u64,
    /// `mremap` calls.
    pub mremap_calls: u64,
    /// `mincore` calls.
    pub mincore_calls: u64,
    /// Bytes zeroing had to write because they were resident.
    pub zeroed_bytes_written: u64,
}

/// Reads the accounting of every layer of `heap`.
pub(crate) fn collect(heap: &Heap) -> Stats {
    let pages = heap.backend().pages();
    let ph = pages.stats();
    let os = strata_os::Os::counters(pages.os()).snapshot();
    let tc = heap.stats();
    let (mut transfer, mut span_free, mut uncarved) = (0, 0, 0);
    for c in 1..strata_central::NUM_CLASSES as u8 {
        let s = heap.backend().class_stats(c);
        let size = strata_central::class_size_of(c);
        transfer += s.transfer_objects * size;
        span_free += s.span_free_objects * size;
        uncarved += s.uncarved_objects * size;
    }
    let central_free = transfer + span_free;
    Stats {
        mapped_bytes: ph.mapped_bytes,
        in_use_bytes: ph.in_use_bytes,
        allocated_bytes: ph
            .in_use_bytes
            .saturating_sub(central_free + tc.cached_bytes),
        free_dirty_bytes: ph.free_dirty_bytes,
        free_clean_bytes: ph.free_clean_bytes,
        thread_cache_bytes: tc.cached_bytes,
        central_free_bytes: central_free,
        transfer_cache_bytes: transfer,
        span_free_bytes: span_free,
        uncarved_bytes: uncarved,
        metadata_bytes: ph.metadata_bytes,
        resident_bytes: (ph.resident_bytes + ph.metadata_bytes).saturating_sub(uncarved),
        peak_resident_bytes: ph.peak_resident_bytes + ph.metadata_bytes,
        released_bytes_total: os.released_bytes,
        huge_in_use_bytes: ph.huge_in_use_bytes,
        huge_cached_bytes: ph.huge_cached_bytes,
        huge_remaps: ph.huge_remaps,
        large_moves: ph.large_moves,
        decay_releases: ph.decay_releases,
        decay_ms: ph.decay_ms,
        thread_caches: tc.live_caches,
        mmap_calls: os.maps,
        munmap_calls: os.unmaps,
        release_calls: os.releases,
        mremap_calls: os.remaps,
        mincore_calls: os.residency_queries,
        zeroed_bytes_written: os.zeroed_bytes_written,
    }
}

impl Stats {
    /// Prints the statistics to stderr without allocating.
    pub fn write_to_stderr(&self) {
        strata_os::write_stderr(&[b"strata: statistics\n"]);
        let rows: [(&[u8], u64); 27] = [
            (b"  mapped bytes", self.mapped_bytes as u64),
            (b"  in-use span bytes", self.in_use_bytes as u64),
            (b"  allocated bytes (estimate)", self.allocated_bytes as u64),
            (b"  free dirty bytes", self.free_dirty_bytes as u64),
            (b"  free clean bytes", self.free_clean_bytes as u64),
            (b"  thread cache bytes", self.thread_cache_bytes as u64),
            (b"  central free bytes", self.central_free_bytes as u64),
            (b"    in transfer caches", self.transfer_cache_bytes as u64),
            (b"    in partly used spans", self.span_free_bytes as u64),
            (b"      never carved", self.uncarved_bytes as u64),
            (b"  metadata bytes", self.metadata_bytes as u64),
            (b"  resident bytes (estimate)", self.resident_bytes as u64),
            (
                b"  peak resident bytes (estimate)",
                self.peak_resident_bytes as u64,
            ),
            (b"  released bytes (total)", self.released_bytes_total),
            (b"  huge in-use bytes", self.huge_in_use_bytes as u64),
            (b"  huge cached bytes", self.huge_cached_bytes as u64),
            (b"  huge remaps", self.huge_remaps),
            (b"  large block moves", self.large_moves),
            (b"  decay passes that released", self.decay_releases),
            (b"  decay ms", self.decay_ms),
            (b"  thread caches", self.thread_caches as u64),
            (b"  mmap calls", self.mmap_calls),
            (b"  munmap calls", self.munmap_calls),
            (b"  madvise(DONTNEED) calls", self.release_calls),
            (b"  mremap calls", self.mremap_calls),
            (b"  mincore calls", self.mincore_calls),
            (b"  zeroing bytes written", self.zeroed_bytes_written),
        ];
        for (label, v) in rows {
            write_stat(label, v);
        }
    }
}

/// Writes `label: value\n` to stderr without allocating.
fn write_stat(label: &[u8], value: u64) {
    let v = Dec::new(value);
    strata_os::write_stderr(&[label, b": ", v.as_bytes(), b"\n"]);
}
