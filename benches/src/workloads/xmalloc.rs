//! xmalloc-test style (Lever and Boreham's xmalloc-test, as run by
//! mimalloc-bench): some threads only allocate, others only free, and the
//! objects go from the first to the second through one shared queue, so any
//! consumer frees any producer's objects. Thread-cache allocators see every
//! free land in a cache that never allocates.

use core::alloc::GlobalAlloc;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;

use strata_testkit::rng::Rng;

use super::block::{table, Block, TABLE};
use super::threaded::on_threads;
use crate::measure::{Deadline, Meter, Sample};

/// Objects per batch handed from a producer to a consumer.
pub const BATCH: usize = 64;
/// Batches that may wait in the queue, per consumer.
const DEPTH: usize = 4;

#[derive(Default)]
struct Queue {
    /// Batches of addresses waiting to be freed.
    full: Vec<Vec<usize>>,
    /// Emptied batches, reused so the queue itself stops allocating.
    spare: Vec<Vec<usize>>,
    /// Producers still running.
    producing: usize,
    /// A consumer died: producers stop instead of waiting for room.
    closed: bool,
}

/// The many-to-many queue between producers and consumers (bounded, so the
/// producers cannot run ahead and the memory in flight stays small).
struct Exchange {
    q: Mutex<Queue>,
    filled: Condvar,
    drained: Condvar,
    cap: usize,
}

impl Exchange {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a full batch (waiting for room) and returns an empty one;
    /// `None` when the consumers are gone.
    fn put(&self, batch: Vec<usize>) -> Option<Vec<usize>> {
        let mut q = self.lock();
        while q.full.len() >= self.cap && !q.closed {
            q = self.drained.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.closed {
            return None;
        }
        q.full.push(batch);
        self.filled.notify_one();
        Some(q.spare.pop().unwrap_or_else(|| Vec::with_capacity(BATCH)))
    }

    /// Gives back an emptied batch and takes a full one; `None` once every
    /// producer is done and the queue is empty.
    fn take(&self, empty: Option<Vec<usize>>) -> Option<Vec<usize>> {
        let mut q = self.lock();
        q.spare.extend(empty);
        loop {
            if let Some(b) = q.full.pop() {
                self.drained.notify_one();
                return Some(b);
            }
            if q.producing == 0 {
                return None;
            }
            q = self.filled.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Marks a producer done (or a consumer dead) when its thread ends, even by
/// a panic, so the threads on the other side do not wait forever.
struct Leaving<'a>(&'a Exchange, bool);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        if self.1 {
            q.producing -= 1;
        } else if thread::panicking() {
            q.closed = true;
        }
        self.0.filled.notify_all();
        self.0.drained.notify_all();
    }
}

fn produce<A: GlobalAlloc + ?Sized>(a: &A, ex: &Exchange, objects: u64, seed: u64, dl: Deadline) {
    let _leaving = Leaving(ex, true);
    // 3/4 of the objects 16..=128 B, the rest 129..=1024 B.
    let sizes = table(seed, |r| match r.below(4) {
        0 => r.range(129, 1024),
        _ => r.range(16, 128),
    });
    let mut rng = Rng::new(seed);
    let mut batch = Vec::with_capacity(BATCH);
    let mut made = 0u64;
    while made < objects && !dl.expired() {
        let n = BATCH.min((objects - made) as usize);
        for _ in 0..n {
            let size = sizes[rng.next_u64() as usize & (TABLE - 1)];
            batch.push(Block::new(a, size).addr());
        }
        match ex.put(batch) {
            Some(empty) => batch = empty,
            None => return,
        }
        made += n as u64;
    }
}

fn consume<A: GlobalAlloc + ?Sized>(a: &A, ex: &Exchange) -> u64 {
    let _leaving = Leaving(ex, false);
    let (mut freed, mut empty) = (0u64, None);
    while let Some(mut batch) = ex.take(empty.take()) {
        for &addr in &batch {
            // SAFETY: every queued address is a live Block from `a`, queued
            // once by its producer and taken by exactly one consumer.
            unsafe { Block::from_addr(addr).free(a) };
        }
        freed += batch.len() as u64;
        batch.clear();
        empty = Some(batch);
    }
    freed
}

/// xmalloc-test: `producers` threads each allocate `objects` stamped blocks
/// (16..=1024 B, mostly small) and queue them in batches of 64;
/// `consumers` threads take batches, check and free them. One op = one
/// object (allocated on a producer, freed on a consumer).
pub fn xmalloc_test<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    producers: usize,
    consumers: usize,
    objects: u64,
    dl: Deadline,
) -> Sample {
    let ex = Exchange {
        q: Mutex::new(Queue {
            producing: producers,
            ..Queue::default()
        }),
        filled: Condvar::new(),
        drained: Condvar::new(),
        cap: DEPTH * consumers,
    };
    let meter = Meter::start();
    let freed = on_threads(producers + consumers, "xmalloc-test", |t| {
        if t < producers {
            produce(a, &ex, objects, 500 + t as u64, dl);
            0
        } else {
            consume(a, &ex)
        }
    });
    let freed = freed.into_iter().sum();
    meter.finish(freed, objects * producers as u64)
}
