//! The real operating system: Linux virtual memory calls.
//!
//! Every call checks its result and returns an [`OsError`]; nothing here
//! allocates, so it may run inside `malloc`.
//!
//! # What the kernel is trusted with
//! - A mapping is moved (`mremap`) only whole, and only when it is one
//!   kernel mapping by construction: a mapping of its own made by
//!   [`Os::map`] or a previous move, never split by a hint or a protection
//!   change. Memory inside the heap's arena is never moved: its pages may
//!   span several kernel mappings, and before Linux 6.17 a move of such a
//!   range fails only after the kernel has unmapped the destination
//!   (6.17 may instead stop a move part-way).
//! - `MREMAP_FIXED` is used only onto a fresh reservation of this layer.
//!   When the move fails, the destination is in an unknown state (the
//!   kernel may have unmapped it first); [`reclaim_failed_target`] takes it
//!   back whole or leaves it alone, and never unmaps a range another
//!   mapping may have taken meanwhile.
//! - Kernels from 4.18 on are supported. Features newer than that are
//!   probed on first use and their absence handled: `MADV_POPULATE_WRITE`
//!   (5.14) falls back to touching the range.

use core::ptr::NonNull;

use crate::counters::OsCounters;
use crate::{align_down, align_up, Os, OsError};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

mod vdso;
mod zero;

/// The largest OS page the page heap can serve (its growth unit is 2 MiB;
/// 4, 16 and 64 KiB pages are tested). [`check_page_size`] refuses larger
/// ones.
pub const MAX_OS_PAGE: usize = 64 << 10;

/// Whether strata can run on OS pages of `size` bytes: a power of two no
/// larger than [`MAX_OS_PAGE`]. The error is the whole line to print, ending
/// in a newline. Neither allocates nor panics, so it may run inside `malloc`.
pub const fn check_page_size(size: usize) -> Result<(), &'static str> {
    if size == 0 {
        Err("strata: the kernel did not report its page size, which strata needs\n")
    } else if !size.is_power_of_two() {
        Err("strata: this kernel's page size is not a power of two, which strata does not support\n")
    } else if size > MAX_OS_PAGE {
        Err("strata: this kernel's page size is larger than 64 KiB, which strata does not support\n")
    } else {
        Ok(())
    }
}

/// The kernel's page size, once [`os_page_size`] has asked (0 before).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The kernel's page size (`AT_PAGESZ` of the auxiliary vector, as
/// `sysconf` answers it), asked once. Stops the
/// program with [`check_page_size`]'s message when strata cannot use it; the
/// allocator's initialisation calls this first, so that happens at start.
/// Inline, one load: the page heap rounds to it on paths as hot as a large
/// block's `realloc` step (a call there made the step save and restore six
/// registers).
#[inline]
pub fn os_page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => ask_page_size(),
        cached => cached,
    }
}

/// [`os_page_size`]'s first call.
#[cold]
#[inline(never)]
fn ask_page_size() -> usize {
    // The auxiliary vector rather than `sysconf`: `getauxval` sits beside
    // `mmap` in libc's text, so a small program faults in no more of it
    // (see the `vdso` module).
    // SAFETY: getauxval has no preconditions.
    let size = match unsafe { libc::getauxval(libc::AT_PAGESZ) } {
        // SAFETY: sysconf has no preconditions.
        0 => unsafe { libc::sysconf(libc::_SC_PAGESIZE) },
        size => size as libc::c_long,
    };
    // A failed call (-1) reads as no answer.
    let size = usize::try_from(size).unwrap_or(0);
    if let Err(msg) = check_page_size(size) {
        crate::fatal(msg.as_bytes());
    }
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
        vdso::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC` (a vDSO read, no system call): for
/// measuring what a cold path costs.
pub fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe {
        let mut ts: libc::timespec = core::mem::zeroed();
        vdso::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

/// The calling thread's kernel id (`gettid`), as reports print it.
pub fn thread_id() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// Access to a range of pages ([`protect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// No access: any load or store faults (`PROT_NONE`).
    None,
    /// Readable and writable.
    ReadWrite,
}

