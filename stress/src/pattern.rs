//! The content pattern every block carries, and the zero checks.
//!
//! A block's pattern is derived from its address, its size and a per-block
//! seed (see [`base`]): two blocks never carry the same pattern, so a block
//! handed out twice, a copy from the wrong place, a stale free-list pointer
//! written into a live block, or a page that was dropped (reads as zero) are
//! all caught, at the exact byte.
//!
//! The pattern is a 4 KiB template of distinct words (`i * K ^ base`) with
//! the first word of every 4 KiB chunk replaced by a stamp of the chunk's
//! index, so shifts by less than and by multiples of 4 KiB are caught too.
//! Byte `i` depends only on the base and `i`, so any prefix can be checked
//! alone (what `realloc` keeps). Filling copies the template with `memcpy`
//! and checking compares with `memcmp`: fast even in debug builds.

use strata_testkit::rng::mix;

/// The template length; also the stamp period.
pub const CHUNK: usize = 4096;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The first byte that differs from what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Offset of the first bad byte from the start of the block.
    pub offset: usize,
    /// The byte that should be there.
    pub expected: u8,
    /// The byte that is there.
    pub found: u8,
    /// The 8 bytes found at the 8-aligned offset holding the bad byte
    /// (little-endian; fewer at the end of a block).
    pub found_word: u64,
    /// How many bytes of the 4 KiB chunk holding the bad byte are bad.
    pub bad_in_chunk: usize,
}

/// The pattern base of a block at `addr` of `size` bytes with `seed`.
#[inline]
pub fn base(addr: usize, size: usize, seed: u64) -> u64 {
    mix(addr as u64 ^ mix(size as u64 ^ mix(seed)))
}

#[inline]
fn word(base: u64, i: usize) -> u64 {
    (i as u64).wrapping_mul(0x0000_0100_0000_01B3) ^ base
}

