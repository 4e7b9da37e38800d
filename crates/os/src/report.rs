//! Messages to stderr written without allocating or formatting, for the paths
//! an allocation can reach: a bad free, an impossible internal state.
//!
//! Numbers are rendered into buffers on the stack; the message goes out with
//! one `write(2)` per part.

/// Writes the parts to stderr, ignoring errors (there is nowhere to report
/// them).
pub fn write_stderr(parts: &[&[u8]]) {
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            // SAFETY: writes from a valid buffer of the given length.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

/// Writes `msg` to stderr and aborts the process.
#[cold]
pub fn fatal(msg: &[u8]) -> ! {
    fatal_parts(&[msg])
}

/// Writes the parts to stderr and aborts the process.
#[cold]
pub fn fatal_parts(parts: &[&[u8]]) -> ! {
    write_stderr(parts);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// A number rendered as `0x...` hexadecimal into a stack buffer.
pub struct Hex {
    buf: [u8; 18],
    start: usize,
}

impl Hex {
    /// Renders `v`.
    pub fn new(mut v: usize) -> Self {
        let mut buf = [0u8; 18];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b"0123456789abcdef"[v & 15];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        i -= 2;
        buf[i] = b'0';
        buf[i + 1] = b'x';
        Hex { buf, start: i }
    }

    /// The rendered bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// A number rendered in decimal into a stack buffer.
pub struct Dec {
    buf: [u8; 20],
    start: usize,
}

impl Dec {
    /// Renders `v`.
    pub fn new(mut v: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Dec { buf, start: i }
    }

    /// The rendered bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;

    #[test]
    fn renders_numbers() {
        assert_eq!(Hex::new(0).as_bytes(), b"0x0");
        assert_eq!(Hex::new(0xdead_beef).as_bytes(), b"0xdeadbeef");
        assert_eq!(Hex::new(usize::MAX).as_bytes(), b"0xffffffffffffffff");
        assert_eq!(Dec::new(0).as_bytes(), b"0");
        assert_eq!(Dec::new(1234567890).as_bytes(), b"1234567890");
        assert_eq!(Dec::new(u64::MAX).as_bytes(), b"18446744073709551615");
    }
}