impl Protection {
    /// The `PROT_*` bits of this access.
    fn bits(self) -> libc::c_int {
        match self {
            Protection::None => libc::PROT_NONE,
            Protection::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

/// Sets the access to `[ptr, ptr + len)` (`mprotect`): whole OS pages of
/// a mapping or reservation the caller owns. The contents stay. Making a
/// range of a reservation accessible charges it against the commit limit
/// as [`Os::commit`] does, and fails like it.
///
/// # Safety
/// The range lies in a mapping or reservation of the caller's; with
/// [`Protection::None`], nothing may access it any more (an access faults,
/// which is the point).
pub unsafe fn protect(ptr: NonNull<u8>, len: usize, to: Protection) -> Result<(), OsError> {
    let page = os_page_size();
    if len == 0 || len % page != 0 || ptr.as_ptr() as usize % page != 0 {
        return Err(OsError::InvalidRequest);
    }
    let prot = to.bits();
    // SAFETY: caller's contract: a page-aligned range of its own.
    if unsafe { libc::mprotect(ptr.as_ptr().cast(), len, prot) } != 0 {
        return Err(OsError::OutOfMemory);
    }
    Ok(())
}

/// Maps `len` bytes of fresh memory, reading as zeros, with access `to`
/// ([`Protection::None`]: a reservation, with no memory and no commit
/// charge until [`protect`] opens part of it). For the allocator's own
/// tables, outside any heap: nothing is counted in an [`OsCounters`].
pub fn map_anonymous(len: usize, to: Protection) -> Result<NonNull<u8>, OsError> {
    if len == 0 {
        return Err(OsError::InvalidRequest);
    }
    raw_map(len, to.bits())
}

/// Unmaps what [`map_anonymous`] returned.
///
/// # Safety
/// `[ptr, ptr + len)` is a whole mapping of [`map_anonymous`]'s that
/// nothing uses any more.
pub unsafe fn unmap_anonymous(ptr: NonNull<u8>, len: usize) {
    raw_unmap(ptr.as_ptr(), len);
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

/// Makes `[ptr, ptr + len)`, part of a reservation, readable and writable.
/// Under strict overcommit this is where the commit charge is taken.
fn raw_commit(ptr: *mut u8, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller passes a page-aligned part of its reservation.
    let rc = unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_READ | libc::PROT_WRITE) };
    if rc != 0 {
        return Err(OsError::OutOfMemory);
    }
    Ok(())
}

/// Reserves `len` bytes aligned to `align` with no access: over-reserves by
/// the alignment and trims both ends, so nothing is charged for the slack
/// even under strict overcommit.
fn aligned_reserve(len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
    let page = os_page_size();
    if len == 0 || len % page != 0 || !align.is_power_of_two() {
        return Err(OsError::InvalidRequest);
    }
    if len > isize::MAX as usize {
        return Err(OsError::OutOfMemory);
    }
    if align <= page {
        return raw_map(len, libc::PROT_NONE);
    }
    let total = len.checked_add(align - page).ok_or(OsError::OutOfMemory)?;
    let base = raw_map(total, libc::PROT_NONE)?.as_ptr() as usize;
    let start = align_up(base, align).ok_or(OsError::OutOfMemory)?;
    raw_unmap(base as *mut u8, start - base);
    raw_unmap((start + len) as *mut u8, base + total - (start + len));
    // SAFETY: start lies inside the successful mapping, so it is non-null.
    Ok(unsafe { NonNull::new_unchecked(start as *mut u8) })
}

/// After a failed `mremap(MREMAP_FIXED)` onto `[target, target + len)`, a
/// reservation this layer made for the move: before Linux 6.17 the kernel
/// unmaps the destination before it checks the rest, so the range may now
/// be a hole that another thread's `mmap` can take at any moment.
///
/// The range is taken back whole if it is still a hole
/// (`MAP_FIXED_NOREPLACE`, Linux 4.17: fails if anything is mapped there)
/// and then unmapped. If anything is mapped there, it is either the
/// reservation itself (the move failed before unmapping it) or, in part,
/// someone else's new mapping: the two cannot be told apart safely, so the
/// range is left as it is. A reservation holds no memory and no commit
/// charge, so the cost is address space only, on a path that needs a
/// failing kernel to run.
fn reclaim_failed_target(target: *mut u8, len: usize) {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the
    // result is checked.
    let p = unsafe {
        libc::mmap(
            target.cast(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return;
    }
    // Ours either way: the hole taken back, or (a kernel that ignores the
    // flag and took it as a hint) a new mapping somewhere else.
    raw_unmap(p.cast(), len);
}

unsafe impl Os for SystemOs {
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        let page = os_page_size();
        let p = if align <= page {
            if len == 0 || len % page != 0 || !align.is_power_of_two() {
                return Err(OsError::InvalidRequest);
            }
            if len > isize::MAX as usize {
                return Err(OsError::OutOfMemory);
            }
            raw_map(len, libc::PROT_READ | libc::PROT_WRITE)?
        } else {
            // Reserved first and committed exactly: the alignment slack is
            // never charged (strict overcommit, RLIMIT_AS counts it only
            // for the moment between the two calls).
            let p = aligned_reserve(len, align)?;
            if let Err(e) = raw_commit(p.as_ptr(), len) {
                raw_unmap(p.as_ptr(), len);
                return Err(e);
            }
            p
        };
        self.counters.on_map(len);
        Ok(p)
    }

    fn reserve(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        aligned_reserve(len, align)
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
        raw_commit(ptr.as_ptr(), len)?;
        self.counters.on_map(len);
        Ok(())
    }

    unsafe fn unreserve(&self, ptr: NonNull<u8>, len: usize) {
        raw_unmap(ptr.as_ptr(), len);
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize) {
        raw_unmap(ptr.as_ptr(), len);
        self.counters.on_unmap(len);
    }

    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        let page = os_page_size();
        if ptr.as_ptr() as usize % page != 0 || len % page != 0 {
            // madvise would round the length up and drop the neighbour's
            // bytes; a caller that rounds inward must not call the result
            // released either.
            return Err(OsError::InvalidRequest);
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the caller owns the mapped range; DONTNEED on private
        // anonymous memory discards the pages, which then read as zero.
        let rc = unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(OsError::Unsupported);
        }
        self.counters.on_release(len);
        Ok(())
    }

    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize {
        // SAFETY: forwarded contract.
        unsafe { zero::zero(self, ptr.as_ptr(), len) }
    }

    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        if len == 0 {
            return Ok(());
        }
        self.counters.on_populate();
        let page = os_page_size();
        let first = ptr.as_ptr() as usize;
        let end = first.checked_add(len).ok_or(OsError::InvalidRequest)?;
        if POPULATE_WRITE.load(Ordering::Relaxed) != ABSENT {
            let start = align_down(first, page);
            let stop = align_up(end, page).ok_or(OsError::InvalidRequest)?;
            // Faulting in whole pages changes no byte, so the advice may
            // cover the neighbours' ends of the first and last pages.
            // SAFETY: the caller owns the mapped, writable range.
            let rc = unsafe { libc::madvise(start as *mut _, stop - start, MADV_POPULATE_WRITE) };
            if rc == 0 {
                return Ok(());
            }
            if errno() != libc::EINVAL {
                // ENOMEM, EFAULT, EHWPOISON: the memory is not there.
                return Err(OsError::OutOfMemory);
            }
            // Kernels before 5.14 do not know the advice: touch from now on.
            POPULATE_WRITE.store(ABSENT, Ordering::Relaxed);
        }
        // SAFETY: forwarded contract.
        unsafe { touch_pages(first, end, page) };
        Ok(())
    }

    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
        prepare: &mut dyn FnMut(NonNull<u8>, usize) -> bool,
    ) -> Result<NonNull<u8>, OsError> {
        let page = os_page_size();
        if new_len == 0 || new_len % page != 0 || old_len % page != 0 || !align.is_power_of_two() {
            return Err(OsError::InvalidRequest);
        }
        let old = ptr.as_ptr().cast::<libc::c_void>();
        // SAFETY (both mremap calls): the caller passes a whole mapping of
        // ours that is one kernel mapping; the kernel moves page tables,
        // never the data, and leaves the mapping as it was on failure.
        // In place first (if the mapping is aligned as asked): shrinking
        // always works, growing when the address space after it is free.
        if ptr.as_ptr() as usize % align == 0
            && prepare(ptr, new_len)
            && unsafe { libc::mremap(old, old_len, new_len, 0) } != libc::MAP_FAILED
        {
            self.counters.on_remap(old_len, new_len);
            return Ok(ptr);
        }
        // Elsewhere: onto a reservation of ours, so that the place is
        // aligned (mremap alone promises only page alignment) and known
        // before the move. Nothing is charged for it until the move.
        let target = aligned_reserve(new_len, align.max(page))?;
        if !prepare(target, new_len) {
            raw_unmap(target.as_ptr(), new_len);
            return Err(OsError::OutOfMemory);
        }
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
            reclaim_failed_target(target.as_ptr(), new_len);
            return Err(OsError::OutOfMemory);
        }
        self.counters.on_remap(old_len, new_len);
        Ok(target)
    }

    unsafe fn hint_huge_pages(&self, ptr: NonNull<u8>, len: usize, huge: bool) {
        let advice = if huge {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: advisory only, on a range the caller owns.
        unsafe { libc::madvise(ptr.as_ptr().cast(), len, advice) };
    }

    fn counters(&self) -> &OsCounters {
        &self.counters
    }

    fn memory_limit(&self) -> Option<usize> {
        crate::cgroup_memory_limit()
    }
}