#[inline]
fn stamp(base: u64, chunk: usize) -> u64 {
    (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ base.rotate_left(17) ^ 0x5354_5245_5353
}

/// The template bytes of `base`, as far as `len` bytes need them.
fn template(base: u64, len: usize) -> [u8; CHUNK] {
    let mut t = [0u8; CHUNK];
    let n = len.min(CHUNK).div_ceil(8);
    for (i, c) in t.chunks_exact_mut(8).take(n).enumerate() {
        c.copy_from_slice(&word(base, i).to_le_bytes());
    }
    t
}

/// The byte the pattern `base` has at offset `off`.
pub fn expected_byte(base: u64, off: usize) -> u8 {
    let (c, o) = (off / CHUNK, off % CHUNK);
    let w = if o < 8 {
        stamp(base, c)
    } else {
        word(base, o / 8)
    };
    w.to_le_bytes()[o % 8]
}

/// Writes the pattern `base` over `len` bytes at `p`.
///
/// # Safety
/// `p..p + len` is writable memory owned by the caller.
pub unsafe fn fill(p: *mut u8, len: usize, base: u64) {
    let t = template(base, len);
    let mut off = 0;
    let mut c = 0;
    while off < len {
        let n = (len - off).min(CHUNK);
        let s = stamp(base, c).to_le_bytes();
        // SAFETY: off + n <= len, inside the caller's range; the template is
        // a distinct stack array.
        unsafe {
            core::ptr::copy_nonoverlapping(t.as_ptr(), p.add(off), n);
            core::ptr::copy_nonoverlapping(s.as_ptr(), p.add(off), n.min(8));
        }
        off += n;
        c += 1;
    }
}

fn mismatch(buf: &[u8], off: usize, expected: impl Fn(usize) -> u8) -> Mismatch {
    let w0 = off & !7;
    let mut fw = [0u8; 8];
    let wend = (w0 + 8).min(buf.len());
    fw[..wend - w0].copy_from_slice(&buf[w0..wend]);
    let c0 = off - off % CHUNK;
    let cend = (c0 + CHUNK).min(buf.len());
    Mismatch {
        offset: off,
        expected: expected(off),
        found: buf[off],
        found_word: u64::from_le_bytes(fw),
        bad_in_chunk: (c0..cend).filter(|&j| buf[j] != expected(j)).count(),
    }
}

/// Checks that `buf` holds the first `buf.len()` bytes of the pattern `base`.
pub fn check(buf: &[u8], base: u64) -> Result<(), Mismatch> {
    let t = template(base, buf.len());
    for (c, chunk) in buf.chunks(CHUNK).enumerate() {
        let n = chunk.len();
        let k = n.min(8);
        if chunk[..k] != stamp(base, c).to_le_bytes()[..k] || chunk[k..] != t[k..n] {
            let j = (0..n)
                .find(|&j| chunk[j] != expected_byte(base, c * CHUNK + j))
                .unwrap_or(0);
            return Err(mismatch(buf, c * CHUNK + j, |o| expected_byte(base, o)));
        }
    }
    Ok(())
}

/// Checks that every byte of `buf` is zero.
pub fn check_zero_all(buf: &[u8]) -> Result<(), Mismatch> {
    for (k, c) in buf.chunks(ZEROS.len()).enumerate() {
        if c != &ZEROS[..c.len()] {
            let j = c.iter().position(|b| *b != 0).unwrap_or(0);
            return Err(mismatch(buf, k * ZEROS.len() + j, |_| 0));
        }
    }
    Ok(())
}

/// Checks that sampled words of `buf` are zero: the first and the last
/// 8 bytes, and one word at a pseudo-random 8-aligned offset in every 4 KiB
/// (`salt` picks the offsets). Returns how many bytes were looked at.
pub fn check_zero_sampled(buf: &[u8], salt: u64) -> Result<usize, Mismatch> {
    let len = buf.len();
    let mut looked = 0;
    let mut probe = |off: usize| -> Result<(), Mismatch> {
        let end = (off + 8).min(len);
        looked += end - off;
        match buf[off..end].iter().position(|b| *b != 0) {
            Some(j) => Err(mismatch(buf, off + j, |_| 0)),
            None => Ok(()),
        }
    };
    probe(0)?;
    probe(len.saturating_sub(8))?;
    let mut c = 0;
    while c < len {
        let span = (len - c).min(CHUNK);
        let off = (c + mix(salt ^ c as u64) as usize % span) & !7;
        probe(off.min(len - 1))?;
        c += CHUNK;
    }
    Ok(looked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, b: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        // SAFETY: v owns len writable bytes.
        unsafe { fill(v.as_mut_ptr(), len, b) };
        v
    }

    #[test]
    fn fill_then_check_passes_for_every_length_and_prefix() {
        for len in [1, 7, 8, 9, 100, 4095, 4096, 4097, 20_000] {
            let b = base(0x1000, len, 42);
            let v = filled(len, b);
            assert_eq!(check(&v, b), Ok(()));
            assert_eq!(check(&v[..len / 2], b), Ok(()));
            for (i, &x) in v.iter().enumerate() {
                assert_eq!(x, expected_byte(b, i));
            }
        }
    }

    #[test]
    fn check_finds_the_exact_bad_byte() {
        let b = base(0x2000, 10_000, 1);
        let mut v = filled(10_000, b);
        v[5003] ^= 0x10;
        let m = check(&v, b).unwrap_err();
        assert_eq!(m.offset, 5003);
        assert_eq!(m.bad_in_chunk, 1);
        assert_eq!(m.found, m.expected ^ 0x10);
    }

    #[test]
    fn different_addresses_sizes_or_seeds_give_different_patterns() {
        let b = base(0x3000, 64, 9);
        let v = filled(64, b);
        assert!(check(&v, base(0x3008, 64, 9)).is_err());
        assert!(check(&v, base(0x3000, 65, 9)).is_err());
        assert!(check(&v, base(0x3000, 64, 10)).is_err());
    }

    #[test]
    fn shifted_copies_are_caught() {
        let b = base(0x4000, 3 * CHUNK, 3);
        let v = filled(3 * CHUNK, b);
        let mut w = v.clone();
        w.copy_within(CHUNK.., 0);
        assert!(check(&w[..CHUNK], b).is_err());
    }

    #[test]
    fn zero_checks() {
        let mut v = vec![0u8; 100_000];
        assert_eq!(check_zero_all(&v), Ok(()));
        assert!(check_zero_sampled(&v, 5).is_ok());
        v[99_999] = 1;
        assert_eq!(check_zero_all(&v).unwrap_err().offset, 99_999);
        assert_eq!(check_zero_sampled(&v, 5).unwrap_err().offset, 99_999);
        v[99_999] = 0;
        v[0] = 2;
        assert_eq!(check_zero_sampled(&v, 5).unwrap_err().offset, 0);
    }
}
