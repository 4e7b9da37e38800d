//! A tiny deterministic PRNG (splitmix64) and the seed derivations that make
//! a run reproducible: every thread of every round gets a generator derived
//! from the run seed, the round and the thread index.

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
    mix(seed
        ^ mix(a.wrapping_add(0x9E37_79B9_7F4A_7C15))
        ^ mix(b ^ 0xD1B5_4A32_D192_ED03).rotate_left(23))
}

/// splitmix64: small, fast, and good enough for choosing sizes and slots.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A value in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        (self.next_u64() % n as u64) as usize
    }

    /// A value in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True once in `n` calls on average.
    #[inline]
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A log-uniform value in `lo..hi` (`0 < lo < hi`): a power-of-two
    /// octave is picked uniformly, then a value uniformly inside it.
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(0 < lo && lo < hi);
        let lo_bits = lo.ilog2();
        let hi_bits = (hi - 1).ilog2();
        let b = self.range(lo_bits as usize, hi_bits as usize) as u32;
        let start = (1usize << b).max(lo);
        let end = (1usize << b).saturating_mul(2).min(hi);
        start + self.below(end - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_uniform_stays_in_range_and_covers_octaves() {
        let mut r = Rng::new(7);
        let mut seen = [false; 21];
        for _ in 0..20_000 {
            let v = r.log_uniform(1, 1 << 20);
            assert!((1..1 << 20).contains(&v));
            seen[v.ilog2() as usize] = true;
        }
        assert!(seen[..20].iter().all(|&s| s), "{seen:?}");
        for _ in 0..1000 {
            let v = r.log_uniform(1 << 20, 64 << 20);
            assert!(((1 << 20)..(64 << 20)).contains(&v));
        }
    }

    #[test]
    fn derived_seeds_differ() {
        assert_ne!(derive(1, 0, 1), derive(1, 1, 0));
        assert_ne!(derive(1, 2, 3), derive(2, 2, 3));
    }
}
