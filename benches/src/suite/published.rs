//! Rows 11-16: workloads written from the published descriptions of the
//! mimalloc-bench suite's benchmarks (their code is not used).

use core::alloc::GlobalAlloc;

use super::{Kind, Row};
use crate::measure::{Deadline, Sample};
use crate::mode::Mode;
use crate::workloads;

/// A mimalloc-bench-style workload with its parameters.
#[derive(Clone, Copy, Debug)]
pub enum Published {
    /// See [`workloads::xmalloc_test`].
    XmallocTest {
        producers: usize,
        consumers: usize,
        objects: u64,
    },
    /// See [`workloads::mstress`].
    Mstress {
        threads: usize,
        rounds: u64,
        steps: u64,
        shared_slots: usize,
    },
    /// See [`workloads::cache_scratch`].
    CacheScratch {
        threads: usize,
        iterations: u64,
        reps: u64,
        size: usize,
    },
    /// See [`workloads::glibc_simple`].
    GlibcSimple { rounds: u64 },
    /// See [`workloads::rptest`].
    Rptest { threads: usize, steps: u64 },
    /// See [`workloads::alloc_test`].
    AllocTest {
        threads: usize,
        steps: u64,
        slots: usize,
    },
}

impl Published {
    /// Runs the workload once on `a`.
    pub fn run<A: GlobalAlloc + Sync + ?Sized>(self, a: &A, dl: Deadline) -> Sample {
        match self {
            Published::XmallocTest {
                producers,
                consumers,
                objects,
            } => workloads::xmalloc_test(a, producers, consumers, objects, dl),
            Published::Mstress {
                threads,
                rounds,
                steps,
                shared_slots,
            } => workloads::mstress(a, threads, rounds, steps, shared_slots, dl),
            Published::CacheScratch {
                threads,
                iterations,
                reps,
                size,
            } => workloads::cache_scratch(a, threads, iterations, reps, size, dl),
            Published::GlibcSimple { rounds } => workloads::glibc_simple(a, rounds, dl),
            Published::Rptest { threads, steps } => workloads::rptest(a, threads, steps, dl),
            Published::AllocTest {
                threads,
                steps,
                slots,
            } => workloads::alloc_test(a, threads, steps, slots, dl),
        }
    }
}

/// Rows 11-16 for `mode`.
pub fn rows(m: Mode) -> Vec<Row> {
    let row = |id, name, title, op, p| Row::new(m, id, name, title, op, Kind::Published(p));
    let mut rows = Vec::new();

    let objects = m.pick(500_000, 250_000, 2_000);
    rows.push(Row {
        peak_rss: true,
        ..row(
            "11",
            "xmalloc-test 2+2",
            format!(
                "xmalloc-test: 2 threads only allocate {objects} blocks each (16..1024 B), \
                 2 threads only free them, batches of 64 through one shared queue"
            ),
            "one block (allocated by a producer, freed by a consumer)",
            Published::XmallocTest {
                producers: 2,
                consumers: 2,
                objects,
            },
        )
    });

    let (rounds, steps) = m.pick((10, 50_000), (5, 50_000), (2, 500));
    rows.push(Row {
        peak_rss: true,
        ..row(
            "12",
            "mstress 4 threads",
            format!(
                "mstress: {rounds} phases of 4 new threads doing 2/3..4/3 x {steps} steps on \
                 16 B..64 KiB power-of-two blocks, 10% handed over through 4096 shared slots"
            ),
            "one step (alloc, free, or hand-over)",
            Published::Mstress {
                threads: 4,
                rounds,
                steps,
                shared_slots: 4096,
            },
        )
    });

    let iterations = m.pick(200_000, 50_000, 20);
    rows.push(row(
        "13",
        "cache-scratch 2 threads",
        format!(
            "cache-scratch: 2 threads each free an 8 B object from the main thread, then \
             {iterations} x (alloc 8 B, write it 100 times, free)"
        ),
        "one iteration (alloc, 800 byte writes, free)",
        Published::CacheScratch {
            threads: 2,
            iterations,
            reps: 100,
            size: 8,
        },
    ));

    let rounds = m.pick(100, 50, 1);
    rows.push(row(
        "14",
        "glibc-simple",
        format!(
            "glibc-simple: {rounds} x (for 16, 64, 256, 1024, 4096 B: alloc 25, 100, 400, \
             1600 blocks, free them in order), 1 thread"
        ),
        "one alloc + free pair",
        Published::GlibcSimple { rounds },
    ));

    let steps = m.pick(500_000, 250_000, 2_000);
    rows.push(Row {
        peak_rss: true,
        ..row(
            "15",
            "rptest 2 threads",
            format!(
                "rptest: 2 threads x {steps} blocks of 16..16000 B (log-uniform), each kept \
                 1..4095 steps; 1 in 8 freed by the other thread"
            ),
            "one block's life (alloc + free)",
            Published::Rptest { threads: 2, steps },
        )
    });

    let steps = m.pick(2_000_000, 1_000_000, 2_000);
    for (id, name, threads) in [
        ("16a", "alloc-test 1 thread", 1),
        ("16b", "alloc-test 2 threads", 2),
    ] {
        rows.push(row(
            id,
            name,
            format!(
                "alloc-test: {threads} thread(s) x {steps} steps on 16384 slots (low slots \
                 short-lived), Pareto sizes 16 B..1 KiB"
            ),
            "one step (free a slot's block, usually allocate a new one)",
            Published::AllocTest {
                threads,
                steps,
                slots: 16_384,
            },
        ));
    }
    rows
}
