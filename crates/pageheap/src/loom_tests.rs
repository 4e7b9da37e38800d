//! Loom models of the page heap's shared structures: pagemap publication,
//! the decay clock, and release racing frees. Run with
//! `RUSTFLAGS="--cfg strata_loom" cargo test --release --workspace loom` (see
//! docs/concurrency.md).

use core::ptr::{self, NonNull};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use strata_os::{FakeOs, Os, OsCounters, OsError, SystemOs};

use crate::decay::DecayClock;
use crate::pagemap::{publish, published};
use crate::{PageHeap, SpanState, PAGE_SHIFT, PAGE_SIZE};
use strata_testkit::loom_model::{model, on_big_stack};

// ---- pagemap publication ----------------------------------------------------

/// A pagemap node as loom sees it: its contents are one cell, written when
/// the node is mapped. In the heap a node's contents are the kernel's zero
/// fill; here they are a write loom tracks, so a reader that finds the node
/// without being ordered after that write is a causality violation.
struct Node {
    contents: UnsafeCell<u64>,
}

const FILLED: u64 = 0x5eed;

/// [`FakeOs`] whose mappings come back holding a freshly written [`Node`]
/// (standing in for the kernel's zero fill, which loom cannot see), and
/// whose unmaps drop it. For `publish` only.
struct NodeOs(FakeOs);

// SAFETY: forwards to FakeOs; the one difference (a mapping holds a Node
// rather than zeros) is what the pagemap model wants `publish` to see.
unsafe impl Os for NodeOs {
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        assert!(len >= core::mem::size_of::<Node>());
        let p = self.0.map(len, align)?;
        // SAFETY: a fresh mapping, big and aligned enough for a Node.
        unsafe {
            p.cast::<Node>().as_ptr().write(Node {
                contents: UnsafeCell::new(FILLED),
            })
        };
        Ok(p)
    }
    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: every mapping holds a Node written by `map`; the caller
        // no longer uses the mapping.
        unsafe {
            ptr::drop_in_place(ptr.cast::<Node>().as_ptr());
            self.0.unmap(ptr, len)
        }
    }
    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        // SAFETY: forwarded contract.
        unsafe { self.0.release(ptr, len) }
    }
    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize {
        // SAFETY: forwarded contract.
        unsafe { self.0.zero(ptr, len) }
    }
    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        // SAFETY: forwarded contract.
        unsafe { self.0.populate(ptr, len) }
    }
    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
        prepare: &mut dyn FnMut(NonNull<u8>, usize) -> bool,
    ) -> Result<NonNull<u8>, OsError> {
        // SAFETY: forwarded contract.
        unsafe { self.0.remap(ptr, old_len, new_len, align, prepare) }
    }
    fn counters(&self) -> &OsCounters {
        self.0.counters()
    }
}

/// Reads a node found in a slot. Loom checks the read is ordered after the
/// node's fill.
fn read(node: &Node) -> u64 {
    // SAFETY: nobody writes a published node's contents.
    node.contents.with(|v| unsafe { *v })
}

/// Two threads publish a node in the same empty slot (as two threads
/// `ensure` the same range) while a third reads it (as `get` and `class`
/// do): both publishers end up with the same node, the loser's copy is
/// unmapped, exactly one mapping remains, and a reader sees either nothing
/// or a node whose contents are visible to it (the Acquire load of
/// `published` pairs with `publish`'s compare-exchange).
///
/// The pagemap's own slots are core's atomics (its nodes are OS memory read
/// as arrays of atomics), so the model runs the same generic `publish` and
/// `published` on a loom slot.
#[test]
fn loom_pagemap_publish_once() {
    model(|| {
        let os = Arc::new(NodeOs(FakeOs::new()));
        let slot: Arc<AtomicPtr<Node>> = Arc::new(AtomicPtr::new(ptr::null_mut()));
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let (os, slot) = (os.clone(), slot.clone());
                thread::spawn(move || {
                    let n = publish::<Node, _, _>(&*slot, &*os).expect("the fake OS maps");
                    // SAFETY: a published node, never unmapped meanwhile.
                    assert_eq!(read(unsafe { &*n }), FILLED);
                    n as usize
                })
            })
            .collect();
        // The lock-free reader, as `get` and `class` read: it may find
        // nothing, then (yielding until a publisher gets on) the node.
        let seen = loop {
            // SAFETY: the slot only ever holds nodes published by `publish`.
            if let Some(n) = unsafe { published::<Node, _>(&*slot) } {
                break n;
            }
            thread::yield_now();
        };
        assert_eq!(read(seen), FILLED);
        let got: Vec<usize> = publishers.into_iter().map(|t| t.join().unwrap()).collect();
        let winner = slot.load(Ordering::Relaxed);
        assert!(!winner.is_null());
        assert_eq!(got, [winner as usize; 2], "publishers disagree on the node");
        assert_eq!(
            seen as *const Node,
            winner.cast_const(),
            "the reader saw a loser's node"
        );
        assert_eq!(os.0.live_mappings(), 1, "a loser's node was not unmapped");
        let c = os.0.counters().snapshot();
        assert_eq!(c.maps - c.unmaps, 1);
        let len = os.0.mapped_bytes();
        // SAFETY: the winner's mapping, no longer used.
        unsafe { os.unmap(NonNull::new(winner.cast()).unwrap(), len) };
    });
}

