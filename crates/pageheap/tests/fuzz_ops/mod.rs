//! Bytes to page-heap operations, run against a real `PageHeap` (over
//! [`ArenaOs`] or `FakeOs`, see `os.rs`) and checked after every step
//! against a shadow model.
//!
//! Shared by the `pageheap` fuzz target (`fuzz/fuzz_targets/pageheap.rs`
//! includes this file with `#[path]`) and the replay tests
//! (`tests/fuzz_regressions.rs`), so a crash found by the fuzzer replays in
//! `cargo test`.
//!
//! # Encoding
//! An input is a sequence of operations, each one tag byte (`tag % 32`
//! chooses the kind, see [`Op::decode`]) followed by a fixed number of
//! argument bytes. Decoding stops at the first incomplete operation or after
//! [`Limits::max_ops`] operations; every byte string is a valid input.
//! [`encode`] is the inverse of [`decode`], for hand-written inputs.
//!
//! # What is checked
//! See `exec.rs` (per operation) and `model.rs` (after every step).

mod codec;
mod exec;
mod model;
mod os;

pub use exec::run_ops;
// The replay tests run inputs on other page sizes; the fuzz target does not.
#[allow(unused_imports)]
pub use exec::run_ops_on;
pub use os::ArenaOs;

use strata_pageheap::PAGE_SIZE;

/// Bounds that keep one input fast and its memory small.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Operations decoded from one input at most.
    pub max_ops: usize,
    /// Huge allocations and huge resizes per input (each maps and touches
    /// 32 MiB or more of real memory through the fake OS).
    pub max_huge_ops: usize,
    /// Huge blocks live at once.
    pub max_live_huge: usize,
    /// Bytes in live heap blocks (large and small-object spans) at most;
    /// allocations past it are skipped.
    pub max_heap_bytes: usize,
}

/// The limits of the fuzz target and of the replay of kept inputs.
pub const FUZZ: Limits = Limits {
    max_ops: 200,
    max_huge_ops: 4,
    max_live_huge: 2,
    max_heap_bytes: 48 << 20,
};

/// Which kind of refused free [`Op::BadFree`] tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKind {
    /// An address that was freed (or moved away from) and is not the start of
    /// a live block now.
    Dead,
    /// Inside the first page of a live large or huge block.
    InteriorFirst,
    /// The last word of a live large or huge block.
    InteriorLast,
    /// Anywhere in a live small-object span.
    InSmall,
}

/// One step of a page-heap workload. `pick` chooses among the live blocks of
/// the kind concerned, in allocation order, modulo their number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `alloc_large(pages * PAGE_SIZE - trim, align, zero)`.
    Alloc {
        pages: usize,
        trim: usize,
        align: usize,
        zero: bool,
    },
    /// A huge `alloc_large`: `HUGE_MIN + extra` pages, less `trim` bytes
    /// when `extra > 0` (so it stays at least `HUGE_MIN`).
    AllocHuge {
        extra: usize,
        trim: usize,
        align: usize,
        zero: bool,
    },
    /// `free_large` of a live large or huge block, then again (refused).
    Free { pick: u8 },
    /// A `free_large` that must be refused.
    BadFree { pick: u8, kind: BadKind },
    /// `resize_large` of a live large or huge block. A heap block asks for
    /// `large_pages(size)` pages; a huge one for `1 + size % 32` pages when
    /// `size < 128`, else `HUGE_MIN` plus `size % 64` pages, aligned to `align`.
    Resize { pick: u8, size: u8, align: usize },
    /// `alloc_small_span(pages, class)`.
    AllocSmall { pages: usize, class: u8 },
    /// `free_small_span` of a live small-object span.
    FreeSmall { pick: u8 },
    /// Moves the fake clock by `ms`, then `tick`.
    Advance { ms: u64 },
    /// Moves the clock past the decay delay, then `tick`: every dirty span
    /// and cached huge mapping must be gone.
    AdvancePastDecay,
    /// `release_free_memory`.
    Release,
    /// `set_decay_ms(ms)`; with `release_first`, after `release_free_memory`.
    /// Decoded inputs always release first: changing the delay with dirty
    /// spans present is a known library bug (see `tests/fuzz_regressions.rs`).
    SetDecay { ms: u64, release_first: bool },
}

/// Pages of a heap block from one byte: mostly 1..=32, sometimes up to 497.
pub fn large_pages(b: u8) -> usize {
    if b < 224 {
        1 + (b % 32) as usize
    } else {
        1 + (b - 224) as usize * 16
    }
}

const ALIGNS: [usize; 8] = [
    PAGE_SIZE,
    PAGE_SIZE,
    2 * PAGE_SIZE,
    4 * PAGE_SIZE,
    16 * PAGE_SIZE,
    64 * PAGE_SIZE,
    8,
    4096,
];
const HUGE_ALIGNS: [usize; 8] = [
    PAGE_SIZE,
    PAGE_SIZE,
    2 * PAGE_SIZE,
    16 * PAGE_SIZE,
    256 * PAGE_SIZE,
    64 * PAGE_SIZE,
    8,
    4096,
];
const DECAYS: [u64; 8] = [0, 1, 10, 100, 1000, 1000, 5000, u64::MAX];

