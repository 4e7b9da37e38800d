//! Zeroing by residency: [`crate::Os::zero`] for the real kernel. A page of
//! a private anonymous mapping that is not resident (and not in swap) reads
//! as zero, so only resident pages need clearing, and memory the program did
//! not use since it was last made zero is dropped, never cleared again.

use core::ptr::NonNull;

use super::{os_page_size, SystemOs};
use crate::counters::OsCounters;
use crate::{align_down, align_up, Os};

/// Ranges shorter than this are cleared with a plain memset: asking the kernel
/// which pages are resident costs more than writing them.
const ZERO_BY_RESIDENCY_MIN: usize = 256 * 1024;

/// The residency vector is read in chunks of this many OS pages, into a buffer
/// on the stack (never allocated).
const RESIDENCY_CHUNK: usize = 4096;

/// Makes `[start, start + len)` read as zero. Parts of OS pages at either
/// end (a range that is not OS-page aligned, as heap spans on kernels with
/// pages larger than the heap's) are cleared with stores and not counted;
/// the whole pages between by residency. Returns the bytes of whole pages
/// written.
///
/// # Safety
/// The range is part of a private anonymous mapping of `os` that the caller
/// owns; its contents are lost.
pub(super) unsafe fn zero(os: &SystemOs, start: *mut u8, len: usize) -> usize {
    let counters = os.counters();
    let page = os_page_size();
    let first = start as usize;
    let end = first + len;
    let (a, b) = match align_up(first, page) {
        Some(a) => (a, align_down(end, page)),
        None => (end, end),
    };
    if len < ZERO_BY_RESIDENCY_MIN || b < a + page {
        // SAFETY: the caller owns the range.
        unsafe { start.write_bytes(0, len) };
        counters.on_zero_written(len);
        return len;
    }
    // SAFETY (edges): parts of the caller's range.
    unsafe {
        start.write_bytes(0, a - first);
        (b as *mut u8).write_bytes(0, end - b);
    }
    counters.on_zero_written((a - first) + (end - b));
    let (start, len) = (a as *mut u8, b - a);
    // The first page is the sample: not resident, or resident but still
    // all zero, means the program did not use the range since it was
    // last made zero (pages we cleared ourselves stay resident, so
    // residency alone would have us clear them again on every reuse: the
    // calloc loop that re-zeroes memory nobody touched). Dropping the
    // pages costs page-table work only, and a page the program touches
    // later faults in zeroed.
    // SAFETY: the caller owns the range, so its first page is readable.
    let unused = unsafe { !first_page_resident(start, page, counters) || all_zero(start, page) };
    if unused {
        // SAFETY: the caller owns the range and gives up its contents; it
        // is OS-page aligned.
        if unsafe { os.release(NonNull::new_unchecked(start), len) }.is_ok() {
            return 0;
        }
    }
    // The program used this memory: clearing its resident pages is far
    // cheaper than dropping them and faulting them in again.
    // SAFETY: forwarded contract; the range is OS-page aligned.
    let written = unsafe { zero_resident(os, start, len, page) };
    counters.on_zero_written(written);
    written
}

/// Whether a page that `mincore` reports as not resident is certain to read as
/// zero. Without swap, a non-resident page of a private anonymous mapping has
/// never been written (or was released). With swap it may be swapped out and
/// hold data, so residency proves nothing and zeroing falls back to release.
pub(super) fn nonresident_reads_zero() -> bool {
    // SAFETY: sysinfo writes into the struct we pass.
    unsafe {
        let mut info: libc::sysinfo = core::mem::zeroed();
        libc::sysinfo(&mut info) == 0 && info.totalswap == 0
    }
}

