//! The benchmark suite: which workloads run, with which parameters, in each
//! [`Mode`]. The main job (`benches/compare.rs`) runs every [`Row`] on every
//! allocator; criterion benches can reuse [`Row::run`] or the workloads directly.

use core::alloc::GlobalAlloc;
use std::time::Duration;

use crate::measure::{Deadline, Metric, Sample};
use crate::mode::Mode;
use crate::units::{bytes, GIB, KIB, MIB};
use crate::workloads::{self, Growth};

mod published;
pub use published::Published;

/// One workload with its parameters.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// See [`workloads::small_pairs`].
    SmallPairs { iters: u64, calls: bool },
    /// See [`workloads::size_sweep`].
    SizeSweep { ops: u64 },
    /// See [`workloads::random_free`].
    RandomFree { objects: usize, rounds: u64 },
    /// See [`workloads::realloc_growth`].
    Realloc {
        growth: Growth,
        max: usize,
        rounds: u64,
    },
    /// See [`workloads::zeroed_cycles`].
    Zeroed {
        size: usize,
        count: u64,
        touch: Option<usize>,
    },
    /// See [`workloads::big_frame`].
    BigFrame { block: usize, cycles: u64 },
    /// See [`workloads::producer_consumer`].
    ProducerConsumer {
        objects: u64,
        size: usize,
        batch: usize,
    },
    /// See [`workloads::thread_churn`].
    ThreadChurn {
        threads: usize,
        wave: usize,
        pairs: usize,
    },
    /// See [`workloads::larson`].
    Larson {
        threads: usize,
        slots: usize,
        ops_per_thread: u64,
        generations: u64,
    },
    /// The workloads written after mimalloc-bench's: see [`Published`].
    Published(Published),
}

/// Runs a row once on one allocator (a closure over that allocator).
pub type Runner = dyn Fn(&Row, Deadline) -> Sample;

/// One line of the comparison: a workload, how it is reported, and how often it repeats.
#[derive(Clone, Debug)]
pub struct Row {
    /// Short id, e.g. "5b".
    pub id: &'static str,
    /// Short name for the summary table.
    pub name: &'static str,
    /// Human description including the counts used.
    pub title: String,
    /// What one "op" is.
    pub op: &'static str,
    /// The metric rows are ranked by.
    pub metric: Metric,
    /// Repetitions per allocator (median reported).
    pub reps: usize,
    /// Time budget of one run (see [`Mode::budget`]).
    pub budget: Duration,
    /// The workload.
    pub kind: Kind,
    /// Also run it once per allocator in a child process of its own, for
    /// that allocator's peak RSS.
    pub peak_rss: bool,
}

impl Row {
    /// A row ranked by wall time, with `mode`'s repetitions and budget.
    pub fn new(
        mode: Mode,
        id: &'static str,
        name: &'static str,
        title: String,
        op: &'static str,
        kind: Kind,
    ) -> Row {
        Row {
            id,
            name,
            title,
            op,
            metric: Metric::Wall,
            reps: mode.reps(),
            budget: mode.budget(),
            kind,
            peak_rss: false,
        }
    }

    /// Runs the workload once on `a`.
    pub fn run<A: GlobalAlloc + Sync + ?Sized>(&self, a: &A, dl: Deadline) -> Sample {
        match self.kind {
            Kind::SmallPairs { iters, calls } => workloads::small_pairs(a, iters, calls, dl),
            Kind::SizeSweep { ops } => workloads::size_sweep(a, ops, dl),
            Kind::RandomFree { objects, rounds } => workloads::random_free(a, objects, rounds, dl),
            Kind::Realloc {
                growth,
                max,
                rounds,
            } => workloads::realloc_growth(a, growth, max, rounds, dl),
            Kind::Zeroed { size, count, touch } => {
                workloads::zeroed_cycles(a, size, count, touch, dl)
            }
            Kind::BigFrame { block, cycles } => workloads::big_frame(a, block, cycles, dl),
            Kind::ProducerConsumer {
                objects,
                size,
                batch,
            } => workloads::producer_consumer(a, objects, size, batch, dl),
            Kind::ThreadChurn {
                threads,
                wave,
                pairs,
            } => workloads::thread_churn(a, threads, wave, pairs, dl),
            Kind::Larson {
                threads,
                slots,
                ops_per_thread,
                generations,
            } => workloads::larson(a, threads, slots, ops_per_thread, generations, dl),
            Kind::Published(p) => p.run(a, dl),
        }
    }
}