fn advance_ms(b: u8) -> u64 {
    if b < 128 {
        b as u64
    } else {
        (b as u64 - 127) * 50
    }
}

fn bad_kind(b: u8) -> BadKind {
    [
        BadKind::Dead,
        BadKind::InteriorFirst,
        BadKind::InteriorLast,
        BadKind::InSmall,
    ][(b % 4) as usize]
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
            Op::AdvancePastDecay | Op::Release => 0,
            Op::Free { .. } | Op::FreeSmall { .. } | Op::Advance { .. } | Op::SetDecay { .. } => 1,
            Op::BadFree { .. } | Op::AllocSmall { .. } => 2,
            Op::Alloc { .. } | Op::AllocHuge { .. } | Op::Resize { .. } => 3,
        }
    }
}

impl codec::Codec for Op {
    /// Decodes one operation from the front of `data`; `None` when too few
    /// bytes are left. Returns the operation and the bytes it used.
    fn decode(data: &[u8]) -> Option<(Op, usize)> {
        let (&tag, rest) = data.split_first()?;
        let arg = |i: usize| rest.get(i).copied();
        let op = match tag % 32 {
            0..=8 => Op::Alloc {
                pages: large_pages(arg(0)?),
                trim: arg(1)? as usize * 32,
                align: ALIGNS[(arg(2)? & 7) as usize],
                zero: arg(2)? & 8 != 0,
            },
            9..=14 | 30 => Op::Free { pick: arg(0)? },
            15..=17 => Op::Resize {
                pick: arg(0)?,
                size: arg(1)?,
                align: HUGE_ALIGNS[(arg(2)? & 7) as usize],
            },
            18..=20 => Op::AllocSmall {
                pages: 1 + (arg(0)? % 16) as usize,
                class: 1 + arg(1)? % 255,
            },
            21..=22 => Op::FreeSmall { pick: arg(0)? },
            23..=24 => Op::BadFree {
                pick: arg(0)?,
                kind: bad_kind(arg(1)?),
            },
            25..=26 => Op::Advance {
                ms: advance_ms(arg(0)?),
            },
            27 => Op::AdvancePastDecay,
            28 => Op::Release,
            29 => Op::SetDecay {
                ms: DECAYS[(arg(0)? & 7) as usize],
                release_first: true,
            },
            _ => Op::AllocHuge {
                extra: (arg(0)? % 64) as usize,
                trim: arg(1)? as usize * 32,
                align: HUGE_ALIGNS[(arg(2)? & 7) as usize],
                zero: arg(2)? & 8 != 0,
            },
        };
        Some((op, 1 + op.arg_len()))
    }

    /// The bytes that decode to this operation.
    fn encode(&self) -> Vec<u8> {
        let flags = |align: usize, zero: bool, table: &[usize; 8]| {
            inv(|b| (table[(b & 7) as usize], b & 8 != 0), (align, zero))
        };
        match *self {
            Op::Alloc {
                pages,
                trim,
                align,
                zero,
            } => vec![
                0,
                inv(large_pages, pages),
                inv(|b| b as usize * 32, trim),
                flags(align, zero, &ALIGNS),
            ],
            Op::AllocHuge {
                extra,
                trim,
                align,
                zero,
            } => vec![
                31,
                inv(|b| (b % 64) as usize, extra),
                inv(|b| b as usize * 32, trim),
                flags(align, zero, &HUGE_ALIGNS),
            ],
            Op::Free { pick } => vec![9, pick],
            Op::BadFree { pick, kind } => vec![23, pick, inv(bad_kind, kind)],
            Op::Resize { pick, size, align } => {
                vec![15, pick, size, flags(align, false, &HUGE_ALIGNS)]
            }
            Op::AllocSmall { pages, class } => vec![
                18,
                inv(|b| 1 + (b % 16) as usize, pages),
                inv(|b| 1 + b % 255, class),
            ],
            Op::FreeSmall { pick } => vec![21, pick],
            Op::Advance { ms } => vec![25, inv(advance_ms, ms)],
            Op::AdvancePastDecay => vec![27],
            Op::Release => vec![28],
            Op::SetDecay { ms, release_first } => {
                assert!(release_first, "inputs always release before set_decay_ms");
                vec![29, inv(|b| DECAYS[(b & 7) as usize], ms)]
            }
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

/// Runs one input with the fuzz target's limits over [`strata_os::FakeOs`].
pub fn run_fake(data: &[u8]) {
    run_ops::<strata_os::FakeOs>(&decode(data, &FUZZ), &FUZZ);
}
