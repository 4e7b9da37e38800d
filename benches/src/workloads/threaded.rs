//! Multi-threaded workloads (8-10): cross-thread frees, thread churn and a
//! larson-like benchmark; and [`on_threads`], which runs the threads of every
//! multi-threaded workload. Threads are scoped, so the allocator is only
//! borrowed (`A: Sync`).

use core::alloc::GlobalAlloc;
use std::sync::{mpsc, Mutex};
use std::thread;

use strata_testkit::rng::Rng;

use super::block::Block;
use super::{fresh, layout, poke};
use crate::measure::{Deadline, Meter, Sample};

/// Number of batches that can wait in the producer/consumer channel.
const QUEUE_DEPTH: usize = 16;

/// Workload 8: one thread allocates `objects` blocks of `size` bytes and sends
/// them in batches of `batch` addresses through a bounded channel to a second
/// thread that frees them. One op = one object.
pub fn producer_consumer<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    objects: u64,
    size: usize,
    batch: usize,
    dl: Deadline,
) -> Sample {
    let l = layout(size);
    let meter = Meter::start();
    let produced = thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Vec<usize>>(QUEUE_DEPTH);
        s.spawn(move || {
            for addrs in rx {
                for addr in addrs {
                    // SAFETY: each address is a live block allocated by the
                    // producer with `l` and sent exactly once.
                    unsafe { a.dealloc(addr as *mut u8, l) };
                }
            }
        });
        let mut produced = 0u64;
        while produced < objects && !dl.expired() {
            let n = batch.min((objects - produced) as usize);
            let mut addrs = Vec::with_capacity(n);
            for i in 0..n {
                let p = fresh(a, l);
                // SAFETY: `p` is a live block of `size >= 1` bytes.
                unsafe { poke(p, 0, i as u8) };
                addrs.push(p as usize);
            }
            tx.send(addrs).expect("consumer thread hung up");
            produced += n as u64;
        }
        produced
    });
    meter.finish(produced, objects)
}

/// Body of one short-lived thread: `pairs` alloc/free pairs of 16..=256 B.
fn churn_body<A: GlobalAlloc + ?Sized>(a: &A, pairs: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    for i in 0..pairs {
        let l = layout(rng.range(16, 256));
        let p = fresh(a, l);
        // SAFETY: `p` is a live block of at least 16 bytes from `a.alloc(l)`,
        // freed once.
        unsafe {
            poke(p, 0, i as u8);
            a.dealloc(p, l);
        }
    }
}

/// Workload 9: spawn `threads` threads, `wave` at a time (each wave joined
/// before the next), each doing `pairs` small alloc/free pairs.
/// One op = one thread's whole life.
pub fn thread_churn<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    threads: usize,
    wave: usize,
    pairs: usize,
    dl: Deadline,
) -> Sample {
    let meter = Meter::start();
    let mut done = 0usize;
    while done < threads && !dl.expired() {
        let n = wave.min(threads - done);
        thread::scope(|s| {
            for t in 0..n {
                let seed = (done + t) as u64;
                s.spawn(move || churn_body(a, pairs, seed));
            }
        });
        done += n;
    }
    meter.finish(done as u64, threads as u64)
}

/// Runs `f(t)` on `n` scoped threads, `t = 0..n`, and returns the results
/// in thread order; a panic in any thread is re-raised naming `what`.
pub(super) fn on_threads<R: Send>(n: usize, what: &str, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let f = &f;
    thread::scope(|s| {
        let hs: Vec<_> = (0..n).map(|t| s.spawn(move || f(t))).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("{what} thread panicked"))
            })
            .collect()
    })
}

/// One larson-like thread: takes over `live` (or fills `slots` new blocks
/// when it is empty), replaces a random slot with a random 16..=1000 B block
/// `ops` times, and returns the array for the next generation.
fn larson_worker<A: GlobalAlloc + ?Sized>(
    a: &A,
    mut live: Vec<Block>,
    slots: usize,
    ops: u64,
    seed: u64,
    dl: Deadline,
) -> (Vec<Block>, u64) {
    let mut rng = Rng::new(seed);
    if live.is_empty() {
        live = (0..slots)
            .map(|_| Block::new(a, rng.range(16, 1000)))
            .collect();
    }
    let mut done = 0u64;
    for i in 0..ops {
        if i % 1024 == 0 && dl.expired() {
            break;
        }
        let slot = &mut live[rng.below(slots)];
        // SAFETY: every slot holds a live Block from `a`, replaced right after.
        unsafe { slot.free(a) };
        *slot = Block::new(a, rng.range(16, 1000));
        done += 1;
    }
    (live, done)
}

/// Workload 10 (larson-like, after Larson and Krishnan's server simulation):
/// `threads` threads, each with `slots` live blocks, replacing a random slot
/// with a random 16..=1000 B block `ops_per_thread` times; then each thread
/// ends and hands its blocks to a new thread (which frees them), for
/// `generations` generations. One op = one replacement (ns/op = wall / all
/// ops).
pub fn larson<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    threads: usize,
    slots: usize,
    ops_per_thread: u64,
    generations: u64,
    dl: Deadline,
) -> Sample {
    let arrays: Vec<Mutex<Vec<Block>>> = (0..threads).map(|_| Mutex::default()).collect();
    let meter = Meter::start();
    let mut done = 0u64;
    for g in 0..generations {
        if dl.expired() {
            break;
        }
        let ends = on_threads(threads, "larson", |t| {
            let live = std::mem::take(&mut *arrays[t].lock().expect("larson array"));
            let seed = 100 + (g * threads as u64) + t as u64;
            larson_worker(a, live, slots, ops_per_thread, seed, dl)
        });
        for ((live, n), array) in ends.into_iter().zip(&arrays) {
            *array.lock().expect("larson array") = live;
            done += n;
        }
    }
    for array in arrays {
        for b in array.into_inner().expect("larson array") {
            // SAFETY: each remaining slot holds a live Block from `a`.
            unsafe { b.free(a) };
        }
    }
    meter.finish(done, ops_per_thread * threads as u64 * generations)
}
