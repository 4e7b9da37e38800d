//! The shadow model of a page heap: which blocks are live (where, how long,
//! filled with which tag), which freed pages must still be dirty, and the
//! counters the heap's statistics must agree with.

use std::collections::BTreeMap;
use std::ptr::NonNull;

use strata_pageheap::{PageHeap, Span};

use super::os::TestOs;

/// What a live block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `alloc_large` below `HUGE_MIN`: a span of the heap.
    Large,
    /// `alloc_large` of `HUGE_MIN` or more: a mapping of its own.
    Huge,
    /// `alloc_small_span`.
    Small { class: u8, span: NonNull<Span> },
}

/// A live block: `len` is the whole span (a multiple of the page).
#[derive(Clone, Copy, Debug)]
pub struct Block {
    pub addr: usize,
    pub len: usize,
    pub tag: u8,
    pub kind: Kind,
}

#[derive(Default)]
pub struct Model {
    /// Live blocks by allocation number.
    blocks: BTreeMap<u64, Block>,
    /// Live blocks by address, for disjointness.
    by_addr: BTreeMap<usize, u64>,
    next_id: u64,
    next_tag: u8,
    /// Addresses that were blocks once (for refused frees), newest last.
    pub dead: Vec<usize>,
    /// Freed heap pages not handed out or released since: start -> (end,
    /// time freed).
    dirty: BTreeMap<usize, (usize, u64)>,
    /// The fake clock, and the decay delay in force.
    pub clock: u64,
    pub decay: u64,
    /// The highest cutoff a decay pass can have used so far (it releases
    /// spans freed at or before `now - decay`).
    cutoff: Option<u64>,
    pub large_allocs: u64,
    pub small_spans: u64,
    pub huge_allocs: u64,
    pub huge_ops: usize,
}

impl Model {
    pub fn new(decay: u64) -> Self {
        Model {
            decay,
            ..Model::default()
        }
    }

    /// A fresh non-zero tag to fill a block with.
    pub fn tag(&mut self) -> u8 {
        self.next_tag = self.next_tag % 251 + 1;
        self.next_tag
    }

    /// Records a new live block, checking it overlaps no other.
    pub fn insert(&mut self, b: Block) {
        if let Some((&a, id)) = self.by_addr.range(..=b.addr).next_back() {
            let below = &self.blocks[id];
            assert!(
                a + below.len <= b.addr,
                "{b:?} overlaps live block {below:?}"
            );
        }
        if let Some((_, id)) = self.by_addr.range(b.addr..).next() {
            let above = &self.blocks[id];
            assert!(
                b.addr + b.len <= above.addr,
                "{b:?} overlaps live block {above:?}"
            );
        }
        self.by_addr.insert(b.addr, self.next_id);
        self.blocks.insert(self.next_id, b);
        self.next_id += 1;
    }

