//! glibc's introspection functions, answered from strata's statistics:
//! `mallinfo2`, `mallinfo`, `malloc_info`, `malloc_stats`, and
//! `malloc_trim`. All of them take one [`crate::stats`] snapshot and map it
//! as [`crate::MallInfo`] documents, so they agree with each other and
//! with `strata_stats_json`.
//!
//! # Invariants
//! - Nothing here allocates through Rust's global allocator. `malloc_info`
//!   formats into a stack buffer and hands it to `fwrite`, which may call
//!   `malloc` (strata's C `malloc`: no strata lock is held meanwhile).

use core::ffi::{c_int, c_void};
use core::fmt;

use strata_os::Dec;

use super::alloc::set_errno;
use crate::MallInfo;

/// glibc's `struct mallinfo`: the fields of [`MallInfo`] as `int`s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MallInfoInt {
    /// See [`MallInfo::arena`].
    pub arena: c_int,
    /// See [`MallInfo::ordblks`].
    pub ordblks: c_int,
    /// See [`MallInfo::smblks`].
    pub smblks: c_int,
    /// See [`MallInfo::hblks`].
    pub hblks: c_int,
    /// See [`MallInfo::hblkhd`].
    pub hblkhd: c_int,
    /// See [`MallInfo::usmblks`].
    pub usmblks: c_int,
    /// See [`MallInfo::fsmblks`].
    pub fsmblks: c_int,
    /// See [`MallInfo::uordblks`].
    pub uordblks: c_int,
    /// See [`MallInfo::fordblks`].
    pub fordblks: c_int,
    /// See [`MallInfo::keepcost`].
    pub keepcost: c_int,
}

impl From<MallInfo> for MallInfoInt {
    /// Each field saturates at `INT_MAX` (glibc's own `mallinfo` wraps).
    fn from(m: MallInfo) -> Self {
        let int = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
        MallInfoInt {
            arena: int(m.arena),
            ordblks: int(m.ordblks),
            smblks: int(m.smblks),
            hblks: int(m.hblks),
            hblkhd: int(m.hblkhd),
            usmblks: int(m.usmblks),
            fsmblks: int(m.fsmblks),
            uordblks: int(m.uordblks),
            fordblks: int(m.fordblks),
            keepcost: int(m.keepcost),
        }
    }
}

/// glibc's `mallinfo2`: strata's memory in glibc's fields (see
/// [`crate::MallInfo`] for the mapping).
pub extern "C" fn mallinfo2() -> MallInfo {
    crate::stats().mallinfo()
}

/// glibc's `mallinfo`: [`mallinfo2`] with every field saturated at
/// `INT_MAX`.
pub extern "C" fn mallinfo() -> MallInfoInt {
    mallinfo2().into()
}

/// glibc's `malloc_info`: writes the XML of [`crate::write_malloc_info`]
/// to `fp`. Returns 0, or -1 with `errno` set: `EINVAL` when `options` is
/// not 0 or `fp` is null (glibc would crash on a null stream), or what
/// `fwrite` left when it failed.
///
/// # Safety
/// `fp` is null or an open `FILE *`.
pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    if options != 0 || fp.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    let stats = crate::stats();
    let mut out = FileWriter {
        fp,
        buf: [0; 512],
        len: 0,
        failed: false,
    };
    let written = crate::write_malloc_info(&stats, &mut out).is_ok() && out.flush();
    if written {
        0
    } else {
        -1
    }
}

/// A `fmt::Write` that gathers text in a stack buffer and hands it to
/// `fwrite` a buffer at a time.
struct FileWriter {
    fp: *mut libc::FILE,
    buf: [u8; 512],
    len: usize,
    failed: bool,
}

impl FileWriter {
    /// Writes what is gathered; false once any write failed.
    fn flush(&mut self) -> bool {
        if self.len > 0 && !self.failed {
            // SAFETY: `fp` is the caller's open stream; the bytes are ours.
            let n =
                unsafe { libc::fwrite(self.buf.as_ptr().cast::<c_void>(), 1, self.len, self.fp) };
            self.failed = n != self.len;
        }
        self.len = 0;
        !self.failed
    }
}

impl fmt::Write for FileWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() && !self.flush() {
                return Err(fmt::Error);
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

/// glibc's `malloc_stats`: prints to stderr glibc's summary lines, from
/// the same snapshot and mapping as [`mallinfo2`], then strata's own
/// report (the one `STRATA_SHOW_STATS=1` prints at exit):
///
/// ```text
/// Arena 0:
/// system bytes     =    4194304      arena
/// in use bytes     =    1048576      uordblks
/// Total (incl. mmap):
/// system bytes     =   37748736      arena + hblkhd
/// in use bytes     =   34603008      uordblks + hblkhd
/// strata: statistics
///   mapped bytes: ...
/// ```
///
/// (glibc's "max mmap" lines are left out: strata does not track them.)
pub extern "C" fn malloc_stats() {
    let stats = crate::stats();
    let m = stats.mallinfo();
    let line = |label: &[u8], v: usize| {
        let d = Dec::new(v as u64);
        let pad = b"          ";
        let n = pad.len().saturating_sub(d.as_bytes().len());
        strata_os::write_stderr(&[label, b" = ", &pad[..n], d.as_bytes(), b"\n"]);
    };
    strata_os::write_stderr(&[b"Arena 0:\n"]);
    line(b"system bytes    ", m.arena);
    line(b"in use bytes    ", m.uordblks);
    strata_os::write_stderr(&[b"Total (incl. mmap):\n"]);
    line(b"system bytes    ", m.arena + m.hblkhd);
    line(b"in use bytes    ", m.uordblks + m.hblkhd);
    stats.write_to_stderr();
}

/// Flushes the calling thread's cache and returns every free page strata
/// holds to the OS. Returns 1 if any memory was released, else 0. `pad` is
/// ignored.
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    c_int::from(crate::release_free_memory() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_fields_saturate() {
        let m = MallInfo {
            arena: usize::MAX,
            uordblks: 5,
            hblkhd: c_int::MAX as usize + 1,
            ..MallInfo::default()
        };
        let i = MallInfoInt::from(m);
        assert_eq!((i.arena, i.uordblks, i.hblkhd), (c_int::MAX, 5, c_int::MAX));
    }
}
