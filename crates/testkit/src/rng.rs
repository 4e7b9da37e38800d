//! The one random-number generator of strata's tests, stress suite and
//! benchmarks: splitmix64, deterministic from its seed, and the seed
//! derivations that make a multi-threaded run reproducible.
//!
//! splitmix64 accepts any seed (0 included), its state advances by one add,
//! so drawing a number costs about as little as any generator could in a
//! timed loop, and its output passes the usual statistical batteries.
//! [`Rng::below`] maps a draw onto `0..n` by a 64x64-bit multiply rather than
//! a division, for the same reason.

/// The splitmix64 increment (2^64 / the golden ratio, made odd).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finaliser: a bijective 64-bit mix.
#[inline]
pub fn mix(x: u64) -> u64 {
    let mut x = x;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Derives a seed from a parent seed and two indices (round, thread, ...).
#[inline]
pub fn derive(seed: u64, a: u64, b: u64) -> u64 {
    mix(seed ^ mix(a.wrapping_add(GOLDEN)) ^ mix(b ^ 0xD1B5_4A32_D192_ED03).rotate_left(23))
}

/// splitmix64: small, fast, and good enough for choosing sizes, slots and
/// orders.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True once in `n` calls on average.
    #[inline]
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform in `lo..=hi` (`0 < lo <= hi`): as many draws in 16..32 as
    /// in 1024..2048.
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(0 < lo && lo <= hi);
        let span = (hi as f64 + 1.0) / lo as f64;
        ((lo as f64 * span.powf(self.unit())) as usize).clamp(lo, hi)
    }

    /// Puts `v` in a uniformly random order (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_any_seed_works() {
        let (mut a, mut b) = (Rng::new(0), Rng::new(0));
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert!(xs.iter().all(|&x| x == b.next_u64()));
        assert!(xs.windows(2).all(|w| w[0] != w[1]), "{xs:x?}");
        assert_ne!(Rng::new(1).next_u64(), xs[0]);
    }

    #[test]
    fn ranges_stay_inside_and_cover() {
        let mut r = Rng::new(3);
        let mut seen = [false; 10];
        for _ in 0..10_000 {
            let v = r.range(8, 17);
            assert!((8..=17).contains(&v));
            seen[v - 8] = true;
            assert!((0.0..1.0).contains(&r.unit()));
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn log_uniform_stays_in_range_and_covers_octaves() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 21];
        for _ in 0..21_000 {
            let v = r.log_uniform(1, 1 << 20);
            assert!((1..=1 << 20).contains(&v));
            seen[v.ilog2() as usize] += 1;
        }
        // About 1000 draws per octave; none starved, none flooded.
        assert!(
            seen[..20].iter().all(|&n| (700..1300).contains(&n)),
            "{seen:?}"
        );
        for _ in 0..1000 {
            let v = r.log_uniform(1 << 20, 64 << 20);
            assert!(((1 << 20)..=(64 << 20)).contains(&v));
        }
        assert_eq!(r.log_uniform(5, 5), 5);
    }

    #[test]
    fn shuffle_permutes() {
        let mut v: Vec<u32> = (0..100).collect();
        Rng::new(9).shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn derived_seeds_differ() {
        assert_ne!(derive(1, 0, 1), derive(1, 1, 0));
        assert_ne!(derive(1, 2, 3), derive(2, 2, 3));
    }
}