    /// The id of the `pick`-th live block (modulo their number) among those
    /// `want` accepts, in allocation order.
    pub fn pick(&self, pick: u8, want: impl Fn(&Block) -> bool) -> Option<u64> {
        let ids: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, b)| want(b))
            .map(|(&id, _)| id)
            .collect();
        (!ids.is_empty()).then(|| ids[pick as usize % ids.len()])
    }

    pub fn get(&self, id: u64) -> Block {
        self.blocks[&id]
    }

    pub fn is_live_start(&self, addr: usize) -> bool {
        self.by_addr.contains_key(&addr)
    }

    pub fn remove(&mut self, id: u64) -> Block {
        let b = self.blocks.remove(&id).expect("live block");
        self.by_addr.remove(&b.addr);
        b
    }

    /// Remembers an address that is no longer a block's start.
    pub fn bury(&mut self, addr: usize) {
        if self.dead.len() == 32 {
            self.dead.remove(0);
        }
        self.dead.push(addr);
    }

    /// Bytes in live heap blocks (not huge).
    pub fn heap_bytes(&self) -> usize {
        self.blocks
            .values()
            .filter(|b| b.kind != Kind::Huge)
            .map(|b| b.len)
            .sum()
    }

    pub fn live_huge(&self) -> usize {
        self.blocks
            .values()
            .filter(|b| b.kind == Kind::Huge)
            .count()
    }

    pub fn blocks(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        self.blocks.iter().map(|(&id, &b)| (id, b))
    }

    /// Pages `[start, end)` were freed now.
    pub fn mark_dirty(&mut self, start: usize, end: usize) {
        if start < end {
            self.dirty.insert(start, (end, self.clock));
        }
    }

    /// Pages `[start, end)` were handed out.
    pub fn mark_used(&mut self, start: usize, end: usize) {
        let hit: Vec<(usize, (usize, u64))> = self
            .dirty
            .range(..end)
            .filter(|&(_, &(e, _))| e > start)
            .map(|(&s, &v)| (s, v))
            .collect();
        for (s, (e, t)) in hit {
            self.dirty.remove(&s);
            if s < start {
                self.dirty.insert(s, (start, t));
            }
            if e > end {
                self.dirty.insert(end, (e, t));
            }
        }
    }

    /// Every dirty page was released.
    pub fn clear_dirty(&mut self) {
        self.dirty.clear();
    }

    /// The clock or the delay changed: a decay pass may run with the new
    /// cutoff from now on.
    pub fn note_time(&mut self) {
        if let Some(c) = self.clock.checked_sub(self.decay) {
            self.cutoff = Some(self.cutoff.map_or(c, |old| old.max(c)));
        }
    }

    /// Bytes freed after every cutoff a decay pass can have used: decay must
    /// not have released them yet.
    fn young_dirty_bytes(&self) -> usize {
        self.dirty
            .iter()
            .filter(|&(_, &(_, t))| self.cutoff.is_none_or(|c| t > c))
            .map(|(&s, &(e, _))| e - s)
            .sum()
    }

    /// The checks run after every step.
    pub fn check<O: TestOs>(&self, heap: &PageHeap<O>) {
        if let Err(e) = heap.check_invariants() {
            panic!("check_invariants: {e}");
        }
        let st = heap.stats();
        let live: usize = self.blocks.values().map(|b| b.len).sum();
        let huge: usize = self
            .blocks
            .values()
            .filter(|b| b.kind == Kind::Huge)
            .map(|b| b.len)
            .sum();
        assert_eq!(st.in_use_bytes, live, "in-use bytes != live blocks");
        assert_eq!(st.huge_in_use_bytes, huge, "huge in-use bytes");
        assert_eq!(
            st.mapped_bytes,
            st.in_use_bytes + st.free_dirty_bytes + st.free_clean_bytes + st.huge_cached_bytes,
            "mapped != in use + free + cached: {st:?}"
        );
        assert_eq!(st.large_allocs, self.large_allocs, "large_allocs");
        assert_eq!(st.small_spans, self.small_spans, "small_spans");
        assert_eq!(st.huge_allocs, self.huge_allocs, "huge_allocs");
        assert_eq!(st.decay_ms, self.decay, "decay_ms");
        let young = self.young_dirty_bytes();
        assert!(
            st.free_dirty_bytes >= young,
            "pages freed less than the decay delay ago were released: \
             {young} young dirty bytes, {st:?}"
        );
        assert!(heap.os().mapped() >= st.mapped_bytes);
        for b in self.blocks.values() {
            match b.kind {
                Kind::Large | Kind::Huge => {
                    assert_eq!(heap.large_size(b.addr), Ok(b.len), "size of {b:?}");
                    assert_eq!(heap.size_class_of(b.addr), 0, "class of {b:?}");
                }
                Kind::Small { class, span } => {
                    assert_eq!(heap.size_class_of(b.addr), class, "class of {b:?}");
                    assert_eq!(heap.span_of(b.addr + b.len - 1), Some(span), "{b:?}");
                }
            }
        }
    }
}

/// The parts of a block that are filled and checked, as (offset, length):
/// all of it up to 4 MiB; for a huge block, 256 KiB at each end and 64 bytes
/// every 64 KiB between (so it costs a few pages, not 32 MiB, per pass).
fn parts(len: usize) -> Vec<(usize, usize)> {
    const EDGE: usize = 256 << 10;
    if len <= 4 << 20 {
        return vec![(0, len)];
    }
    let mut v = vec![(0, EDGE)];
    v.extend((EDGE..len - EDGE).step_by(64 << 10).map(|o| (o, 64)));
    v.push((len - EDGE, EDGE));
    v
}

/// Fills (the checked parts of) `[addr, addr + len)` with `tag`.
pub fn fill(addr: usize, len: usize, tag: u8) {
    for (off, n) in parts(len) {
        // SAFETY: callers pass a live block of at least `len` bytes they own.
        unsafe { std::ptr::write_bytes((addr + off) as *mut u8, tag, n) };
    }
}

/// Asserts that (the checked parts of) `[addr, addr + len)` hold only `tag`
/// bytes.
pub fn expect_bytes(addr: usize, len: usize, tag: u8, what: &str) {
    expect_prefix(addr, len, len, tag, what);
}

/// Asserts that the first `upto` bytes of a block of which `filled` bytes
/// were filled with `tag` still hold it (where they were filled: see
/// [`parts`]). Compares in chunks with `==` on byte slices (a `memcmp`, fast
/// in debug builds too).
pub fn expect_prefix(addr: usize, filled: usize, upto: usize, tag: u8, what: &str) {
    let pattern = [tag; 4096];
    for (start, part) in parts(filled) {
        let end = (start + part).min(upto);
        let mut off = start;
        while off < end {
            let n = (end - off).min(pattern.len());
            // SAFETY: callers pass a live block of at least `upto` bytes.
            let s = unsafe { std::slice::from_raw_parts((addr + off) as *const u8, n) };
            if s != &pattern[..n] {
                let i = s.iter().position(|&x| x != tag).unwrap_or(0);
                panic!(
                    "{what}: byte {:#x} of the block at {addr:#x} is {:#x}, expected {tag:#x}",
                    off + i,
                    s[i]
                );
            }
            off += n;
        }
    }
}
