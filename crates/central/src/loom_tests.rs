//! Loom models of a class's transfer cache and central list, and of the
//! cross-thread free path through them. Run with
//! `RUSTFLAGS="--cfg strata_loom" cargo test --release --workspace loom` (see
//! docs/concurrency.md).
//!
//! The class is one with two objects per span and batches of two, over
//! [`FakePages`]; under loom a transfer cache holds two batches
//! (`sync::TRANSFER_SLOTS`), so full caches, partial batches, emptied spans
//! and fresh spans are all a few steps away.

use std::boxed::Box;
use std::collections::HashSet;
use std::sync::Mutex;
use std::vec::Vec;

use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::fake::{alloc, free, FakePages};
use crate::{Central, CLASSES};
use strata_testkit::loom_model::{model, on_big_stack};

/// A class with two objects per span and batches of two (32 KiB objects).
fn class() -> u8 {
    let c = CLASSES
        .iter()
        .position(|c| c.objects == 2 && c.batch == 2)
        .expect("a class of two objects per span") as u8;
    assert_eq!(crate::transfer_capacity(&CLASSES[c as usize]), 2);
    c
}

/// The central layer under test, and the objects handed out and not yet
/// returned (a std mutex: held only around set operations, never across a
/// loom operation, so it cannot block a model thread).
struct World {
    central: Central<FakePages>,
    live: Mutex<HashSet<usize>>,
}

impl World {
    fn new() -> Arc<World> {
        on_big_stack(|| {
            Arc::new(World {
                central: Central::new(FakePages::new()),
                live: Mutex::new(HashSet::new()),
            })
        })
    }

    /// Takes up to `n` objects; checks none of them is live already.
    fn alloc(&self, n: usize) -> Vec<usize> {
        let objs = alloc(&self.central, class(), n);
        let got = objs.len();
        assert!(got >= 1 && got <= n, "asked {n}, got {got}");
        let mut live = self.live.lock().unwrap();
        for &o in &objs {
            assert!(live.insert(o), "object {o:#x} handed out twice");
        }
        objs
    }

    /// Gives `objs` back as one list.
    fn free(&self, objs: &[usize]) {
        {
            let mut live = self.live.lock().unwrap();
            for o in objs {
                assert!(live.remove(o), "object {o:#x} freed but not live");
            }
        }
        // SAFETY: live objects of this class, given up.
        unsafe { free(&self.central, class(), objs) };
    }

    /// With nothing live: every object of every span the class holds is
    /// either free in its span or parked in the transfer cache.
    fn conserved(&self) {
        assert!(self.live.lock().unwrap().is_empty());
        let s = self.central.class_stats(class());
        let per_span = CLASSES[class() as usize].objects as usize;
        assert_eq!(
            s.span_free_objects + s.transfer_objects,
            s.spans * per_span,
            "objects lost or duplicated: {s:?}"
        );
        assert_eq!(s.spans, self.central.pages().live_spans());
        // The shared transfer budget counts exactly the parked batches.
        let info = &CLASSES[class() as usize];
        assert_eq!(
            self.central.transfer_bytes.load(Ordering::Relaxed),
            s.transfer_objects * info.size as usize,
            "the transfer budget drifted"
        );
        // Draining the transfer cache empties every span: all go back.
        self.central.drain_transfer_caches();
        let s = self.central.class_stats(class());
        assert_eq!(
            (s.spans, s.span_free_objects, s.transfer_objects),
            (0, 0, 0)
        );
        assert_eq!(self.central.pages().live_spans(), 0);
        assert_eq!(self.central.transfer_bytes.load(Ordering::Relaxed), 0);
    }
}

/// Three threads move full and partial batches of one class at once into a
/// transfer cache that holds two batches' worth (so what does not fit goes
/// to the spans, a span emptied that way back to the page source) and out
/// of it, the central list or a fresh span. No object is handed out twice,
/// and at the end every object is accounted for: `span_free_objects +
/// transfer_objects == spans * objects_per_span`.
#[test]
fn loom_central_batches_conserve_objects() {
    model(|| {
        let w = World::new();
        let (b1, b2, b3) = (w.alloc(2), w.alloc(2), w.alloc(2));
        let t1 = {
            let w = w.clone();
            thread::spawn(move || {
                w.free(&b1); // full: to the transfer cache
                let one = w.alloc(1); // parked objects first, else a span
                w.free(&one); // a part: parked if there is room
            })
        };
        let t2 = {
            let w = w.clone();
            thread::spawn(move || {
                w.free(&b2); // full: transfer cache, or spans if it is full
                w.free(&b3[..1]); // parts: parked, or to the span, which
                w.free(&b3[1..]); // empties and goes back to the pages
            })
        };
        let full = w.alloc(2);
        w.free(&full);
        t1.join().unwrap();
        t2.join().unwrap();
        w.conserved();
    });
}

/// Requests for less than a batch (thread caches in slow start) while the
/// only free objects sit in a parked batch: each thread takes one object
/// of it (the other stays parked), or, if the other thread's free parked
/// its object back first, takes that one, or takes a fresh span. No object
/// is handed out twice, none is lost, the budget stays exact.
#[test]
fn loom_central_partial_requests_share_a_parked_batch() {
    model(|| {
        let w = World::new();
        let b = w.alloc(2);
        w.free(&b); // parked whole: no span has a free object
        let t = {
            let w = w.clone();
            thread::spawn(move || {
                let one = w.alloc(1);
                w.free(&one);
            })
        };
        let one = w.alloc(1);
        w.free(&one);
        t.join().unwrap();
        w.conserved();
    });
}

/// The cross-thread free path: objects allocated by one thread, freed as a
/// full batch by another, reach the first thread again through the
/// transfer cache. The batch's addresses travel through a loom `AtomicPtr`
/// (Release / Acquire), as they would through whatever channel a program
/// uses; the
/// allocating thread then asks for a full batch while the freeing thread
/// may still be on its way: it gets the very batch back (a transfer-cache
/// hit) or fresh objects, never an object still in use.
#[test]
fn loom_central_cross_thread_free() {
    model(|| {
        let w = World::new();
        let mailbox = Arc::new(AtomicPtr::new(core::ptr::null_mut::<Vec<usize>>()));
        let freed = Arc::new(AtomicUsize::new(0));
        let consumer = {
            let (w, mailbox, freed) = (w.clone(), mailbox.clone(), freed.clone());
            thread::spawn(move || {
                let sent = loop {
                    let h = mailbox.load(Ordering::Acquire);
                    if !h.is_null() {
                        break h;
                    }
                    thread::yield_now();
                };
                // SAFETY: the producer's `Box::into_raw`, published with
                // Release and received once.
                let objs = unsafe { Box::from_raw(sent) };
                w.free(&objs);
                freed.store(1, Ordering::Release);
            })
        };
        // The producer: a full batch, handed over whole.
        let batch = w.alloc(2);
        let head = batch[0];
        mailbox.store(Box::into_raw(Box::new(batch.clone())), Ordering::Release);
        let consumer_done = freed.load(Ordering::Acquire) == 1;
        let again = w.alloc(2);
        if consumer_done {
            // The consumer's free finished first: its full batch is the one
            // in the transfer cache, and comes back whole.
            assert_eq!(again[0], head, "the freed batch did not come back");
            assert_eq!(again, batch);
        }
        w.free(&again);
        consumer.join().unwrap();
        w.conserved();
    });
}
