//! Multi-threaded use of strata: cross-thread frees through channels, many
//! short-lived threads, allocation inside thread-local destructors, and a
//! producer/consumer stream of small boxes.

#[global_allocator]
static GLOBAL: strata::Strata = strata::Strata;

mod common;

use common::{check, fill, long_tests, with_deadline, Rng, KIB, MIB};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

/// Sizes from 8 B to 1 MiB, across small classes, page-sized and large spans.
const SIZES: [usize; 16] = [
    8,
    16,
    24,
    48,
    100,
    256,
    1000,
    4096,
    10_000,
    40 * KIB,
    100_000,
    255 * KIB,
    300 * KIB,
    512 * KIB + 8,
    MIB - 8,
    MIB,
];

/// One allocation travelling between threads, in one of several shapes.
enum Payload {
    Small(Box<u64>),
    Words(Vec<u64>),
    Bytes(Box<[u8]>),
    Text(String),
}

struct Msg {
    seed: u64,
    payload: Payload,
}

fn seed_of(round: usize, tid: usize, idx: usize) -> u64 {
    ((round as u64) << 48) | ((tid as u64) << 32) | idx as u64
}

fn make(seed: u64, size: usize, shape: usize) -> Payload {
    match shape % 4 {
        0 => Payload::Small(Box::new(seed ^ 0xA5A5_A5A5_A5A5_A5A5)),
        // Element-wise shapes are capped so the debug build stays quick; the
        // byte shape covers every size.
        1 => {
            let n = (size.min(128 * KIB) / 8).max(1);
            Payload::Words((0..n as u64).map(|i| i.wrapping_mul(31) ^ seed).collect())
        }
        2 => {
            let mut b = vec![0u8; size].into_boxed_slice();
            fill(&mut b, seed);
            Payload::Bytes(b)
        }
        _ => {
            let letters: Vec<u8> = (0..size.min(16 * KIB))
                .map(|i| b'a' + ((i as u64 ^ seed) % 26) as u8)
                .collect();
            Payload::Text(String::from_utf8(letters).expect("ascii"))
        }
    }
}

fn verify(msg: &Msg, what: &str) {
    let seed = msg.seed;
    match &msg.payload {
        Payload::Small(b) => assert_eq!(**b, seed ^ 0xA5A5_A5A5_A5A5_A5A5, "{what}: small box"),
        Payload::Words(v) => {
            let bad = v
                .iter()
                .enumerate()
                .position(|(i, w)| *w != (i as u64).wrapping_mul(31) ^ seed);
            assert_eq!(
                bad,
                None,
                "{what}: Vec<u64> of {} words at {:p}",
                v.len(),
                v.as_ptr()
            );
        }
        Payload::Bytes(b) => check(b, seed, what),
        Payload::Text(s) => {
            let bad = s
                .bytes()
                .enumerate()
                .position(|(i, c)| c != b'a' + ((i as u64 ^ seed) % 26) as u8);
            assert_eq!(
                bad,
                None,
                "{what}: String of {} bytes at {:p}",
                s.len(),
                s.as_ptr()
            );
        }
    }
}

#[test]
fn cross_thread_frees_through_channels() {
    let threads = 4;
    let per_thread = if long_tests() { 2000 } else { 120 };
    let rounds = if long_tests() { 20 } else { 4 };
    for round in 0..rounds {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel::<Msg>()).unzip();
        let handles: Vec<_> = rxs
            .into_iter()
            .enumerate()
            .map(|(tid, rx)| {
                let txs = txs.clone();
                thread::spawn(move || {
                    let mut received = 0usize;
                    let mut rng = Rng::new(seed_of(round, tid, 0));
                    for idx in 0..per_thread {
                        let size = SIZES[rng.below(SIZES.len())];
                        let seed = seed_of(round, tid, idx);
                        let msg = Msg {
                            seed,
                            payload: make(seed, size, idx + tid),
                        };
                        verify(&msg, "before sending");
                        let to = (tid + 1 + idx % (threads - 1)) % threads;
                        txs[to].send(msg).expect("receiver alive");
                        // Free what others sent so far, while still allocating.
                        while let Ok(m) = rx.try_recv() {
                            verify(&m, "received (interleaved)");
                            received += 1;
                        }
                    }
                    drop(txs);
                    for m in rx {
                        verify(&m, "received (drain)");
                        received += 1;
                    }
                    received
                })
            })
            .collect();
        drop(txs);
        let total: usize = handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .sum();
        assert_eq!(total, threads * per_thread, "round {round}: messages lost");
    }
}

