//! The three functions of `f64` the sampler needs (`ln`, `ln_1p`,
//! `exp_m1`), written here so that the shared library does not need libm:
//! `std`'s versions call glibc's `libm.so.6`, and a library preloaded into
//! every program would load it (about 320 KiB resident in a small program)
//! for a profiler that is usually off.
//!
//! # Invariants
//! - Each is within a few units in the last place of the true value over
//!   the inputs the sampler gives: `ln` of (0, 1], `ln_1p` of (-1, 0],
//!   `exp_m1` of (-inf, 0]. They also answer sensibly outside them (no
//!   panic, no NaN for finite input in range of the real function).
//! - Nothing here allocates or panics.

const LN2: f64 = core::f64::consts::LN_2;

/// `1/n!` for `n` in `0..18`, computed once by the compiler.
const INV_FACT: [f64; 18] = {
    let mut c = [1.0; 18];
    let mut n = 1;
    while n < 18 {
        c[n] = c[n - 1] / n as f64;
        n += 1;
    }
    c
};

/// `1/(2j+1)` for `j` in `0..12`.
const INV_ODD: [f64; 12] = {
    let mut c = [1.0; 12];
    let mut j = 1;
    while j < 12 {
        c[j] = 1.0 / (2 * j + 1) as f64;
        j += 1;
    }
    c
};

/// `c[0] + c[1] x + c[2] x^2 + ...` by Horner's rule: multiplications and
/// additions only (a division per term made `exp` a chain of twenty
/// divisions, the larger part of a sample's cost in the sampler).
#[inline(always)]
fn poly(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
}

/// `ln(x)` for a finite `x > 0` (`-inf` for 0, NaN below).
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); subnormals scaled first.
    let (mut bits, mut e) = (x.to_bits(), 0i64);
    if bits >> 52 == 0 {
        bits = (x * (1u64 << 54) as f64).to_bits();
        e -= 54;
    }
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172: the series
    // to s^23 leaves an error under 1e-19.
    let s = (m - 1.0) / (m + 1.0);
    2.0 * s * poly(&INV_ODD, s * s) + e as f64 * LN2
}

/// `ln(1 + x)`, accurate for small `x` (Kahan's correction).
pub(crate) fn ln_1p(x: f64) -> f64 {
    let u = 1.0 + x;
    if u == 1.0 {
        x
    } else {
        ln(u) * (x / (u - 1.0))
    }
}

/// `exp(x) - 1`, accurate for small `x`.
pub(crate) fn exp_m1(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x <= -40.0 {
        // exp(-40) < 2^-54, half an ulp of 1 below it: exp(x) - 1 rounds
        // to -1 exactly (a block of 40 intervals or more is sampled for
        // sure, without a series).
        return -1.0;
    }
    if x.abs() < 0.5 {
        // Taylor series to x^17: 0.5^16 / 17! is far below an ulp of 1.
        return x * poly(&INV_FACT[1..], x);
    }
    exp(x) - 1.0
}

/// `exp(x)`: x = k ln 2 + r with |r| <= ln 2 / 2, a series for `exp(r)`,
/// and `2^k` put into the exponent.
fn exp(x: f64) -> f64 {
    if x < -745.2 {
        return 0.0;
    }
    if x > 709.7 {
        return f64::INFINITY;
    }
    let k = (x / LN2 + if x < 0.0 { -0.5 } else { 0.5 }) as i64;
    let r = x - k as f64 * LN2;
    // To r^17: 0.35^17 / 17! is far below an ulp of 1.
    let sum = poly(&INV_FACT, r);
    // 2^k in two steps, so that k below -1022 still lands in subnormals.
    let half = k / 2;
    sum * pow2(half) * pow2(k - half)
}

/// `2^k` for `k` in [-1022, 1023].
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        a == b || ((a - b) / b).abs() < 1e-14
    }

    #[test]
    fn agrees_with_std() {
        let mut x = 1e-300f64;
        while x < 1e300 {
            assert!(close(ln(x), x.ln()), "ln({x}) = {} not {}", ln(x), x.ln());
            x *= 1.37;
        }
        for i in 1..10_000 {
            let q = i as f64 / 10_000.0;
            assert!(close(ln_1p(-q), (-q).ln_1p()), "ln_1p(-{q})");
            assert!(close(ln_1p(-q * 1e-9), (-q * 1e-9).ln_1p()));
            let t = -(i as f64) / 100.0;
            assert!(close(exp_m1(t), t.exp_m1()), "exp_m1({t})");
            assert!(close(exp_m1(t * 1e-9), (t * 1e-9).exp_m1()));
        }
        assert_eq!(exp_m1(-1e6), -1.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(1.0), 0.0);
        assert!(ln(5e-324).is_finite());
        // The short cut agrees with the series on both sides of it.
        assert_eq!(exp_m1(-40.0), (-40f64).exp_m1());
        assert_eq!(exp_m1(-39.9), (-39.9f64).exp_m1());
        assert_eq!(exp_m1(-37.0), (-37f64).exp_m1());
    }
}