// ---- the decay clock --------------------------------------------------------

/// Three threads tick (`due`, then `claim`, as `PageHeap::tick` does) while
/// the clock moves forward by one interval: each deadline is claimed by
/// exactly one thread, so a pass never runs twice for one interval, and the
/// first due pass is always run by someone.
#[test]
fn loom_decay_one_pass_per_interval() {
    model(|| {
        let clock = Arc::new(DecayClock::new());
        clock.set_delay(4); // interval: 1 ms
        let now = Arc::new(AtomicU64::new(100));
        let tick = |clock: &DecayClock, now: &AtomicU64| -> Option<(u64, u64)> {
            let t = now.load(Ordering::Relaxed);
            let next = clock.due(t)?;
            clock.claim(t, next).map(|decay| {
                assert_eq!(decay, 4);
                (next, t)
            })
        };
        let tickers: Vec<_> = (0..2)
            .map(|_| {
                let (clock, now) = (clock.clone(), now.clone());
                thread::spawn(move || tick(&clock, &now))
            })
            .collect();
        now.store(101, Ordering::Relaxed);
        let mine = tick(&clock, &now);
        let mut passes: Vec<(u64, u64)> = tickers
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        passes.extend(mine);
        passes.sort_unstable();
        // Every pass claimed a different deadline.
        assert!(
            passes.windows(2).all(|w| w[0].0 != w[1].0),
            "two passes for one deadline: {passes:?}"
        );
        // The clock started due (deadline 0): somebody ran that pass; each
        // later pass ran at a time at least one interval after the last.
        assert!(!passes.is_empty() && passes[0].0 == 0);
        assert!(passes.windows(2).all(|w| w[1].1 > w[0].1));
        assert!(
            passes.len() <= 2,
            "at most one pass per interval: {passes:?}"
        );
    });
}

/// The real OS layer with a clock loom can see (FakeOs's clock is a std
/// atomic), which unmaps what is left when dropped. Real mappings rather
/// than FakeOs's: the heap maps a 16 MiB pagemap node every run, which
/// FakeOs would clear byte by byte, a thousand times per model.
struct ClockOs {
    os: SystemOs,
    live: std::sync::Mutex<Vec<(usize, usize)>>,
    now: AtomicU64,
}

impl ClockOs {
    fn new(now: u64) -> Self {
        ClockOs {
            os: SystemOs::new(),
            live: std::sync::Mutex::new(Vec::new()),
            now: AtomicU64::new(now),
        }
    }
}

impl Drop for ClockOs {
    fn drop(&mut self) {
        for (p, len) in self.live.get_mut().unwrap().drain(..) {
            // SAFETY: a mapping of ours; the heap that used it is gone.
            unsafe { self.os.unmap(NonNull::new(p as *mut u8).unwrap(), len) };
        }
    }
}

// SAFETY: forwards to SystemOs.
unsafe impl Os for ClockOs {
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        let p = self.os.map(len, align)?;
        self.live.lock().unwrap().push((p.as_ptr() as usize, len));
        Ok(p)
    }
    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        let mut live = self.live.lock().unwrap();
        let i = live
            .iter()
            .position(|&m| m == (ptr.as_ptr() as usize, len))
            .expect("unmap of a range that is not a whole mapping");
        live.swap_remove(i);
        // SAFETY: forwarded contract.
        unsafe { self.os.unmap(ptr, len) }
    }
    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        // SAFETY: forwarded contract.
        unsafe { self.os.release(ptr, len) }
    }
    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize {
        // SAFETY: forwarded contract.
        unsafe { self.os.zero(ptr, len) }
    }
    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        // SAFETY: forwarded contract.
        unsafe { self.os.populate(ptr, len) }
    }
    unsafe fn remap(
        &self,
        _ptr: NonNull<u8>,
        _old_len: usize,
        _new_len: usize,
        _align: usize,
        _prepare: &mut dyn FnMut(NonNull<u8>, usize) -> bool,
    ) -> Result<NonNull<u8>, OsError> {
        Err(OsError::Unsupported) // no huge blocks in these models
    }
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn counters(&self) -> &OsCounters {
        self.os.counters()
    }
}