/// What one short-lived thread returns to the main thread.
struct Survivor {
    seed: u64,
    bytes: Vec<u8>,
}

fn short_lived_worker(t: usize) -> Vec<Survivor> {
    let mut rng = Rng::new(t as u64 * 7919 + 1);
    let mut live: Vec<(u64, Box<[u8]>)> = Vec::new();
    let mut survivors = Vec::new();
    for i in 0..300 {
        let size = if i % 50 == 49 {
            8 * KIB + rng.below(60 * KIB)
        } else {
            1 + rng.below(512)
        };
        let seed = ((t as u64) << 20) | i as u64;
        let mut b = vec![0u8; size].into_boxed_slice();
        fill(&mut b, seed);
        live.push((seed, b));
        if rng.below(3) == 0 {
            // Free a random earlier object, after checking it.
            let j = rng.below(live.len());
            let (s, b) = live.swap_remove(j);
            check(&b, s, "short-lived thread, freed early");
        }
    }
    for (k, (s, b)) in live.into_iter().enumerate() {
        check(&b, s, "short-lived thread, at exit");
        if k % 25 == 0 {
            survivors.push(Survivor {
                seed: s,
                bytes: b.into_vec(),
            });
        }
    }
    survivors
}

#[test]
fn thousand_short_lived_threads() {
    let total = if long_tests() { 10_000 } else { 1000 };
    let wave = 50;
    let mut returned = 0;
    for w in 0..total / wave {
        let handles: Vec<_> = (0..wave)
            .map(|k| {
                let t = w * wave + k;
                thread::spawn(move || short_lived_worker(t))
            })
            .collect();
        for h in handles {
            let survivors = h.join().expect("short-lived thread panicked");
            assert!(!survivors.is_empty());
            for s in &survivors {
                check(&s.bytes, s.seed, "object returned through join");
            }
            returned += survivors.len();
        }
    }
    assert!(returned >= total, "each thread returns at least one object");
}

static TLS_DTOR_CHECKS: AtomicUsize = AtomicUsize::new(0);
static TLS_DTOR_FAILURES: AtomicUsize = AtomicUsize::new(0);

/// A thread-local whose destructor allocates, fills, checks and frees memory of
/// several sizes, and hands one more block to the main thread.
struct AllocatesOnDrop {
    id: Cell<usize>,
    out: Cell<Option<mpsc::Sender<Tagged>>>,
}

/// A buffer and the pattern seed it was filled with.
type Tagged = (u64, Vec<u8>);

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        let id = self.id.get() as u64;
        let out = self.out.take();
        // A panic escaping a TLS destructor aborts the process; count it
        // instead (the panic message is still printed) and fail the test.
        let checks = AssertUnwindSafe(move || {
            for (k, size) in [8usize, 100, 4096, 40 * KIB, 300 * KIB, 2 * MIB]
                .into_iter()
                .enumerate()
            {
                let mut v = vec![0u8; size];
                fill(&mut v, id * 100 + k as u64);
                check(&v, id * 100 + k as u64, "vec allocated in a TLS destructor");
                let mut w: Vec<u64> = Vec::new();
                for i in 0..size as u64 / 8 {
                    w.push(i ^ id);
                }
                assert!(
                    w.iter().enumerate().all(|(i, x)| *x == i as u64 ^ id),
                    "Vec<u64> in TLS destructor"
                );
            }
            if let Some(tx) = out {
                let mut v = vec![0u8; 5000];
                fill(&mut v, id);
                let _ = tx.send((id, v));
            }
        });
        match panic::catch_unwind(checks) {
            Ok(()) => TLS_DTOR_CHECKS.fetch_add(1, Ordering::SeqCst),
            Err(_) => TLS_DTOR_FAILURES.fetch_add(1, Ordering::SeqCst),
        };
    }
}