/// Whether the first page of a range is resident: the sample that decides
/// whether a block was used (see [`Os::zero`]). A program that used a block
/// almost always touched its first page, and each sample is a system call:
/// with three (first, middle, last), reusing an untouched 1 MiB calloc'd
/// block cost four system calls to jemalloc's one. A block used but not at
/// its start is dropped instead of cleared: correct, only slower if the
/// program then writes it again.
///
/// # Safety
/// `start` is page aligned and mapped.
unsafe fn first_page_resident(start: *mut u8, page: usize, counters: &OsCounters) -> bool {
    let mut v = 0u8;
    counters.on_residency_query();
    // SAFETY: one page of the caller's range; one byte of output.
    let rc = unsafe { libc::mincore(start.cast(), page, &mut v as *mut u8 as *mut _) };
    rc != 0 || v & 1 != 0
}

/// Whether `len` bytes at `p` (8-byte aligned, `len` a multiple of 64) are
/// all zero. Reads 8 words per step and tests their or, so a page costs a
/// few dozen instructions; stops at the first non-zero step.
///
/// # Safety
/// The range is mapped and readable.
unsafe fn all_zero(p: *const u8, len: usize) -> bool {
    // SAFETY: the caller's readable, 8-byte aligned range.
    let words = unsafe { core::slice::from_raw_parts(p as *const u64, len / 8) };
    words
        .chunks(8)
        .all(|c| c.iter().fold(0, |acc, &w| acc | w) == 0)
}

/// Makes `[start, start + len)` read as zero, chunk by chunk: a chunk with at
/// most 1/8 of its pages resident is dropped with `MADV_DONTNEED`; otherwise
/// resident pages are cleared with stores; pages that are not resident
/// already read as zero, unless swap is configured (a swapped-out page is
/// not resident but holds data), in which case they are dropped with
/// `MADV_DONTNEED`. Returns bytes written.
///
/// # Safety
/// The range is an OS-page-aligned part of a private anonymous mapping of
/// `os` that the caller owns.
unsafe fn zero_resident(os: &SystemOs, start: *mut u8, len: usize, page: usize) -> usize {
    let mut vec = [0u8; RESIDENCY_CHUNK];
    let swap = !nonresident_reads_zero();
    let pages = len / page;
    let mut written = 0;
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(RESIDENCY_CHUNK);
        // SAFETY: start + done * page stays inside the caller's range.
        let chunk = unsafe { start.add(done * page) };
        os.counters().on_residency_query();
        // SAFETY: mincore writes one byte per page of the range into `vec`,
        // which has room for `n` pages.
        let rc = unsafe { libc::mincore(chunk.cast(), n * page, vec.as_mut_ptr().cast()) };
        if rc != 0 {
            // Cannot tell: clear the whole chunk.
            // SAFETY: inside the caller's range.
            unsafe { chunk.write_bytes(0, n * page) };
            written += n * page;
            done += n;
            continue;
        }
        // A chunk the program barely used (at most 1/8 resident) is dropped
        // whole: clearing its pages would keep them resident, and a program
        // that writes a different page each cycle would make every later
        // zeroing clear all the pages it ever touched.
        let resident_pages = vec[..n].iter().filter(|&&v| v & 1 != 0).count();
        if resident_pages * 8 <= n {
            // SAFETY: the chunk lies inside the caller's range; its contents
            // are given up.
            if unsafe { os.release(NonNull::new_unchecked(chunk), n * page) }.is_ok() {
                done += n;
                continue;
            }
        }
        let mut i = 0;
        while i < n {
            let resident = vec[i] & 1 != 0;
            let run_start = i;
            while i < n && (vec[i] & 1 != 0) == resident {
                i += 1;
            }
            let bytes = (i - run_start) * page;
            // SAFETY: the run lies inside this chunk of the caller's range.
            let run = unsafe { chunk.add(run_start * page) };
            if resident {
                // SAFETY: as above.
                unsafe { run.write_bytes(0, bytes) };
                written += bytes;
            } else if swap {
                // SAFETY: as above; the caller gives up the contents.
                let ok = unsafe { os.release(NonNull::new_unchecked(run), bytes) }.is_ok();
                if !ok {
                    // SAFETY: as above.
                    unsafe { run.write_bytes(0, bytes) };
                    written += bytes;
                }
            }
        }
        done += n;
    }
    written
}
