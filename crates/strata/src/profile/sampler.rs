//! Which allocations are sampled, and with what weight: the draws behind
//! `profile`'s "Sampling" (see its module doc).
//!
//! Every draw here is in *hazards*: a block of `s` bytes has hazard
//! `m = s/T` (`T`: the interval), and is sampled with probability
//! `p = 1 - exp(-m)`. A thread examines each allocation with probability
//! `q = 1 - exp(-h)` for its hazard `h`.
//!
//! - The gap to the next examined allocation comes from one exponential
//!   draw `E` (mean 1): `1 + floor(E/h)` is geometric with parameter `q`,
//!   and what is left, `R = E - floor(E/h) h`, is independent of the gap
//!   and distributed as `E` given `E < h`. The examined allocation of
//!   hazard `m` is sampled if `R < m`: with probability `p/q` when
//!   `m < h`, always otherwise, so with `min(p, q)` in all; its weight is
//!   the inverse. No exponential or second logarithm is computed unless a
//!   sample is taken.
//! - A thread's large blocks (spans of their own) are laid end to end in
//!   hazard, and sampled where a Poisson process of rate 1 has a point:
//!   the thread keeps the hazard left to its next point
//!   (`SampleState::large`), a block of hazard `m` below it only takes
//!   `m` off, and a block that reaches it is sampled and draws the next
//!   distance afresh (exponential: memoryless). A block is so sampled
//!   with probability `p = 1 - exp(-m)`, independently of every other,
//!   and a block not sampled costs a multiplication and a compare. A
//!   thread with no cache (one that never allocated a small object, or
//!   whose cache is gone at its exit) draws for each block instead, from
//!   one random number of a generator all threads share (an atomic add).
//!
//! # Invariants
//! - A thread's hazard (`SampleState::param`, 0.0 for the least,
//!   [`H_BASE`]) is the one its pending gap was drawn with: it changes
//!   only before a new gap is drawn (an examination, or a refill whose
//!   `on_refill` returns true and re-arms the countdown).
//!   `SampleState::note` is the remainder `R` of that gap's draw.
//! - `SampleState::large` is 0.0 (no point drawn yet) or the hazard left
//!   to the thread's next large-block point, and is only read and
//!   written by its own thread.
//! - Nothing here allocates, takes a lock or panics.

use strata_threadcache::SampleState;

use super::{is_on, math};
use crate::sync::statics::{AtomicU64, Ordering};

/// The least hazard a thread examines allocations with: about one in
/// 1024, the idle check's period, so that examining costs at most one
/// more expiry of the countdown per 1024 allocations.
const H_BASE: f64 = 1.0 / 1024.0;

/// How fast a thread's hazard falls back towards [`H_BASE`], per
/// examination.
const H_DECAY: f64 = 0.97;

/// The generator for large blocks (a Weyl sequence, mixed).
static LARGE_RNG: AtomicU64 = AtomicU64::new(0);

/// The bits of `1/T` as an `f64`: a block's hazard is a multiplication
/// (a division, and a conversion of the interval from an unsigned word,
/// were 14 instructions of each examination).
static PER_BYTE: AtomicU64 = AtomicU64::new((1.0 / super::DEFAULT_INTERVAL as f64).to_bits());