/// The span holding `addr`: (state, clean).
fn span_at(heap: &PageHeap<ClockOs>, addr: usize) -> (SpanState, bool) {
    let s = heap.span_of(addr).expect("a span holds the address");
    // SAFETY: span records are never unmapped; the model is quiescent.
    unsafe { (s.as_ref().state, s.as_ref().clean) }
}

/// Two threads tick a heap with one idle dirty span, while the clock moves
/// on and the main thread ticks too: the span is released exactly once, by
/// exactly one pass, and comes back clean; the heap's lists stay consistent.
#[test]
fn loom_decay_ticks_release_once() {
    model(|| {
        let heap = on_big_stack(|| Arc::new(PageHeap::new(ClockOs::new(0))));
        heap.set_decay_ms(8); // interval: 2 ms
        let a = heap
            .alloc_large(PAGE_SIZE, PAGE_SIZE, false)
            .unwrap()
            .as_ptr() as usize;
        let b = heap
            .alloc_large(PAGE_SIZE, PAGE_SIZE, false)
            .unwrap()
            .as_ptr() as usize;
        // SAFETY: a live block, given up (freed at 0 ms, dirty).
        unsafe { heap.free_large(a).unwrap() };
        assert_eq!(span_at(&heap, a), (SpanState::Free, false));
        heap.os().now.store(20, Ordering::Relaxed);
        let tickers: Vec<_> = (0..2)
            .map(|_| {
                let heap = heap.clone();
                thread::spawn(move || heap.tick())
            })
            .collect();
        heap.os().now.store(40, Ordering::Relaxed);
        heap.tick();
        for t in tickers {
            t.join().unwrap();
        }
        assert_eq!(span_at(&heap, a), (SpanState::Free, true));
        assert_eq!(
            heap.os().counters().snapshot().releases,
            1,
            "released twice"
        );
        assert_eq!(heap.stats().decay_releases, 1);
        heap.check_invariants().unwrap();
        // SAFETY: a live block, given up.
        unsafe { heap.free_large(b).unwrap() };
        heap.check_invariants().unwrap();
    });
}

/// `release_free_memory` races a `free_large` of the neighbour of the dirty
/// span it releases, and an `alloc_large` that would like that dirty span:
/// a span being `Releasing` is never merged (a free merges only with a
/// `Free` neighbour) nor handed out (the block allocated keeps what its
/// owner wrote, which a release running under it would have wiped), it
/// comes back clean, and the page counts add up whatever the order.
#[test]
fn loom_release_races_free_large() {
    model(|| {
        let heap = on_big_stack(|| Arc::new(PageHeap::new(ClockOs::new(0))));
        heap.set_decay_ms(u64::MAX); // no decay pass: only the explicit release
        let blocks: Vec<usize> = (0..3)
            .map(|_| {
                heap.alloc_large(PAGE_SIZE, PAGE_SIZE, false)
                    .unwrap()
                    .as_ptr() as usize
            })
            .collect();
        let (a, b, c) = (blocks[0], blocks[1], blocks[2]);
        assert_eq!((b - a, c - b), (PAGE_SIZE, PAGE_SIZE));
        // SAFETY: a live block, given up: `a` is a dirty free span.
        unsafe { heap.free_large(a).unwrap() };
        let releaser = {
            let heap = heap.clone();
            thread::spawn(move || heap.release_free_memory())
        };
        let allocator = {
            let heap = heap.clone();
            thread::spawn(move || {
                let d = heap
                    .alloc_large(PAGE_SIZE, PAGE_SIZE, false)
                    .unwrap()
                    .as_ptr();
                // SAFETY: a live block of a page, ours.
                unsafe {
                    d.write(0xAB);
                    d.add(PAGE_SIZE - 1).write(0xCD);
                }
                d as usize
            })
        };
        // SAFETY: a live block, given up.
        unsafe { heap.free_large(b).unwrap() };
        let released = releaser.join().unwrap();
        let d = allocator.join().unwrap();
        heap.check_invariants().unwrap();
        assert_ne!(d, c, "a live block handed out again");
        // SAFETY: d is a live block of a page.
        unsafe {
            let p = d as *const u8;
            assert_eq!(
                (p.read(), p.add(PAGE_SIZE - 1).read()),
                (0xAB, 0xCD),
                "released under its owner"
            );
        }
        assert!(
            released <= 2 * PAGE_SIZE && released % PAGE_SIZE == 0,
            "released {released}"
        );
        // `a` was handed out again (before the release took it), or went
        // back to the OS, alone or merged with `b`: then it is clean.
        if d != a {
            assert_eq!(span_at(&heap, a), (SpanState::Free, true));
        }
        if d != b {
            assert_eq!(span_at(&heap, b).0, SpanState::Free);
        }
        let st = heap.stats();
        assert_eq!(st.in_use_bytes, 2 * PAGE_SIZE);
        assert_eq!(
            st.free_dirty_bytes + st.free_clean_bytes + st.in_use_bytes,
            st.mapped_bytes
        );
        assert_eq!(c >> PAGE_SHIFT, (a >> PAGE_SHIFT) + 2);
        // SAFETY: live blocks, given up.
        unsafe {
            heap.free_large(d).unwrap();
            heap.free_large(c).unwrap();
        }
        heap.release_free_memory();
        heap.check_invariants().unwrap();
        assert_eq!(heap.stats().free_dirty_bytes, 0);
    });
}

