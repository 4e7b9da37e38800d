//! The real operating system: Linux (and other Unix) virtual memory calls.
//!
//! Every call checks its result and returns an [`OsError`]; nothing here
//! allocates, so it may run inside `malloc`.

use core::ptr::NonNull;

use crate::counters::OsCounters;
use crate::sync::statics::{AtomicUsize, Ordering};
use crate::{align_down, align_up, Os, OsError};

/// Ranges shorter than this are cleared with a plain memset: asking the kernel
/// which pages are resident costs more than writing them.
const ZERO_BY_RESIDENCY_MIN: usize = 256 * 1024;

/// The residency vector is read in chunks of this many OS pages, into a buffer
/// on the stack (never allocated).
const RESIDENCY_CHUNK: usize = 4096;

/// The kernel's page size (`sysconf(_SC_PAGESIZE)`), asked once.
pub fn os_page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if size > 0 && (size as usize).is_power_of_two() {
        size as usize
    } else {
        4096
    };
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// The process's address-space limit (`RLIMIT_AS`, `ulimit -v`) in bytes,
/// or `None` when unlimited.
pub fn address_space_limit() -> Option<usize> {
    // SAFETY: getrlimit writes into the struct we pass.
    let (rc, cur) = unsafe {
        let mut r: libc::rlimit = core::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_AS, &mut r), r.rlim_cur)
    };
    if rc != 0 || cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(usize::try_from(cur).unwrap_or(usize::MAX))
}

/// Milliseconds of `CLOCK_MONOTONIC_COARSE` (a vDSO read, no system call).
pub fn monotonic_ms() -> u64 {
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe {
        let mut ts: libc::timespec = core::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }
}

/// The operating system's virtual memory, through `mmap` and friends.
pub struct SystemOs {
    counters: OsCounters,
}

impl SystemOs {
    /// The system OS layer, with its counters at zero.
    pub const fn new() -> Self {
        SystemOs {
            counters: OsCounters::new(),
        }
    }
}

impl Default for SystemOs {
    fn default() -> Self {
        Self::new()
    }
}

/// Maps `len` bytes with protection `prot` (`PROT_NONE` for a reservation).
fn raw_map(len: usize, prot: libc::c_int) -> Result<NonNull<u8>, OsError> {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; the result is checked below.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            prot,
            // No MAP_NORESERVE: under the kernel's default overcommit
            // heuristic, a request no machine could back (malloc of 32 TiB)
            // then fails here, as it does with glibc, instead of succeeding
            // and killing the program when touched. A PROT_NONE reservation
            // is not charged either way; committing it with mprotect is.
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(OsError::OutOfMemory);
    }
    NonNull::new(p.cast()).ok_or(OsError::OutOfMemory)
}

fn raw_unmap(ptr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: callers pass page-aligned ranges they mapped and no longer use.
    unsafe { libc::munmap(ptr.cast(), len) };
}

/// Whether a page that `mincore` reports as not resident is certain to read as
/// zero. Without swap, a non-resident page of a private anonymous mapping has
/// never been written (or was released). With swap it may be swapped out and
/// hold data, so residency proves nothing and zeroing falls back to release.
fn nonresident_reads_zero() -> bool {
    // SAFETY: sysinfo writes into the struct we pass.
    unsafe {
        let mut info: libc::sysinfo = core::mem::zeroed();
        libc::sysinfo(&mut info) == 0 && info.totalswap == 0
    }
}

/// Maps `len` bytes aligned to `align` with protection `prot`: over-maps by
/// the alignment and trims both ends.
fn aligned_map(len: usize, align: usize, prot: libc::c_int) -> Result<NonNull<u8>, OsError> {
    let page = os_page_size();
    if len == 0 || len % page != 0 || !align.is_power_of_two() {
        return Err(OsError::InvalidRequest);
    }
    if len > isize::MAX as usize {
        return Err(OsError::OutOfMemory);
    }
    if align <= page {
        return raw_map(len, prot);
    }
    let total = len.checked_add(align - page).ok_or(OsError::OutOfMemory)?;
    let base = raw_map(total, prot)?.as_ptr() as usize;
    let start = align_up(base, align).ok_or(OsError::OutOfMemory)?;
    raw_unmap(base as *mut u8, start - base);
    raw_unmap((start + len) as *mut u8, base + total - (start + len));
    // SAFETY: start lies inside the successful mapping, so it is non-null.
    Ok(unsafe { NonNull::new_unchecked(start as *mut u8) })
}

