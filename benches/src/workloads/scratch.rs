//! cache-scratch style (Hoard's passive false-sharing test, as run by
//! mimalloc-bench): the main thread allocates one small object per thread,
//! back to back, and hands them out; each thread frees the object it got,
//! then allocates, writes heavily and frees an object of the same size over
//! and over. An allocator that gives a thread the object another thread
//! freed (or one next to another thread's) puts objects written by
//! different threads on one cache line, and every write then bounces the
//! line between cores.

use core::alloc::GlobalAlloc;

use super::threaded::on_threads;
use super::{fresh, layout, poke};
use crate::measure::{Deadline, Meter, Sample};

/// The value thread `tag` writes in repetition `r` (differs between threads,
/// so a byte written by the wrong thread shows).
fn value(r: u64, tag: u8) -> u8 {
    (r as u8).wrapping_add(tag)
}

fn scratch_thread<A: GlobalAlloc + ?Sized>(
    a: &A,
    given: usize,
    size: usize,
    iterations: u64,
    reps: u64,
    tag: u8,
    dl: Deadline,
) -> u64 {
    let l = layout(size);
    // SAFETY: `given` is a live block of `size` bytes that the main thread
    // allocated from `a` with `l` and handed to this thread alone.
    unsafe { a.dealloc(given as *mut u8, l) };
    let mut done = 0u64;
    for i in 0..iterations {
        if i % 64 == 0 && dl.expired() {
            break;
        }
        let p = fresh(a, l);
        for r in 0..reps {
            for k in 0..size {
                // SAFETY: `k < size`, inside the live block `p`.
                unsafe { poke(p, k, value(r, tag)) };
            }
        }
        // SAFETY: `size - 1` is inside the live block.
        let got = unsafe { p.add(size - 1).read_volatile() };
        let want = value(reps - 1, tag);
        assert_eq!(
            got, want,
            "cache-scratch: object {p:p} reads {got:#x}, this thread wrote {want:#x}: \
             another thread holds overlapping memory"
        );
        // SAFETY: `p` came from `a.alloc(l)` and is freed once.
        unsafe { a.dealloc(p, l) };
        done += 1;
    }
    done
}

/// cache-scratch: `threads` threads, each given one `size`-byte object
/// allocated by the main thread, each doing `iterations` x (alloc `size`
/// bytes, write every byte `reps` times, check, free). One op = one
/// iteration (alloc, `reps * size` byte writes, free).
pub fn cache_scratch<A: GlobalAlloc + Sync + ?Sized>(
    a: &A,
    threads: usize,
    iterations: u64,
    reps: u64,
    size: usize,
    dl: Deadline,
) -> Sample {
    assert!(reps > 0 && size > 0);
    let handed: Vec<usize> = (0..threads)
        .map(|_| fresh(a, layout(size)) as usize)
        .collect();
    let meter = Meter::start();
    let done = on_threads(threads, "cache-scratch", |t| {
        let tag = (t as u8).wrapping_add(1).wrapping_mul(17);
        scratch_thread(a, handed[t], size, iterations, reps, tag, dl)
    });
    let done = done.into_iter().sum();
    meter.finish(done, iterations * threads as u64)
}