/// The suite for `mode`, in report order.
pub fn suite(mode: Mode) -> Vec<Row> {
    let m = mode;
    let reps = m.reps();
    // Heavy rows (seconds per run at full size) get fewer repetitions.
    let heavy = reps.min(3);
    let row = |id, name, title, op, metric, reps, kind| Row {
        metric,
        reps,
        ..Row::new(m, id, name, title, op, kind)
    };
    let mut rows = Vec::new();

    let iters = m.pick(1_000_000, 1_000_000, 1_000);
    let turns = "sizes in turn, inlined where the allocator can be";
    let calls = "one size at a time, each alloc and free a call";
    for (id, name, calls, how) in [
        ("1", "small pairs 16/32/64 B", false, turns),
        ("1b", "small pairs, one size", true, calls),
    ] {
        rows.push(row(
            id,
            name,
            format!("small pairs: alloc+free 16, 32, 64 B, {iters} x 3, {how}"),
            "one alloc/free pair",
            Metric::Wall,
            reps,
            Kind::SmallPairs { iters, calls },
        ));
    }

    let ops = m.pick(200_000, 200_000, 500);
    rows.push(row(
        "2",
        "size sweep 8 B..1 MiB",
        format!(
            "size sweep: {ops} allocs, 8 B..1 MiB log-uniform, ring of 64 live, first byte written"
        ),
        "one free + alloc",
        Metric::Wall,
        reps,
        Kind::SizeSweep { ops },
    ));

    let (objects, rounds) = m.pick((100_000, 3), (100_000, 2), (2_000, 1));
    rows.push(row(
        "3",
        "random-order free",
        format!("random-order free: {rounds} x ({objects} objects of 8..512 B, freed shuffled)"),
        "one object alloc+free",
        Metric::Wall,
        reps,
        Kind::RandomFree { objects, rounds },
    ));

    let max = m.pick(4 * MIB, 4 * MIB, 64 * KIB);
    let rounds = m.pick(500, 300, 2);
    rows.push(row(
        "4a",
        "realloc doubling",
        format!(
            "realloc growth: 8 B -> {} doubling, {rounds} rounds, last byte written",
            bytes(max)
        ),
        "one realloc",
        Metric::Wall,
        reps,
        Kind::Realloc {
            growth: Growth::Doubling,
            max,
            rounds,
        },
    ));
    rows.push(row(
        "4b",
        "realloc +16 B steps",
        format!(
            "realloc growth: 8 B -> {} by +16 B steps, last byte written",
            bytes(max)
        ),
        "one realloc",
        Metric::Wall,
        reps,
        Kind::Realloc {
            growth: Growth::Step(16),
            max,
            rounds: 1,
        },
    ));

    for (id, name, size, full, quick) in [
        ("5a", "alloc_zeroed 1 MiB", MIB, 2_000, 1_000),
        ("5b", "alloc_zeroed 64 MiB", 64 * MIB, 200, 50),
        ("5c", "alloc_zeroed 1 GiB", GIB, 30, 8),
    ] {
        let count = m.pick(full, quick, 2);
        rows.push(row(
            id,
            name,
            format!(
                "alloc_zeroed {} + dealloc, untouched, x {count}",
                bytes(size)
            ),
            "one alloc_zeroed + dealloc",
            Metric::Wall,
            reps,
            Kind::Zeroed {
                size,
                count,
                touch: None,
            },
        ));
    }
    let count = m.pick(1_000, 200, 2);
    rows.push(row(
        "5d",
        "calloc loop 100 MB",
        format!("calloc loop: {count} x alloc_zeroed(100 MB) + dealloc, untouched"),
        "one alloc_zeroed + dealloc",
        Metric::Wall,
        reps,
        Kind::Zeroed {
            size: 100_000_000,
            count,
            touch: None,
        },
    ));

    // 600 cycles: the first cycle's page faults (every allocator takes
    // them) stay within 2% of the figure, and an allocator that faults on
    // every cycle does not hold up the job for long.
    let cycles = m.pick(600, 300, 2);
    let mut frame = row(
        "6",
        "big-frame reuse (cpu)",
        format!("big-frame reuse: {cycles} x (alloc 8 MiB, copy 1920x1080x4 frame in, dealloc)"),
        "one cycle (CPU time)",
        Metric::Cpu,
        heavy,
        Kind::BigFrame {
            block: 8 * MIB,
            cycles,
        },
    );
    // An allocator that returns the 8 MiB block to the OS on every free
    // (jemalloc does) takes milliseconds a cycle: let its cycles complete.
    frame.budget = frame.budget.max(m.pick(
        Duration::from_secs(5),
        Duration::from_secs(3),
        Duration::ZERO,
    ));
    rows.push(frame);

    let count = m.pick(200, 50, 2);
    rows.push(row(
        "7",
        "dirty calloc 64 MiB",
        format!("dirty calloc: {count} x (alloc_zeroed 64 MiB, write 1 byte in 1 page, dealloc)"),
        "one cycle",
        Metric::Wall,
        reps,
        Kind::Zeroed {
            size: 64 * MIB,
            count,
            touch: Some(32 * MIB + 123),
        },
    ));

    let objects = m.pick(1_000_000, 1_000_000, 2_000);
    rows.push(row(
        "8",
        "producer/consumer 64 B",
        format!("producer/consumer: {objects} x 64 B, batches of 256 through sync_channel(16)"),
        "one object (alloc on A, free on B)",
        Metric::Wall,
        reps,
        Kind::ProducerConsumer {
            objects,
            size: 64,
            batch: 256,
        },
    ));

    // 2,000 threads: with a few hundred, thread start-up scheduling, not the
    // allocator, decides the median.
    let threads = m.pick(2_000, 600, 8);
    rows.push(row(
        "9",
        "thread churn",
        format!("thread churn: {threads} threads in waves of 8, 1000 alloc/free pairs each"),
        "one thread (spawn, 1000 pairs, exit)",
        Metric::Wall,
        reps,
        Kind::ThreadChurn {
            threads,
            wave: 8,
            pairs: 1_000,
        },
    ));

    let (ops_per_thread, generations) = m.pick((200_000, 5), (200_000, 3), (1_000, 2));
    let title = format!(
        "larson-like: 2 threads x 1000 slots, {ops_per_thread} random 16..1000 B replacements \
         each, then the blocks go to a new thread; {generations} generations"
    );
    rows.push(Row {
        peak_rss: true,
        ..row(
            "10",
            "larson-like 2 threads",
            title,
            "one replacement (wall / ops of all threads)",
            Metric::Wall,
            reps,
            Kind::Larson {
                threads: 2,
                slots: 1_000,
                ops_per_thread,
                generations,
            },
        )
    });

    rows.extend(published::rows(m));
    rows
}

#[cfg(test)]
mod tests;
