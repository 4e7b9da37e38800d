//! Multi-threaded workloads (8-10): cross-thread frees, thread churn and a
//! small larson-like benchmark. Threads are scoped, so the allocator is only
//! borrowed (`A: Sync`).

use core::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;
use std::thread;

use super::{fresh, layout, poke, XorShift};
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
    let mut rng = XorShift::new(seed);
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

/// One larson-like worker: `slots` live blocks, `ops` random replacements.
fn larson_worker<A: GlobalAlloc + ?Sized>(
    a: &A,
    slots: usize,
    ops: u64,
    seed: u64,
    dl: Deadline,
) -> u64 {
    let mut rng = XorShift::new(seed);
    let mut live: Vec<(*mut u8, Layout)> = (0..slots)
        .map(|_| {
            let l = layout(rng.range(16, 1000));
            (fresh(a, l), l)
        })
        .collect();
    let mut done = 0u64;
    for i in 0..ops {
        if i % 1024 == 0 && dl.expired() {
            break;
        }
        let slot = &mut live[rng.below(slots)];
        // SAFETY: every slot holds a live block allocated with its layout.
        unsafe { a.dealloc(slot.0, slot.1) };
        let l = layout(rng.range(16, 1000));
        let p = fresh(a, l);
        // SAFETY: `p` is a live block of at least 16 bytes.
        unsafe { poke(p, 0, i as u8) };
        *slot = (p, l);
        done += 1;
    }
    for (p, l) in live {
        // SAFETY: each slot still holds a live block allocated with `l`.
        unsafe { a.dealloc(p, l) };
    }
    done
}

/// Workload 10 (larson-like, small): `threads` threads, each with `slots`
/// live blocks, replacing a random slot with a random 16..=1000 B block
/// `ops_per_thread` times. One op = one replacement (ns/op = wall / all ops).
pub fn larson<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    threads: usize,
    slots: usize,
    ops_per_thread: u64,
    dl: Deadline,
) -> Sample {
    let meter = Meter::start();
    let done: u64 = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || larson_worker(a, slots, ops_per_thread, 100 + t as u64, dl)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("larson worker panicked"))
            .sum()
    });
    meter.finish(done, ops_per_thread * threads as u64)
}