thread_local! {
    static GUARD: AllocatesOnDrop = const { AllocatesOnDrop { id: Cell::new(0), out: Cell::new(None) } };
}

#[test]
fn allocation_inside_thread_local_destructor() {
    let threads = 40;
    with_deadline(300, "threads with allocating TLS destructors", move || {
        let (tx, rx) = mpsc::channel();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let tx = tx.clone();
                thread::spawn(move || {
                    // Even threads register the guard's destructor before their
                    // first allocation sets up the allocator's per-thread state;
                    // odd threads allocate first.
                    if t % 2 == 0 {
                        GUARD.with(|g| g.id.set(t + 1));
                    }
                    let mut v = vec![0u8; 1000 + t];
                    fill(&mut v, t as u64);
                    check(&v, t as u64, "thread body");
                    GUARD.with(|g| {
                        g.id.set(t + 1);
                        g.out.set(Some(tx));
                    });
                    v
                })
            })
            .collect();
        drop(tx);
        for (t, h) in handles.into_iter().enumerate() {
            let v = h.join().expect("thread with TLS destructor panicked");
            check(&v, t as u64, "vec returned from thread");
        }
        // join returns after the thread's TLS destructors have run.
        let failures = TLS_DTOR_FAILURES.load(Ordering::SeqCst);
        assert_eq!(
            failures, 0,
            "checks failed inside TLS destructors (see panic messages)"
        );
        let mut seen: Vec<u64> = rx
            .iter()
            .map(|(id, v)| {
                check(&v, id, "vec sent from a TLS destructor");
                id
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=threads as u64).collect::<Vec<_>>());
    });
    assert!(
        TLS_DTOR_CHECKS.load(Ordering::SeqCst) >= threads,
        "every TLS destructor ran to the end"
    );
}

#[test]
fn producer_consumer_200k_small_boxes() {
    let n: u64 = if long_tests() { 2_000_000 } else { 200_000 };
    let (tx, rx) = mpsc::sync_channel::<(u64, Box<u64>, Box<[u64]>)>(512);
    let producer = thread::spawn(move || {
        for i in 0..n {
            let len = (i % 7) as usize + 1;
            let arr: Box<[u64]> = (0..len as u64).map(|k| i * 8 + k).collect();
            tx.send((i, Box::new(!i), arr)).expect("consumer alive");
        }
    });
    let consumer = thread::spawn(move || {
        let mut expect = 0u64;
        for (i, b, arr) in rx {
            assert_eq!(i, expect, "messages out of order");
            assert_eq!(*b, !i, "box {i} corrupted");
            assert_eq!(arr.len(), (i % 7) as usize + 1);
            for (k, x) in arr.iter().enumerate() {
                assert_eq!(*x, i * 8 + k as u64, "array box {i} corrupted at {k}");
            }
            expect += 1;
        }
        expect
    });
    producer.join().expect("producer panicked");
    assert_eq!(consumer.join().expect("consumer panicked"), n);
}

