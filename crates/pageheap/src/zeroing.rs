//! Zeroed reuse: making a dirty span read as zero for `alloc_zeroed`, at the
//! cost of what the program used, never of what it asked for.
//!
//! [`strata_os::Os::zero`] looks at a sample (the first page: resident? still
//! zero?) and then clears the resident pages of memory the program used, or
//! drops (`MADV_DONTNEED`) memory it did not use. Looking costs a system call,
//! as much as the drop itself. A span found unused again and again (a calloc
//! loop whose blocks are never touched) stops being looked at: its next
//! reuses drop the pages blind, one system call, in runs of 1, 3, 7, then 15
//! between looks. A blind drop is always correct (dropped pages read as
//! zero); when the program starts using the memory, at most one run of
//! reuses pays page faults before a look sees it and clearing resumes.
//!
//! # Invariants
//! - `blind_drops` and `unused_runs` live in the span record and are touched
//!   only by the span's owner (an in-use span, outside the heap lock).
//! - A fresh or split-off record starts at zero: looked at on first reuse.
//!   So does a span handed out for a plain (not zeroed) allocation: the
//!   program is expected to write it, and the loop of untouched zeroed
//!   reuses that earned the blind drops is over.

use core::ptr::NonNull;

use strata_os::Os;

use crate::span::Span;
use crate::PageHeap;

/// `unused_runs` stops growing here: at most 15 blind drops between looks.
const MAX_UNUSED_RUNS: u8 = 4;

impl<O: Os> PageHeap<O> {
    /// Readies a span being handed out again: a zeroed request on memory
    /// that may be dirty makes `[p, p + len)` read as zero
    /// ([`PageHeap::zero_span`]); a plain request forgets the span's history
    /// of unused zeroed reuses (the program is expected to write it).
    ///
    /// # Safety
    /// As [`PageHeap::zero_span`].
    pub(crate) unsafe fn prepare_reuse(
        &self,
        s: *mut Span,
        p: NonNull<u8>,
        len: usize,
        zero: bool,
        clean: bool,
    ) {
        if !zero {
            // SAFETY: the caller owns the span record.
            unsafe {
                (*s).blind_drops = 0;
                (*s).unused_runs = 0;
            }
        } else if !clean {
            // SAFETY: forwarded contract.
            unsafe { self.zero_span(s, p, len) };
        }
    }

    /// Makes the span's memory `[p, p + len)` read as zero.
    ///
    /// # Safety
    /// `s` is an in-use span owned by the caller; `[p, p + len)` is part of
    /// its memory, whose contents the caller gives up.
    unsafe fn zero_span(&self, s: *mut Span, p: NonNull<u8>, len: usize) {
        // SAFETY: the caller owns the span record.
        let span = unsafe { &mut *s };
        if span.blind_drops > 0 {
            span.blind_drops -= 1;
            // SAFETY: forwarded contract.
            if unsafe { self.os.release(p, len) }.is_ok() {
                return;
            }
        }
        // SAFETY: forwarded contract.
        let written = unsafe { self.os.zero(p, len) };
        if written == 0 {
            span.unused_runs = (span.unused_runs + 1).min(MAX_UNUSED_RUNS);
            span.blind_drops = (1u8 << span.unused_runs) - 1;
        } else {
            span.unused_runs = 0;
            span.blind_drops = 0;
        }
    }
}
