//! Bytes to central-layer operations, run against a real `Central` over a
//! real `PageHeap` (over `ArenaOs` or `FakeOs`: see the page heap's
//! `tests/fuzz_ops/os.rs`) and checked after every step against a shadow
//! model.
//!
//! Shared by the `central` fuzz target (`fuzz/fuzz_targets/central.rs`
//! includes this file with `#[path]`) and the replay tests
//! (`tests/fuzz_regressions.rs`), so a crash found by the fuzzer replays in
//! `cargo test`.
//!
//! # Encoding
//! An input is a sequence of operations, each one tag byte (`tag % 16`
//! chooses the kind, see [`Op::decode`]) followed by a fixed number of
//! argument bytes. Decoding stops at the first incomplete operation or after
//! [`Limits::max_ops`] operations; every byte string is a valid input.
//! [`encode`] is the inverse of [`decode`], for hand-written inputs.
//!
//! # What is checked
//! See `exec.rs` (per operation) and `model.rs` (after every step).

#[path = "../../../pageheap/tests/fuzz_ops/codec.rs"]
mod codec;
mod exec;
mod model;
#[path = "../../../pageheap/tests/fuzz_ops/os.rs"]
mod os;

pub use exec::{run_ops, run_ops_on};
pub use os::ArenaOs;

use strata_central::{class_for_size, MAX_SMALL, NUM_CLASSES};

/// Bounds that keep one input fast and its memory small.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Operations decoded from one input at most.
    pub max_ops: usize,
    /// Allocations are skipped while the page heap has mapped this much.
    pub max_mapped_bytes: usize,
}

/// The limits of the fuzz target and of the replay of kept inputs.
pub const FUZZ: Limits = Limits {
    max_ops: 200,
    max_mapped_bytes: 96 << 20,
};

/// One step of a central-layer workload. Counts `n` are read against the
/// class's batch: 0 means exactly one batch, `k > 0` means
/// `1 + (k - 1) % (2 * batch)` objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `alloc_batch(class, n)`.
    AllocBatch { class: u8, n: u8 },
    /// `free_batch` of `n` live objects of `class` (as many as there are, at
    /// most), starting at the `start`-th in allocation order (modulo their
    /// number), linked in that order or reversed, null-terminated.
    FreeBatch {
        class: u8,
        n: u8,
        start: u8,
        reverse: bool,
    },
    /// `alloc_one(class)`.
    AllocOne { class: u8 },
    /// `free_one` of the `pick`-th live object of `class`.
    FreeOne { class: u8, pick: u8 },
    /// `drain_transfer_caches`.
    Drain,
    /// Moves the page heap's fake clock by `ms`, then `tick` (decay).
    Advance { ms: u64 },
    /// The page heap's `release_free_memory`, then every live object's
    /// contents are checked.
    Release,
}

/// Object sizes of the classes most inputs use: the smallest, a few around
/// each step of the class table, the largest.
const SIZES: [usize; 16] = [
    8, 16, 32, 64, 112, 128, 192, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536, MAX_SMALL,
];

/// A class from one byte: below 128, one of [`SIZES`]; above, any class.
pub fn class_of(b: u8) -> u8 {
    if b < 128 {
        class_for_size(SIZES[(b % 16) as usize]).expect("a small size")
    } else {
        1 + ((b - 128) as usize % (NUM_CLASSES - 1)) as u8
    }
}

fn advance_ms(b: u8) -> u64 {
    if b < 128 {
        b as u64
    } else {
        (b as u64 - 127) * 50
    }
}

/// The first byte that `f` maps to `v` (for [`encode`]).
fn inv<T: PartialEq + core::fmt::Debug>(f: impl Fn(u8) -> T, v: T) -> u8 {
    (0..=255u8)
        .find(|&b| f(b) == v)
        .unwrap_or_else(|| panic!("{v:?} cannot be encoded"))
}

impl Op {
    fn arg_len(&self) -> usize {
        match self {
            Op::Drain | Op::Release => 0,
            Op::AllocOne { .. } | Op::Advance { .. } => 1,
            Op::AllocBatch { .. } | Op::FreeOne { .. } => 2,
            Op::FreeBatch { .. } => 3,
        }
    }
}

impl codec::Codec for Op {
    /// Decodes one operation from the front of `data`; `None` when too few
    /// bytes are left. Returns the operation and the bytes it used.
    fn decode(data: &[u8]) -> Option<(Op, usize)> {
        let (&tag, rest) = data.split_first()?;
        let arg = |i: usize| rest.get(i).copied();
        let op = match tag % 16 {
            0..=4 => Op::AllocBatch {
                class: class_of(arg(0)?),
                n: arg(1)?,
            },
            5..=8 => Op::FreeBatch {
                class: class_of(arg(0)?),
                n: arg(1)?,
                start: arg(2)? >> 1,
                reverse: arg(2)? & 1 != 0,
            },
            9..=10 => Op::AllocOne {
                class: class_of(arg(0)?),
            },
            11..=12 => Op::FreeOne {
                class: class_of(arg(0)?),
                pick: arg(1)?,
            },
            13 => Op::Drain,
            14 => Op::Advance {
                ms: advance_ms(arg(0)?),
            },
            _ => Op::Release,
        };
        Some((op, 1 + op.arg_len()))
    }

    /// The bytes that decode to this operation.
    fn encode(&self) -> Vec<u8> {
        match *self {
            Op::AllocBatch { class, n } => vec![0, inv(class_of, class), n],
            Op::FreeBatch {
                class,
                n,
                start,
                reverse,
            } => {
                assert!(start < 128, "{self:?} cannot be encoded");
                vec![5, inv(class_of, class), n, start << 1 | reverse as u8]
            }
            Op::AllocOne { class } => vec![9, inv(class_of, class)],
            Op::FreeOne { class, pick } => vec![11, inv(class_of, class), pick],
            Op::Drain => vec![13],
            Op::Advance { ms } => vec![14, inv(advance_ms, ms)],
            Op::Release => vec![15],
        }
    }
}

/// The operations an input stands for (at most `limits.max_ops`).
pub fn decode(data: &[u8], limits: &Limits) -> Vec<Op> {
    codec::decode_all(data, limits.max_ops)
}

/// The bytes of a sequence of operations.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    codec::encode_all(ops)
}

/// Runs one input with the fuzz target's limits over [`ArenaOs`].
pub fn run(data: &[u8]) {
    run_ops::<ArenaOs>(&decode(data, &FUZZ), &FUZZ);
}

/// Runs one input with the fuzz target's limits over [`strata_os::FakeOs`],
/// with 4, 16 and 64 KiB pages.
pub fn run_fake(data: &[u8]) {
    let ops = decode(data, &FUZZ);
    run_ops::<strata_os::FakeOs>(&ops, &FUZZ);
    for page in [16 << 10, 64 << 10] {
        run_ops_on(strata_os::FakeOs::with_page_size(page), &ops, &FUZZ);
    }
}
