//! What the free paths read before they ask the profiler about a block:
//! the count of records, and a counting filter of their addresses, so that
//! a free of a block never sampled does not take the profiler's lock.
//!
//! # Invariants
//! - `LIVE` is the number of records in the table, and each counter of
//!   `FILTER` the number of records whose address hashes to it ([`slot`]).
//!   Both change under the profiler's lock, with the table, before a
//!   sampled block is handed out and after its record is dropped.
//! - So a free of a block with a record reads non-zero in both (the
//!   program's hand-over of the block orders the increments before the
//!   free); zero in either means the block has no record. A non-zero
//!   counter may be another block's: the table says.
//! - Reading them allocates nothing and takes no lock. A program that
//!   never profiles reads `LIVE` only, and never touches `FILTER`'s pages.

use crate::sync::statics::{AtomicU32, AtomicUsize, Ordering};

/// Counters in the filter (16 KiB, in `.bss`).
const SLOTS: usize = 4096;

static LIVE: AtomicUsize = AtomicUsize::new(0);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU32 = AtomicU32::new(0);
static FILTER: [AtomicU32; SLOTS] = [ZERO; SLOTS];

/// The filter's counter of `addr`: a multiplicative hash of the address
/// without its low bits (blocks are at least 16 bytes apart).
#[inline(always)]
fn slot(addr: usize) -> &'static AtomicU32 {
    let h = ((addr as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &FILTER[(h >> (64 - SLOTS.trailing_zeros())) as usize]
}

/// Whether the block at `p` may have a record: false means it has none.
#[inline(always)]
pub(crate) fn tracking(p: *const u8) -> bool {
    LIVE.load(Ordering::Relaxed) != 0 && slot(p as usize).load(Ordering::Relaxed) != 0
}

/// A record for `addr` went into the table.
pub(super) fn added(addr: usize) {
    LIVE.fetch_add(1, Ordering::Relaxed);
    slot(addr).fetch_add(1, Ordering::Relaxed);
}

/// The record for `addr` left the table.
pub(super) fn dropped(addr: usize) {
    slot(addr).fetch_sub(1, Ordering::Relaxed);
    LIVE.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_address_reads_as_tracked() {
        // Addresses no other test records (the facade's unit tests do not
        // profile).
        let a = 0x7000_1234_5000usize;
        let b = a + 16;
        assert!(!tracking(a as *const u8));
        added(a);
        added(b);
        assert!(tracking(a as *const u8) && tracking(b as *const u8));
        dropped(a);
        assert!(tracking(b as *const u8));
        // Neighbours hash apart: the counter of `a` is back to zero unless
        // `b` shares it.
        assert_eq!(tracking(a as *const u8), core::ptr::eq(slot(a), slot(b)));
        dropped(b);
        assert!(!tracking(b as *const u8));
    }
}
