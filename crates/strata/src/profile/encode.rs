//! The bytes of a dump: a minimal protocol-buffers writer (what pprof's
//! `profile.proto` needs: varints, length-delimited fields), gzip with
//! stored (uncompressed) deflate blocks and its CRC-32, and writing a file,
//! all in OS memory.
//!
//! # Invariants
//! - A [`Buf`] that failed to grow (the OS refused memory) stays failed:
//!   it ignores later writes and [`Buf::ok`] says so, so a dump is written
//!   whole or not at all.

use core::ffi::CStr;

use super::store::OsVec;

/// Bytes being written.
pub(crate) struct Buf {
    v: OsVec<u8>,
    failed: bool,
}

/// Protocol-buffers wire types.
const VARINT: u8 = 0;
const LEN: u8 = 2;

impl Buf {
    pub(crate) const fn new() -> Self {
        Buf {
            v: OsVec::new(),
            failed: false,
        }
    }

    pub(crate) fn ok(&self) -> bool {
        !self.failed
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.v.as_slice()
    }

    pub(crate) fn clear(&mut self) {
        self.v.clear();
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        if self.failed || !self.v.reserve(b.len()) {
            self.failed = true;
            return;
        }
        for &x in b {
            self.v.push(x);
        }
    }

    pub(crate) fn varint(&mut self, mut v: u64) {
        let mut tmp = [0u8; 10];
        let mut n = 0;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                tmp[n] = b;
                n += 1;
                break;
            }
            tmp[n] = b | 0x80;
            n += 1;
        }
        self.bytes(&tmp[..n]);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    /// An integer field (`uint64`, `int64`, `bool`); zero is left out, as
    /// proto3 does.
    pub(crate) fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    /// A length-delimited field: bytes, a string, a packed array or an
    /// embedded message (already encoded).
    pub(crate) fn field(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.bytes(b);
    }

    /// Appends `other`'s bytes as message field `field`, and marks this
    /// buffer failed if `other` is.
    pub(crate) fn message(&mut self, field: u32, other: &Buf) {
        if other.failed {
            self.failed = true;
        }
        self.field(field, other.as_bytes());
    }
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE 802.3, as gzip uses).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// `data` as a gzip member of stored deflate blocks (RFC 1951 §3.2.4,
/// RFC 1952): valid gzip that any reader inflates, with no compression.
pub(crate) fn gzip_stored(data: &[u8], out: &mut Buf) {
    // Magic, deflate, no flags, no time, no extra flags, Unix.
    out.bytes(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.bytes(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let n = c.len() as u16;
        out.bytes(&[last as u8]);
        out.bytes(&n.to_le_bytes());
        out.bytes(&(!n).to_le_bytes());
        out.bytes(c);
    }
    out.bytes(&crc32(data).to_le_bytes());
    out.bytes(&(data.len() as u32).to_le_bytes());
}

/// Writes `data` to a new file at `path` (replacing one there).
pub(crate) fn write_file(path: &CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path; the flags create or truncate a file.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut rest = data;
    let mut result = Ok(());
    while !rest.is_empty() {
        // SAFETY: writes from a valid buffer of the given length.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            result = Err(e);
            break;
        }
        rest = &rest[n as usize..];
    }
    // SAFETY: our descriptor, closed once.
    if unsafe { libc::close(fd) } != 0 && result.is_ok() {
        result = Err(std::io::Error::last_os_error());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_a_known_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn varints_and_fields() {
        let mut b = Buf::new();
        b.uint(1, 150);
        b.field(2, b"hi");
        b.uint(3, 0);
        assert_eq!(b.as_bytes(), &[0x08, 0x96, 0x01, 0x12, 2, b'h', b'i']);
    }

    #[test]
    fn gzip_that_gunzip_reads() {
        let data: std::vec::Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = Buf::new();
        gzip_stored(&data, &mut out);
        let dir = std::env::temp_dir().join(format!("strata-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.gz");
        std::fs::write(&f, out.as_bytes()).unwrap();
        let got = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&f)
            .output()
            .expect("gzip");
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert!(got.stdout == data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
