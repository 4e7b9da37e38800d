//! What strata holds and what it asked of the kernel, for users who want to
//! see where their memory is: a [`Stats`] snapshot, printed as text
//! ([`Stats::write_to_stderr`], `STRATA_SHOW_STATS`, `malloc_stats()`) or as
//! JSON ([`Stats::write_json`]; [`write_stats_json`] adds the settings, the
//! size classes and the thread caches).
//!
//! # Invariants
//! - Nothing here allocates: text and JSON go to a `core::fmt::Write` the
//!   caller chooses, or to stderr in pieces, so all of it may run inside the
//!   allocator (at exit, from C).
//! - The text report and the JSON object list the same figures, from one
//!   table ([`Stats::rows`]).
//! - No lock is held while the caller's writer runs: figures read under a
//!   lock (a class's lists, the thread-cache registry) are copied out first,
//!   so a writer that allocates cannot deadlock on them.

use core::fmt::{self, Write};

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
    /// Bytes in spans in use minus the free objects cached in the layers and
    /// the spans' tails: what the program holds, read layer by layer (so an
    /// estimate while other threads allocate).
    pub allocated_bytes: usize,
    /// Bytes in free spans that may be resident (returned to the OS after
    /// the decay delay or by `release_free_memory`).
    pub free_dirty_bytes: usize,
    /// Bytes in free spans known to read as zero, not resident.
    pub free_clean_bytes: usize,
    /// Free spans, dirty and clean.
    pub free_spans: usize,
    /// Bytes of free objects in thread caches (each cache as it holds when
    /// read).
    pub thread_cache_bytes: usize,
    /// Bytes of free objects in central lists and transfer caches.
    pub central_free_bytes: usize,
    /// The free objects of `central_free_bytes`.
    pub central_free_objects: usize,
    /// Of `central_free_bytes`, the batches parked in transfer caches.
    pub transfer_cache_bytes: usize,
    /// Of `central_free_bytes`, free objects inside partly used spans.
    pub span_free_bytes: usize,
    /// Of `span_free_bytes`, objects never carved from their span: pages
    /// that may never have been touched (not resident).
    pub uncarved_bytes: usize,
    /// Bytes at the ends of small-object spans in use too short to hold an
    /// object of the span's class (at most an eighth of a span): neither
    /// allocated nor free.
    pub span_tail_bytes: usize,
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
    /// Huge blocks in use.
    pub huge_blocks: usize,
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
    let (mut transfer, mut span_free, mut uncarved, mut free_objects) = (0, 0, 0, 0);
    let mut tails = 0;
    for c in 1..strata_central::NUM_CLASSES as u8 {
        let s = heap.backend().class_stats(c);
        let info = &strata_central::CLASSES[c as usize];
        let size = info.size as usize;
        transfer += s.transfer_objects * size;
        span_free += s.span_free_objects * size;
        uncarved += s.uncarved_objects * size;
        free_objects += s.transfer_objects + s.span_free_objects;
        tails += s.spans * info.tail_bytes();
    }
    let central_free = transfer + span_free;
    Stats {
        mapped_bytes: ph.mapped_bytes,
        in_use_bytes: ph.in_use_bytes,
        allocated_bytes: ph
            .in_use_bytes
            .saturating_sub(central_free + tc.cached_bytes + tails),
        free_dirty_bytes: ph.free_dirty_bytes,
        free_clean_bytes: ph.free_clean_bytes,
        free_spans: ph.free_spans,
        thread_cache_bytes: tc.cached_bytes,
        central_free_bytes: central_free,
        central_free_objects: free_objects,
        transfer_cache_bytes: transfer,
        span_free_bytes: span_free,
        uncarved_bytes: uncarved,
        span_tail_bytes: tails,
        metadata_bytes: ph.metadata_bytes,
        resident_bytes: (ph.resident_bytes + ph.metadata_bytes).saturating_sub(uncarved),
        peak_resident_bytes: ph.peak_resident_bytes + ph.metadata_bytes,
        released_bytes_total: os.released_bytes,
        huge_in_use_bytes: ph.huge_in_use_bytes,
        huge_blocks: ph.huge_blocks,
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
    /// Every figure: its JSON key (the field's name), its label in the text
    /// report, and its value, in the report's order.
    fn rows(&self) -> [(&'static str, &'static str, u64); 31] {
        [
            ("mapped_bytes", "  mapped bytes", self.mapped_bytes as u64),
            (
                "in_use_bytes",
                "  in-use span bytes",
                self.in_use_bytes as u64,
            ),
            (
                "allocated_bytes",
                "  allocated bytes (estimate)",
                self.allocated_bytes as u64,
            ),
            (
                "free_dirty_bytes",
                "  free dirty bytes",
                self.free_dirty_bytes as u64,
            ),
            (
                "free_clean_bytes",
                "  free clean bytes",
                self.free_clean_bytes as u64,
            ),
            ("free_spans", "  free spans", self.free_spans as u64),
            (
                "thread_cache_bytes",
                "  thread cache bytes",
                self.thread_cache_bytes as u64,
            ),
            (
                "central_free_bytes",
                "  central free bytes",
                self.central_free_bytes as u64,
            ),
            (
                "transfer_cache_bytes",
                "    in transfer caches",
                self.transfer_cache_bytes as u64,
            ),
            (
                "span_free_bytes",
                "    in partly used spans",
                self.span_free_bytes as u64,
            ),
            (
                "uncarved_bytes",
                "      never carved",
                self.uncarved_bytes as u64,
            ),
            (
                "central_free_objects",
                "  central free objects",
                self.central_free_objects as u64,
            ),
            (
                "span_tail_bytes",
                "  span tail bytes",
                self.span_tail_bytes as u64,
            ),
            (
                "metadata_bytes",
                "  metadata bytes",
                self.metadata_bytes as u64,
            ),
            (
                "resident_bytes",
                "  resident bytes (estimate)",
                self.resident_bytes as u64,
            ),
            (
                "peak_resident_bytes",
                "  peak resident bytes (estimate)",
                self.peak_resident_bytes as u64,
            ),
            (
                "released_bytes_total",
                "  released bytes (total)",
                self.released_bytes_total,
            ),
            (
                "huge_in_use_bytes",
                "  huge in-use bytes",
                self.huge_in_use_bytes as u64,
            ),
            ("huge_blocks", "  huge blocks", self.huge_blocks as u64),
            (
                "huge_cached_bytes",
                "  huge cached bytes",
                self.huge_cached_bytes as u64,
            ),
            ("huge_remaps", "  huge remaps", self.huge_remaps),
            ("large_moves", "  large block moves", self.large_moves),
            (
                "decay_releases",
                "  decay passes that released",
                self.decay_releases,
            ),
            ("decay_ms", "  decay ms", self.decay_ms),
            (
                "thread_caches",
                "  thread caches",
                self.thread_caches as u64,
            ),
            ("mmap_calls", "  mmap calls", self.mmap_calls),
            ("munmap_calls", "  munmap calls", self.munmap_calls),
            (
                "release_calls",
                "  madvise(DONTNEED) calls",
                self.release_calls,
            ),
            ("mremap_calls", "  mremap calls", self.mremap_calls),
            ("mincore_calls", "  mincore calls", self.mincore_calls),
            (
                "zeroed_bytes_written",
                "  zeroing bytes written",
                self.zeroed_bytes_written,
            ),
        ]
    }

    /// Prints the statistics to stderr without allocating.
    pub fn write_to_stderr(&self) {
        strata_os::write_stderr(&[b"strata: statistics\n"]);
        for (_, label, v) in self.rows() {
            write_stat(label.as_bytes(), v);
        }
    }

    /// Writes the statistics as one JSON object, `{"mapped_bytes":...,...}`,
    /// a member per field, named as the field. Allocates nothing itself.
    pub fn write_json(&self, w: &mut impl Write) -> fmt::Result {
        w.write_char('{')?;
        for (i, (key, _, v)) in self.rows().into_iter().enumerate() {
            if i > 0 {
                w.write_char(',')?;
            }
            write!(w, "\"{key}\":{v}")?;
        }
        w.write_char('}')
    }
}

/// Writes `label: value\n` to stderr without allocating.
fn write_stat(label: &[u8], value: u64) {
    let v = Dec::new(value);
    strata_os::write_stderr(&[label, b": ", v.as_bytes(), b"\n"]);
}