// ---- large blocks parked outside the lock -----------------------------------

/// Parked large blocks ([`crate::kept`]): a free parks a block, another
/// thread's allocation takes one, a decay pass drains them, all at once.
/// Each block has a payload cell standing in for its record's fields and
/// memory: whoever empties a slot owns the block and writes it, so loom
/// reports two owners at once, or an owner not ordered after the parking
/// free's writes. At the end every block is owned once or still parked.
#[test]
fn loom_kept_park_take_drain() {
    use crate::kept::Kept;
    use crate::span::Span;

    struct Block {
        rec: *mut Span,
        payload: UnsafeCell<u64>,
    }
    // SAFETY: `rec` is a boxed record freed at the end of the model; the
    // model's slot protocol decides who touches it.
    unsafe impl Send for Block {}
    // SAFETY: as above.
    unsafe impl Sync for Block {}

    model(|| {
        let blocks: Arc<Vec<Block>> = Arc::new(
            (0..2)
                .map(|i| Block {
                    rec: Box::into_raw(Box::new(Span::new(
                        16 * (i + 1),
                        16,
                        SpanState::InUse,
                        false,
                    ))),
                    payload: UnsafeCell::new(0),
                })
                .collect(),
        );
        let find = |blocks: &[Block], rec: *mut Span| -> usize {
            blocks
                .iter()
                .position(|b| b.rec == rec)
                .expect("a model block")
        };
        let kept = Arc::new(Kept::new());
        // Block 0 parked before the threads start.
        blocks[0].payload.with_mut(|p| unsafe { *p = 1 });
        // SAFETY: a block the model owns, 16 pages.
        assert!(unsafe { kept.park(blocks[0].rec, 16) });

        let freer = {
            let (blocks, kept) = (blocks.clone(), kept.clone());
            thread::spawn(move || {
                blocks[1].payload.with_mut(|p| unsafe { *p = 2 });
                // SAFETY: as above; true when parked, else still ours.
                unsafe { kept.park(blocks[1].rec, 16) }
            })
        };
        let taker = {
            let (blocks, kept) = (blocks.clone(), kept.clone());
            thread::spawn(move || {
                kept.take(15).map(|rec| {
                    let i = find(&blocks, rec);
                    blocks[i].payload.with_mut(|p| unsafe { *p += 10 });
                    i
                })
            })
        };
        let mut owned = vec![false; 2];
        kept.take_parked_since(u64::MAX, |rec| {
            let i = find(&blocks, rec);
            blocks[i].payload.with_mut(|p| unsafe { *p += 100 });
            owned[i] = true;
        });
        let parked = freer.join().unwrap();
        if !parked {
            owned[1] = true;
        }
        if let Some(i) = taker.join().unwrap() {
            assert!(!owned[i], "block {i} had two owners");
            owned[i] = true;
        }
        kept.take_parked_since(u64::MAX, |rec| {
            let i = find(&blocks, rec);
            assert!(!owned[i], "block {i} parked and owned");
            owned[i] = true;
        });
        assert_eq!(owned, [true, true], "a block was lost");
        for b in blocks.iter() {
            // SAFETY: boxed above, no longer parked.
            drop(unsafe { Box::from_raw(b.rec) });
        }
    });
}
