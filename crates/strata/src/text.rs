//! Text written without allocating: a [`core::fmt::Write`] into a byte
//! buffer the caller owns, which keeps what fits and counts what did not,
//! so that a C caller can be told the length it needs (`snprintf`'s rule).
//!
//! # Invariants
//! - `len <= buf.len()`, and `buf[..len]` is the start of the text.
//! - `needed` is the length of the whole text written so far.
//! - When `reserve_nul` is set, `len < buf.len()` for a non-empty buffer,
//!   leaving room for a terminating NUL (a truncated text is cut at a byte,
//!   possibly inside a multi-byte character: callers write ASCII).

use core::fmt;

/// Writes into a byte buffer, keeping the prefix that fits.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    needed: usize,
    reserve_nul: bool,
}

impl<'a> SliceWriter<'a> {
    /// A writer over `buf`, all of which may be filled.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter {
            buf,
            len: 0,
            needed: 0,
            reserve_nul: false,
        }
    }

    /// A writer over `buf` that keeps its last byte for a NUL
    /// ([`SliceWriter::finish_c`]).
    pub(crate) fn for_c_string(buf: &'a mut [u8]) -> Self {
        SliceWriter {
            reserve_nul: true,
            ..SliceWriter::new(buf)
        }
    }

    /// The text that fit.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The length of the whole text, whether it fit or not.
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// NUL-terminates what fit (if the buffer has any room) and returns the
    /// length of the whole text, not counting the NUL.
    pub(crate) fn finish_c(self) -> usize {
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = 0;
        }
        self.needed
    }

    /// Writes raw bytes.
    pub fn write_bytes(&mut self, s: &[u8]) {
        self.needed = self.needed.saturating_add(s.len());
        let room = self
            .buf
            .len()
            .saturating_sub(self.len + usize::from(self.reserve_nul));
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SliceWriter;
    use core::fmt::Write;

    #[test]
    fn keeps_what_fits_and_counts_the_rest() {
        let mut buf = [0xffu8; 8];
        let mut w = SliceWriter::new(&mut buf);
        write!(w, "{}-{}", 1234, ["abc", "def"].concat()).unwrap();
        assert_eq!(w.written(), b"1234-abc");
        assert_eq!(w.needed(), 11);

        let mut buf = [0xffu8; 8];
        let mut w = SliceWriter::for_c_string(&mut buf);
        write!(w, "{}-{}", 1234, ["abc", "def"].concat()).unwrap();
        assert_eq!(w.finish_c(), 11);
        assert_eq!(&buf, b"1234-ab\0");

        let mut w = SliceWriter::for_c_string(&mut []);
        w.write_str("x").unwrap();
        assert_eq!(w.finish_c(), 1);
    }
}