/// xorshift64*: the state steps by xorshift, and the output is the state
/// times an odd constant. A state with few bits set (a small seed) gives
/// tiny bare values for its first steps: drawn as the first gap, one of
/// 7e-7 skipped 14,000 allocations at a hazard of 1/1024, where 1,000 was
/// the mean.
fn xorshift(x: &mut u64) -> u64 {
    let mut v = *x;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    *x = v;
    v.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A uniform number in (0, 1] from 53 random bits.
fn unit(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The hazard of a block of `size` bytes at the present interval.
fn hazard_of_size(size: usize) -> f64 {
    // A block's size fits an `isize`: converted by one instruction.
    size as isize as f64 * f64::from_bits(PER_BYTE.load(Ordering::Relaxed))
}

/// The probability of hazard `m`: `1 - exp(-m)`.
fn probability_of(m: f64) -> f64 {
    -math::exp_m1(-m)
}

/// The hazard of probability `p`: `-ln(1 - p)` (infinite for 1).
pub(crate) fn hazard(p: f64) -> f64 {
    -math::ln_1p(-p)
}

fn examine_hazard_of(st: &SampleState) -> f64 {
    if st.param > 0.0 {
        st.param
    } else {
        H_BASE
    }
}

/// The hazard the profiler examines an allocation with on this thread:
/// 0.0 when profiling is off. The countdown's gaps are drawn by
/// [`crate::guarded`]'s sampler, which adds the guard's own hazard.
pub(crate) fn examine_hazard(st: &SampleState) -> f64 {
    if !is_on() {
        return 0.0;
    }
    examine_hazard_of(st)
}

/// A uniform number in (0, 1] from the thread's generator.
fn uniform(st: &mut SampleState) -> f64 {
    unit(xorshift(&mut st.rng))
}

/// Allocations until the next examined one when each is examined with
/// hazard `h` (> 0): geometric with mean `1/(1 - exp(-h))`. Notes the
/// draw's remainder in `st.note` ([`drawn_below`], [`examine`]).
pub(crate) fn draw_gap(st: &mut SampleState, h: f64) -> u32 {
    let e = -math::ln(uniform(st));
    let x = e / h;
    if x >= (u32::MAX - 1) as f64 {
        // Beyond any idle check: never reached, so the remainder is not
        // needed.
        st.note = e;
        return u32::MAX;
    }
    // `x` is not negative: truncation is its floor (`floor` itself was a
    // call of 30 instructions).
    let k = x as u32;
    // `k == 0` first: an infinite `h` (a guard sampling every allocation)
    // would make `k * h` NaN.
    st.note = if k == 0 { e } else { e - k as f64 * h };
    k + 1
}

/// Whether the examined allocation's draw fell below hazard `h`: true
/// with probability `(1 - exp(-h)) / (1 - exp(-c))` for the hazard `c`
/// (at least `h`) the gap was drawn with. The guard's sampler splits the
/// examinations with it, and [`examine`] then sees a remainder below `h`.
pub(crate) fn drawn_below(st: &SampleState, h: f64) -> bool {
    st.note < h
}

/// A refill of `class`: raises the thread's hazard to the class's before
/// its objects go out, so that a thread turning to large blocks examines
/// them at their own rate at once (a block examined with `q` below its
/// `p` is sampled with weight `1/q`: unbiased, but one such sample of a
/// 200 KiB block at `q = 1/1024` stands for 200 MiB).
pub(crate) fn on_refill(st: &mut SampleState, class: u8) -> bool {
    if !is_on() {
        return false;
    }
    raise_to(st, hazard_of_size(strata_central::class_size_of(class)))
}

/// Raises the thread's hazard to `m`: true if it was below (the pending
/// gap, drawn with the old one, is then to be drawn afresh).
fn raise_to(st: &mut SampleState, m: f64) -> bool {
    if m <= examine_hazard_of(st) {
        return false;
    }
    st.param = m;
    true
}

/// An examined allocation of `size` bytes (its gap drawn with the
/// thread's hazard `h`, its remainder below `h`): its weight if it is
/// sampled.
pub(super) fn examine(st: &mut SampleState, size: usize) -> Option<f64> {
    examine_at(st, hazard_of_size(size))
}

/// [`examine`] of a block of hazard `m`. The thread's hazard then decays
/// towards [`H_BASE`], or rises to the block's.
fn examine_at(st: &mut SampleState, m: f64) -> Option<f64> {
    let h = examine_hazard_of(st);
    st.param = (h * H_DECAY).max(m).max(H_BASE);
    if st.note >= m {
        return None;
    }
    // Sampled with probability min(p, q): weighted by its inverse.
    Some(1.0 / probability_of(m.min(h)))
}

/// 64 bits of the large blocks' generator: splitmix64 over a Weyl
/// sequence, independent draws from any thread.
fn large_bits() -> u64 {
    let mut z = LARGE_RNG
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15 ^ strata_os::process_secret() as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The decision for a large block of hazard `m` given 64 random bits: its
/// weight if sampled. Sampled with probability `p = 1 - exp(-m)` exactly
/// as far as 53 bits go (`unit` is uniform on (0, 1]).
fn large_decision(m: f64, bits: u64) -> Option<f64> {
    let p = probability_of(m);
    (unit(bits) <= p).then(|| 1.0 / p)
}

/// Whether a large block of `size` bytes, allocated by a thread without
/// a cache, is sampled: its weight if so. Each such block draws on its
/// own from the shared generator: a countdown of bytes shared by all
/// threads (a compare-and-swap a block where this is an atomic add and
/// an exponential) was tried, and under some interleavings of threads
/// its tests sampled 2-3% fewer blocks than `p` says; a thread's own
/// countdown ([`large_weight_on`]) has no such interleavings.
pub(super) fn large_weight(size: usize) -> Option<f64> {
    let m = hazard_of_size(size);
    // A block of 40 intervals or more is sampled for sure (`p` is 1.0
    // exactly: [`math::exp_m1`]), with no draw.
    if m >= 40.0 {
        return Some(1.0);
    }
    large_decision(m, large_bits())
}

/// [`large_weight`] for a thread with sampler state `st`: sampled where
/// the thread's Poisson process of large blocks has its next point (see
/// the module doc), weighted by `1/p`.
pub(super) fn large_weight_on(st: &mut SampleState, size: usize) -> Option<f64> {
    large_point(st, hazard_of_size(size))
}

/// [`large_weight_on`] for a block of hazard `m`.
fn large_point(st: &mut SampleState, m: f64) -> Option<f64> {
    if st.large <= 0.0 {
        st.large = -math::ln(uniform(st));
    }
    if m < st.large {
        st.large -= m;
        return None;
    }
    st.large = -math::ln(uniform(st));
    // `p` is 1.0 exactly from 40 intervals up ([`math::exp_m1`]).
    Some(1.0 / probability_of(m))
}

/// The interval changed to `bytes`.
pub(super) fn interval_changed(bytes: usize) {
    PER_BYTE.store((1.0 / bytes as f64).to_bits(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The countdown and the examination together sample an allocation of
    /// `s` bytes with probability min(p(s), q), whatever hazard the thread
    /// is at: simulated here without a thread cache, which would raise the
    /// hazard at each refill of a list (here every 64th allocation of a
    /// size) and draw the gap afresh.
    #[test]
    fn examined_then_thinned_is_unbiased() {
        let t = 64.0 * 1024.0;
        let mut st = SampleState::seeded(12345);
        let sizes = [16usize, 64, 1000, 8 << 10, 64 << 10, 200 << 10];
        let mut est = [0f64; 6];
        let mut truth = [0f64; 6];
        let mut samples = 0;
        let n = 400_000usize;
        let mut left = 1u32;
        for i in 0..n {
            let k = (i * 7 + i / 3) % sizes.len();
            let s = sizes[k];
            truth[k] += s as f64;
            if i % 384 < 6 && raise_to(&mut st, s as f64 / t) {
                let h = examine_hazard_of(&st);
                left = draw_gap(&mut st, h);
            }
            left -= 1;
            if left == 0 {
                if let Some(w) = examine_at(&mut st, s as f64 / t) {
                    est[k] += s as f64 * w;
                    samples += 1;
                }
                let h = examine_hazard_of(&st);
                left = draw_gap(&mut st, h);
            }
        }
        // Some were sampled at `q` below their `p`, none above: at most
        // the Poisson process's count, which is about one per interval.
        assert!(samples > 100 && samples as f64 <= truth.iter().sum::<f64>() / t);
        for (k, &s) in sizes.iter().enumerate() {
            let truth = truth[k];
            let err = (est[k] - truth) / truth;
            // sqrt(T / bytes) is the expected relative error.
            let sigma = (t / truth).sqrt().max(1e-3);
            assert!(
                err.abs() < 5.0 * sigma,
                "size {s}: error {err:.3} (sigma {sigma:.3})"
            );
        }
    }

    /// The remainder of a gap's draw is the exponential below the hazard:
    /// below `m` with probability `(1 - exp(-m)) / (1 - exp(-h))`.
    #[test]
    fn the_remainder_is_truncated_exponential() {
        let mut st = SampleState::seeded(99);
        let (h, m): (f64, f64) = (0.3, 0.1);
        let n = 200_000;
        let mut below = 0;
        let mut gaps = 0u64;
        for _ in 0..n {
            gaps += draw_gap(&mut st, h) as u64;
            assert!(st.note >= 0.0 && st.note < h + 1e-12);
            below += drawn_below(&st, m) as u32;
        }
        let want = (-(-m).exp_m1()) / (-(-h).exp_m1());
        let got = below as f64 / n as f64;
        assert!((got - want).abs() < 0.01, "{got} against {want}");
        let mean = gaps as f64 / n as f64;
        let q = -(-h).exp_m1();
        assert!((mean * q - 1.0).abs() < 0.02, "mean gap {mean}, q {q}");
        // A hazard of 1 (a guard taking every allocation): gaps of one.
        assert_eq!(draw_gap(&mut st, f64::INFINITY), 1);
        assert!(st.note.is_finite());
    }

    /// A large block of hazard `m` is sampled with probability
    /// `1 - exp(-m)` and weighted by its inverse, from one thread or from
    /// several drawing on the shared generator at once.
    #[test]
    fn large_blocks_are_sampled_at_p_from_any_thread() {
        for m in [0.02f64, 0.2, 1.5] {
            let p = -(-m).exp_m1();
            let n = 200_000u32;
            let hits: u32 = std::thread::scope(|sc| {
                let v: Vec<_> = (0..4)
                    .map(|_| {
                        sc.spawn(move || {
                            (0..n / 4)
                                .map(|_| match large_decision(m, large_bits()) {
                                    Some(w) => {
                                        assert!((w - 1.0 / p).abs() < 1e-9);
                                        1
                                    }
                                    None => 0,
                                })
                                .sum::<u32>()
                        })
                    })
                    .collect();
                v.into_iter().map(|h| h.join().unwrap()).sum()
            });
            let got = hits as f64 / n as f64;
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((got - p).abs() < 5.0 * sd, "m {m}: {got} against {p}");
        }
        // Forty intervals or more: always, with weight 1.
        assert_eq!(large_weight(usize::MAX / 2), Some(1.0));
    }

    /// A thread's own countdown samples each large block with probability
    /// `1 - exp(-m)`, weighted by its inverse, and independently of the
    /// block before it (two in a row with `p^2`), whatever the sizes
    /// around it: blocks of four hazards in turn.
    #[test]
    fn a_threads_large_blocks_are_sampled_at_p_each_on_its_own() {
        let ms = [0.02f64, 0.2, 1.5, 50.0];
        let mut st = SampleState::seeded(0x5EED);
        let n = 400_000usize;
        let mut hits = [0u32; 4];
        let mut both = [0u32; 4];
        let mut last = [false; 4];
        for i in 0..n {
            let k = i % 4;
            let p = -(-ms[k]).exp_m1();
            let got = large_point(&mut st, ms[k]);
            if let Some(w) = got {
                assert!((w - 1.0 / p).abs() < 1e-9 * w, "weight {w} for p {p}");
                hits[k] += 1;
                both[k] += last[k] as u32;
            }
            last[k] = got.is_some();
        }
        let rounds = (n / 4) as f64;
        for k in 0..4 {
            let p = -(-ms[k]).exp_m1();
            let got = hits[k] as f64 / rounds;
            let sd = (p * (1.0 - p) / rounds).sqrt().max(1e-9);
            assert!(
                (got - p).abs() <= 5.0 * sd,
                "m {}: {got} against {p}",
                ms[k]
            );
            let pairs = both[k] as f64 / (rounds - 1.0);
            let sd2 = (p * p * (1.0 - p * p) / rounds).sqrt().max(1e-9);
            assert!(
                (pairs - p * p).abs() <= 5.0 * sd2,
                "m {}: two in a row {pairs}",
                ms[k]
            );
        }
    }
}