/// The calling thread's `errno`.
fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// `MADV_POPULATE_WRITE` (Linux 5.14); spelled out because older libc crates
/// lack it.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// `MAP_FIXED_NOREPLACE` (Linux 4.17), the same value on every architecture.
const MAP_FIXED_NOREPLACE: libc::c_int = 0x10_0000;

/// Whether the kernel knows `MADV_POPULATE_WRITE`: not yet known, or absent.
static POPULATE_WRITE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;

/// Makes every page of `[first, end)` resident and writable by writing to
/// it, for kernels without `MADV_POPULATE_WRITE`. Only bytes inside the
/// range are touched (the first page at `first`, the others at their
/// start), never a neighbour's, and each with an atomic compare-exchange of
/// the byte with itself: the write fault happens, and a store another
/// thread makes to the same byte meanwhile is never lost, as it could be
/// with a plain read and write back.
///
/// # Safety
/// `[first, end)` is mapped and writable and owned by the caller.
unsafe fn touch_pages(first: usize, end: usize, page: usize) {
    let mut at = first;
    while at < end {
        // SAFETY: `at` lies in the caller's writable range; an atomic view
        // of one byte of it is sound whatever else accesses it atomically.
        let byte = unsafe { AtomicU8::from_ptr(at as *mut u8) };
        let mut v = byte.load(Ordering::Relaxed);
        while let Err(now) = byte.compare_exchange(v, v, Ordering::Relaxed, Ordering::Relaxed) {
            v = now;
        }
        at = align_down(at, page) + page;
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests;