unsafe impl Os for SystemOs {
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        let p = aligned_map(len, align, libc::PROT_READ | libc::PROT_WRITE)?;
        self.counters.on_map(len);
        Ok(p)
    }

    fn reserve(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        aligned_map(len, align, libc::PROT_NONE)
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        let page = os_page_size();
        if len == 0 || len % page != 0 || ptr.as_ptr() as usize % page != 0 {
            return Err(OsError::InvalidRequest);
        }
        // mprotect, not mmap(MAP_FIXED): a refused commit charge (strict
        // overcommit, or a request larger than memory and swap under the
        // default heuristic) leaves the range reserved, never a hole another
        // mapping could take. The pages were never accessible, so they are
        // not resident and read as zero.
        // SAFETY: the caller passes a page-aligned part of our reservation.
        let rc =
            unsafe { libc::mprotect(ptr.as_ptr().cast(), len, libc::PROT_READ | libc::PROT_WRITE) };
        if rc != 0 {
            return Err(OsError::OutOfMemory);
        }
        self.counters.on_map(len);
        Ok(())
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        raw_unmap(ptr.as_ptr(), len);
        self.counters.on_unmap(len);
    }

    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        // Only whole OS pages can be released; our pages are never smaller.
        let page = os_page_size();
        let start = align_up(ptr.as_ptr() as usize, page).ok_or(OsError::InvalidRequest)?;
        let end = align_down(ptr.as_ptr() as usize + len, page);
        if end <= start {
            return Ok(());
        }
        // SAFETY: the caller owns the mapped range; DONTNEED on private
        // anonymous memory discards the pages, which then read as zero.
        let rc = unsafe { libc::madvise(start as *mut _, end - start, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(OsError::Unsupported);
        }
        self.counters.on_release(end - start);
        Ok(())
    }

    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize {
        let page = os_page_size();
        let aligned = (ptr.as_ptr() as usize) % page == 0 && len % page == 0;
        if len < ZERO_BY_RESIDENCY_MIN || !aligned {
            // SAFETY: the caller owns the range.
            unsafe { ptr.as_ptr().write_bytes(0, len) };
            self.counters.on_zero_written(len);
            return len;
        }
        // The first page is the sample: not resident, or resident but still
        // all zero, means the program did not use the range since it was
        // last made zero (pages we cleared ourselves stay resident, so
        // residency alone would have us clear them again on every reuse: the
        // calloc loop that re-zeroes memory nobody touched). Dropping the
        // pages costs page-table work only, and a page the program touches
        // later faults in zeroed.
        // SAFETY: the caller owns the range, so its first page is readable.
        let unused = unsafe {
            !first_page_resident(ptr.as_ptr(), page, &self.counters) || all_zero(ptr.as_ptr(), page)
        };
        if unused {
            // SAFETY: the caller owns the range and gives up its contents.
            if unsafe { self.release(ptr, len) }.is_ok() {
                return 0;
            }
        }
        // The program used this memory: clearing its resident pages is far
        // cheaper than dropping them and faulting them in again.
        // SAFETY: forwarded contract.
        let written = unsafe { zero_resident(self, ptr.as_ptr(), len, page) };
        self.counters.on_zero_written(written);
        written
    }

    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        self.counters.on_populate();
        let page = os_page_size();
        let start = align_down(ptr.as_ptr() as usize, page);
        let end = align_up(ptr.as_ptr() as usize + len, page).ok_or(OsError::InvalidRequest)?;
        // SAFETY: the caller owns the mapped, writable range.
        let rc = unsafe { libc::madvise(start as *mut _, end - start, MADV_POPULATE_WRITE) };
        if rc == 0 {
            return Ok(());
        }
        // Kernels before 5.14 lack MADV_POPULATE_WRITE: write one byte per page.
        // Adding zero through a volatile read-modify-write keeps the contents.
        let mut p = start;
        while p < end {
            // SAFETY: p is inside the caller's writable range.
            unsafe {
                let b = p as *mut u8;
                b.write_volatile(b.read_volatile());
            }
            p += page;
        }
        Ok(())
    }

    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
    ) -> Result<NonNull<u8>, OsError> {
        let page = os_page_size();
        if new_len == 0 || new_len % page != 0 || old_len % page != 0 || !align.is_power_of_two() {
            return Err(OsError::InvalidRequest);
        }
        let old = ptr.as_ptr().cast::<libc::c_void>();
        // SAFETY (all mremap calls below): the caller passes a whole mapping
        // of ours; the kernel moves page tables, never the data.
        // In place first: shrinking always works, growing when the address
        // space after the mapping is free.
        let p = unsafe { libc::mremap(old, old_len, new_len, 0) };
        if p != libc::MAP_FAILED {
            self.counters.on_remap(old_len, new_len);
            return Ok(ptr);
        }
        if align <= page {
            let p = unsafe { libc::mremap(old, old_len, new_len, libc::MREMAP_MAYMOVE) };
            if p == libc::MAP_FAILED {
                return Err(OsError::OutOfMemory);
            }
            self.counters.on_remap(old_len, new_len);
            return NonNull::new(p.cast()).ok_or(OsError::OutOfMemory);
        }
        // Stronger alignment than mremap promises: reserve an aligned target
        // and move the mapping onto it.
        let target = self.map(new_len, align)?;
        let p = unsafe {
            libc::mremap(
                old,
                old_len,
                new_len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                target.as_ptr().cast::<libc::c_void>(),
            )
        };
        if p == libc::MAP_FAILED {
            // SAFETY: the reservation is ours and unused.
            unsafe { self.unmap(target, new_len) };
            return Err(OsError::OutOfMemory);
        }
        // The reservation was replaced by the moved mapping.
        self.counters.on_remap(old_len, 0);
        Ok(target)
    }

    fn moves_pages(&self) -> bool {
        cfg!(target_os = "linux")
    }

    #[cfg(target_os = "linux")]
    unsafe fn move_pages(
        &self,
        from: NonNull<u8>,
        to: NonNull<u8>,
        len: usize,
    ) -> Result<(), OsError> {
        let page = os_page_size();
        let (f, t) = (from.as_ptr() as usize, to.as_ptr() as usize);
        if len == 0 || len % page != 0 || f % page != 0 || t % page != 0 {
            return Err(OsError::InvalidRequest);
        }
        // SAFETY: the caller owns both page-aligned, disjoint ranges. The
        // kernel moves the page-table entries of `from` onto `to` (which it
        // unmaps first: MREMAP_FIXED), and DONTUNMAP leaves `from` mapped
        // with no pages, so it reads as zero and no hole opens in the
        // caller's mapping for another mmap to land in.
        let p = unsafe {
            libc::mremap(
                from.as_ptr().cast(),
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
                to.as_ptr().cast::<libc::c_void>(),
            )
        };
        if p == libc::MAP_FAILED {
            // EINVAL: a kernel before 5.7 (or a mapping it cannot move);
            // EFAULT: a range across two mappings; ENOMEM: no room for
            // another mapping (vm.max_map_count).
            return Err(match errno() {
                libc::ENOMEM => OsError::OutOfMemory,
                libc::EFAULT => OsError::InvalidRequest,
                _ => OsError::Unsupported,
            });
        }
        // What `to` held was replaced; nothing was mapped or unmapped.
        self.counters.on_remap(len, len);
        Ok(())
    }

    unsafe fn hint_huge_pages(&self, ptr: NonNull<u8>, len: usize, huge: bool) {
        #[cfg(target_os = "linux")]
        {
            let advice = if huge {
                libc::MADV_HUGEPAGE
            } else {
                libc::MADV_NOHUGEPAGE
            };
            // SAFETY: advisory only, on a range the caller owns.
            unsafe { libc::madvise(ptr.as_ptr().cast(), len, advice) };
        }
    }

    fn counters(&self) -> &OsCounters {
        &self.counters
    }
}

/// The calling thread's `errno`.
#[cfg(target_os = "linux")]
fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// `MADV_POPULATE_WRITE` (Linux 5.14); spelled out because older libc crates
/// lack it.
const MADV_POPULATE_WRITE: libc::c_int = 23;

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
/// already read as zero, unless
/// swap is configured (a swapped-out page is not resident but holds data),
/// in which case they are dropped with `MADV_DONTNEED`. Returns bytes written.
///
/// # Safety
/// The range is a page-aligned part of a private anonymous mapping of `os`
/// that the caller owns.
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
        os.counters.on_residency_query();
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

#[cfg(all(test, not(loom)))]
mod tests;
