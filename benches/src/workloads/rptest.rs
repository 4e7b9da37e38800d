//! rptest style (rpmalloc's benchmark, as run by mimalloc-bench): threads
//! allocate blocks with sizes from a heavy-tailed distribution, keep each
//! for a random lifetime, and hand some to another thread to free.

use core::alloc::GlobalAlloc;
use std::sync::{Mutex, MutexGuard};

use strata_testkit::rng::Rng;

use super::block::{table, Block, TABLE};
use super::threaded::on_threads;
use crate::measure::{Deadline, Meter, Sample};

/// Lifetimes are 1..WHEEL steps (a time wheel of this many buckets).
const WHEEL: usize = 4096;
/// One block in this many is freed by the next thread, not its own.
const CROSS_ONE_IN: usize = 8;
/// A thread frees what others sent it every this many steps, and sends
/// blocks in batches of this many.
const MAIL_EVERY: usize = 256;

type Mailbox = Mutex<Vec<Block>>;

fn lock(m: &Mailbox) -> MutexGuard<'_, Vec<Block>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frees every block in `blocks`.
fn free_all<A: GlobalAlloc + ?Sized>(a: &A, blocks: &mut Vec<Block>) {
    for b in blocks.drain(..) {
        // SAFETY: blocks in a wheel bucket, an inbox or a mailbox are live
        // Blocks from `a`, each in exactly one of them.
        unsafe { b.free(a) };
    }
}

fn rptest_thread<A: GlobalAlloc + ?Sized>(
    a: &A,
    mail: &[Mailbox],
    t: usize,
    steps: u64,
    dl: Deadline,
) -> u64 {
    let seed = 900 + t as u64;
    let sizes = table(seed, |r| r.log_uniform(16, 16_000));
    let lives = table(seed + 1, |r| r.log_uniform(1, WHEEL - 1));
    let mut rng = Rng::new(seed);
    let mut wheel: Vec<Vec<Block>> = (0..WHEEL).map(|_| Vec::new()).collect();
    let (mut inbox, mut outbox) = (Vec::new(), Vec::with_capacity(MAIL_EVERY));
    let next = &mail[(t + 1) % mail.len()];
    let mut done = 0u64;
    for i in 0..steps as usize {
        if i % MAIL_EVERY == 0 {
            if dl.expired() {
                break;
            }
            std::mem::swap(&mut *lock(&mail[t]), &mut inbox);
            free_all(a, &mut inbox);
        }
        let x = rng.next_u64() as usize;
        let due = (i + lives[(x >> 12) & (TABLE - 1)]) % WHEEL;
        wheel[due].push(Block::new(a, sizes[x & (TABLE - 1)]));
        for b in wheel[i % WHEEL].drain(..) {
            if rng.below(CROSS_ONE_IN) == 0 {
                outbox.push(b);
            } else {
                // SAFETY: `b` was in exactly one bucket, now drained.
                unsafe { b.free(a) };
            }
        }
        if outbox.len() >= MAIL_EVERY {
            lock(next).append(&mut outbox);
        }
        done += 1;
    }
    lock(next).append(&mut outbox);
    for bucket in &mut wheel {
        free_all(a, bucket);
    }
    done
}

/// rptest: `threads` threads, each doing `steps` steps of: allocate a block
/// of 16..=16000 B (log-uniform: most are small), keep it 1..4095 steps
/// (log-uniform), then free it, or, one time in 8, send it to
/// the next thread, which frees it. One op = one step (one block's life).
pub fn rptest<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    threads: usize,
    steps: u64,
    dl: Deadline,
) -> Sample {
    let mail: Vec<Mailbox> = (0..threads).map(|_| Mutex::default()).collect();
    let meter = Meter::start();
    let done = on_threads(threads, "rptest", |t| rptest_thread(a, &mail, t, steps, dl));
    for m in &mail {
        free_all(a, &mut lock(m));
    }
    meter.finish(done.into_iter().sum(), steps * threads as u64)
}