/// A pthread key created after strata's runs its destructor after strata has
/// flushed and destroyed the thread's cache (glibc runs key destructors in
/// key order): allocations and frees there must be served without a cache.
#[test]
fn allocation_in_a_pthread_key_destructor_after_the_cache_is_gone() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CHECKED: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn late(arg: *mut libc::c_void) {
        let n = arg as usize;
        let v: Vec<u64> = (0..n as u64).collect();
        let b = Box::new([7u8; 300]);
        let big = vec![1u8; 1 << 20];
        if v.iter().sum::<u64>() == (n as u64) * (n as u64 - 1) / 2
            && b[299] == 7
            && big[12345] == 1
        {
            CHECKED.fetch_add(1, Ordering::SeqCst);
        }
    }

    // Make sure strata's key exists first (this thread allocates).
    drop(vec![0u8; 64]);
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: registers a plain destructor function.
    assert_eq!(unsafe { libc::pthread_key_create(&mut key, Some(late)) }, 0);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let keep: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
                assert_eq!(*keep[999], 999);
                // SAFETY: a valid key; the value is a plain number.
                unsafe { libc::pthread_setspecific(key, (100 + i) as *const libc::c_void) };
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(CHECKED.load(Ordering::SeqCst), 8);
    // SAFETY: no thread uses the key any more.
    unsafe { libc::pthread_key_delete(key) };
}

/// Threads replacing large blocks at once (the page heap's lock contended,
/// so freed blocks park outside it and the next allocations take them):
/// every block keeps its contents while live, and no block is handed to
/// two threads (each thread's blocks are checked before they are freed,
/// and two owners would overwrite each other's pattern).
#[test]
fn threads_replacing_large_blocks_keep_their_contents() {
    use std::alloc::{alloc, dealloc, Layout};
    const EDGE: usize = 4096;
    /// A block's first and last EDGE bytes, as a slice.
    ///
    /// # Safety
    /// `p` is a live block of `size >= EDGE` bytes, its edges written.
    unsafe fn edge<'a>(p: *mut u8, size: usize, end: bool) -> &'a mut [u8] {
        let at = if end { size - EDGE } else { 0 };
        // SAFETY: caller's contract.
        unsafe { std::slice::from_raw_parts_mut(p.add(at), EDGE) }
    }
    let rounds = if long_tests() { 20_000 } else { 2_000 };
    with_deadline(300, "threads replacing large blocks", move || {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                thread::spawn(move || {
                    let mut rng = Rng::new(0x1a2e + t);
                    let mut ring: [Option<(usize, usize, u64)>; 4] = [None; 4];
                    for i in 0..rounds {
                        // A few sizes, so that freed blocks fit later ones.
                        let size = [300 * KIB, 512 * KIB, 700 * KIB, MIB][rng.below(4)]
                            - rng.below(3) * 4096;
                        let layout = Layout::from_size_align(size, 8).unwrap();
                        // SAFETY: a nonzero size.
                        let p = unsafe { alloc(layout) };
                        assert!(!p.is_null(), "out of memory");
                        assert_eq!(p as usize % 4096, 0, "a large block is page-aligned");
                        let seed = (t << 32) | i as u64;
                        // SAFETY: a live block of `size` bytes; its edges are
                        // written before they are read.
                        unsafe {
                            p.write_bytes(0, EDGE);
                            p.add(size - EDGE).write_bytes(0, EDGE);
                            fill(edge(p, size, false), seed);
                            fill(edge(p, size, true), !seed);
                        }
                        if let Some((q, n, s)) = ring[i % 4].replace((p as usize, size, seed)) {
                            let q = q as *mut u8;
                            // SAFETY: a live block of this thread's, `n` bytes,
                            // its edges filled; freed with its layout.
                            unsafe {
                                check(edge(q, n, false), s, "a large block's start");
                                check(edge(q, n, true), !s, "a large block's end");
                                dealloc(q, Layout::from_size_align(n, 8).unwrap());
                            }
                        }
                    }
                    for (q, n, _) in ring.into_iter().flatten() {
                        // SAFETY: as above.
                        unsafe { dealloc(q as *mut u8, Layout::from_size_align(n, 8).unwrap()) };
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker panicked");
        }
    });
}
