//! Counting: what each thread did ([`Tally`], summed at the end of a round)
//! and the shared budget that keeps live memory bounded ([`Budget`]).

use std::ops::AddAssign;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Per-thread counters, summed into the round's and the run's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Blocks allocated (`alloc` or `alloc_zeroed`).
    pub blocks: u64,
    /// Bytes requested by those allocations.
    pub bytes: u64,
    /// Of them, `alloc_zeroed` blocks (checked zero before filling).
    pub zeroed: u64,
    /// Of them, blocks aligned to more than 16 bytes.
    pub aligned: u64,
    /// Blocks that reached strata's huge-mapping size (by alloc or realloc).
    pub huge: u64,
    /// `realloc` calls (each checked).
    pub reallocs: u64,
    /// Blocks freed (each checked first).
    pub frees: u64,
    /// Content checks done (pattern, zero, realloc prefix).
    pub checks: u64,
    /// Bytes those checks looked at.
    pub checked_bytes: u64,
    /// Swaps with the shared slot array.
    pub swaps: u64,
    /// Blocks handed to another thread through its inbox.
    pub handoffs: u64,
}

impl AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.blocks += o.blocks;
        self.bytes += o.bytes;
        self.zeroed += o.zeroed;
        self.aligned += o.aligned;
        self.huge += o.huge;
        self.reallocs += o.reallocs;
        self.frees += o.frees;
        self.checks += o.checks;
        self.checked_bytes += o.checked_bytes;
        self.swaps += o.swaps;
        self.handoffs += o.handoffs;
    }
}

/// Live memory held by the stress engine, bounded by a limit. Every block is
/// counted from before its allocation to after its free, whoever holds it;
/// blocks of at least `huge_min` bytes are also counted apart (the health
/// checks compare them with the allocator's huge-block figures).
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    huge_min: usize,
    bytes: CachePadded<AtomicUsize>,
    blocks: CachePadded<AtomicUsize>,
    huge_bytes: CachePadded<AtomicUsize>,
    peak: CachePadded<AtomicUsize>,
}

impl Budget {
    /// A budget of `limit` live bytes, counting blocks of at least
    /// `huge_min` bytes as huge.
    pub fn new(limit: usize, huge_min: usize) -> Self {
        Budget {
            limit,
            huge_min,
            bytes: CachePadded::new(AtomicUsize::new(0)),
            blocks: CachePadded::new(AtomicUsize::new(0)),
            huge_bytes: CachePadded::new(AtomicUsize::new(0)),
            peak: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    fn add_bytes(&self, size: usize) -> bool {
        let now = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        if now > self.limit {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        self.peak.fetch_max(now, Ordering::Relaxed);
        true
    }

    fn huge_delta(&self, old: usize, new: usize) {
        let h = |s: usize| if s >= self.huge_min { s } else { 0 };
        let (o, n) = (h(old), h(new));
        if n > o {
            self.huge_bytes.fetch_add(n - o, Ordering::Relaxed);
        } else {
            self.huge_bytes.fetch_sub(o - n, Ordering::Relaxed);
        }
    }

    /// Reserves room for a new block of `size` bytes; false if that would
    /// exceed the limit.
    pub fn try_alloc(&self, size: usize) -> bool {
        if !self.add_bytes(size) {
            return false;
        }
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.huge_delta(0, size);
        true
    }

    /// Accounts for a freed block of `size` bytes.
    pub fn freed(&self, size: usize) {
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        self.blocks.fetch_sub(1, Ordering::Relaxed);
        self.huge_delta(size, 0);
    }

    /// Reserves room for resizing a block from `old` to `new` bytes; false
    /// (and nothing changed) if growing would exceed the limit.
    pub fn try_resize(&self, old: usize, new: usize) -> bool {
        if new > old {
            if !self.add_bytes(new - old) {
                return false;
            }
        } else {
            self.bytes.fetch_sub(old - new, Ordering::Relaxed);
        }
        self.huge_delta(old, new);
        true
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Live bytes now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Live blocks now.
    pub fn blocks(&self) -> usize {
        self.blocks.load(Ordering::Relaxed)
    }

    /// Live bytes in blocks of huge size now.
    pub fn huge_bytes(&self) -> usize {
        self.huge_bytes.load(Ordering::Relaxed)
    }

    /// The most live bytes seen.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_past_the_limit_and_tracks_huge() {
        let b = Budget::new(100 << 20, 32 << 20);
        assert!(b.try_alloc(40 << 20));
        assert_eq!(b.huge_bytes(), 40 << 20);
        assert!(!b.try_alloc(70 << 20));
        assert!(b.try_resize(40 << 20, 20 << 20));
        assert_eq!(b.huge_bytes(), 0);
        assert!(!b.try_resize(20 << 20, 120 << 20));
        assert_eq!(b.bytes(), 20 << 20);
        b.freed(20 << 20);
        assert_eq!((b.bytes(), b.blocks(), b.peak()), (0, 0, 40 << 20));
    }
}
