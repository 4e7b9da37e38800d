//! # strata-os: the operating-system layer of the strata allocator
//!
//! Everything strata knows about the kernel's virtual memory lives here, behind
//! one trait, [`Os`]. The layers above ask it for address space, give pages
//! back, make ranges zero or resident, and nothing else.
//!
//! ## What the kernel guarantees, and what this layer promises in turn
//! - Memory from [`Os::map`] is private, anonymous, and reads as zero. Until a
//!   page is touched it costs nothing but address space: the kernel maps reads
//!   to its one shared zero page.
//! - [`Os::release`] (`MADV_DONTNEED`) frees the physical pages; the range stays
//!   mapped and **reads as zero afterwards**. (`MADV_FREE` would be cheaper but
//!   carries no zero guarantee, so it is not used for release.)
//! - [`Os::zero`] makes a range read as zero at the cost of the pages that are
//!   actually resident: a page that is not resident in a private anonymous
//!   mapping (and not in swap) already reads as zero, so only resident pages
//!   are cleared. Its cost follows what the program touched, not the length.
//! - [`Os::populate`] makes a range resident now (`MADV_POPULATE_WRITE`, or one
//!   write per page on kernels without it), so that later writes do not fault.
//!
//! ## Contract
//! - Lengths and addresses passed in are multiples of [`Os::page_size`] unless a
//!   method says otherwise.
//! - Nothing here allocates through the global allocator, panics, or formats;
//!   every failure is an [`OsError`] that the caller turns into a null pointer.
//! - Implementations count their system calls in [`OsCounters`].
//!
//! Besides the trait, the few things every layer needs from the kernel:
//! sleeping on a word ([`futex`]), writing a message to stderr without
//! allocating ([`write_stderr`], [`fatal`]), a per-process random value
//! ([`process_secret`]), the page size and a coarse clock; and for the
//! diagnostics built on top: page protection ([`protect`]), stack traces
//! captured and printed without allocating ([`stack`]) and a memory-fault
//! handler that shows faults to a reporter first ([`fault`]).
//!
//! A `FakeOs` (feature `fake`) backs the layers above in their own tests,
//! with a page size of its choosing.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "strata runs on Linux only: it relies on mremap, MADV_DONTNEED's zero \
     guarantee, mincore and futexes. Use the system allocator elsewhere."
);

#[cfg(any(test, feature = "fake"))]
extern crate std;

mod counters;
#[cfg(any(test, feature = "fake"))]
mod fake;
// Elsewhere only the message above: the Linux calls below would add a
// page of unrelated errors to it.
#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(target_os = "linux")]
pub mod fault;
#[cfg(target_os = "linux")]
pub mod futex;
mod report;
#[cfg(target_os = "linux")]
mod secret;
#[cfg(target_os = "linux")]
pub mod stack;
#[cfg(target_os = "linux")]
mod system;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod unwind;

#[cfg(target_os = "linux")]
pub use cgroup::cgroup_memory_limit;
pub use counters::{OsCounters, OsStats};
#[cfg(any(test, feature = "fake"))]
pub use fake::FakeOs;
pub use report::{fatal, fatal_parts, write_stderr, Dec, Hex};
#[cfg(target_os = "linux")]
pub use secret::process_secret;
#[cfg(target_os = "linux")]
pub use system::{
    address_space_limit, check_page_size, map_anonymous, monotonic_ms, monotonic_ns, os_page_size,
    protect, thread_id, unmap_anonymous, Protection, SystemOs, MAX_OS_PAGE,
};

use core::ptr::NonNull;

/// Why an OS request failed. The allocator maps every one of these to a null
/// pointer (and `ENOMEM` in the C ABI); the variant is for statistics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsError {
    /// The kernel refused to map memory (out of memory or address space).
    OutOfMemory,
    /// The request could not be expressed (length overflow, bad alignment).
    InvalidRequest,
    /// The kernel does not support the operation (old kernel, other OS).
    Unsupported,
}

/// What the page heap needs from the operating system.
///
/// # Safety
/// Implementors promise that memory returned by [`Os::map`] is readable,
/// writable, zero-filled, aligned as asked, and stays valid until passed to
/// [`Os::unmap`]; and that after [`Os::release`] or [`Os::zero`] the range
/// reads as zero.
pub unsafe trait Os: Sync {
    /// Maps `len` bytes aligned to `align`, reading as zero.
    ///
    /// `len` is a non-zero multiple of [`Os::page_size`]; `align` is a power of
    /// two (any value up to the address-space size; values at or below the OS
    /// page size cost nothing extra).
    fn map(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError>;

    /// Reserves `len` bytes of address space aligned to `align`: no access,
    /// no memory and no commit charge until parts are [`Os::commit`]ted. The
    /// page heap grows inside one reservation so that "is this address
    /// strata's" is one range check. Implementations without it keep the
    /// default, and the heap grows with [`Os::map`] alone.
    fn reserve(&self, len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        let _ = (len, align);
        Err(OsError::Unsupported)
    }

    /// Makes `[ptr, ptr + len)`, a page-aligned part of a range from
    /// [`Os::reserve`] not committed before, readable and writable; it reads
    /// as zero. On failure the range stays reserved and inaccessible.
    ///
    /// # Safety
    /// The range lies inside a reservation of this `Os` and was not committed.
    unsafe fn commit(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
        let _ = (ptr, len);
        Err(OsError::Unsupported)
    }

    /// Gives back a reservation from [`Os::reserve`] of which nothing was
    /// committed.
    ///
    /// # Safety
    /// `[ptr, ptr + len)` is a whole reservation of this `Os`, unused.
    unsafe fn unreserve(&self, ptr: NonNull<u8>, len: usize) {
        let _ = (ptr, len);
    }

    /// Unmaps a range returned by [`Os::map`] (or a page-aligned part of one).
    ///
    /// # Safety
    /// The range must be mapped by this `Os` and no longer used.
    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize);

    /// Gives the physical pages of a range back to the kernel. The range stays
    /// mapped and reads as zero afterwards.
    ///
    /// `ptr` and `len` must be multiples of [`Os::page_size`]: a range that
    /// is not is refused ([`OsError::InvalidRequest`]) with nothing
    /// released, so a caller never mistakes a partial release for a whole
    /// one.
    ///
    /// # Safety
    /// The range must be mapped by this `Os`, and its contents are lost.
    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError>;

    /// Makes a range read as zero, paying only for the pages that are resident.
    /// Any range will do; the parts of OS pages at its ends, if it is not
    /// aligned to [`Os::page_size`], are cleared with stores. Returns the
    /// number of bytes of whole OS pages it had to write (for statistics,
    /// and 0 tells that the range was unused).
    ///
    /// # Safety
    /// The range must be mapped by this `Os`; its contents are lost.
    unsafe fn zero(&self, ptr: NonNull<u8>, len: usize) -> usize;

    /// Makes a range resident and writable now, so that writing it later does
    /// not fault. The contents are unchanged.
    ///
    /// # Safety
    /// The range must be mapped by this `Os` and writable.
    unsafe fn populate(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError>;

    /// Resizes a mapping made by [`Os::map`] to `new_len` bytes, keeping it
    /// aligned to `align`: in place when the address space allows, otherwise
    /// by moving the pages (`mremap`), never by copying them through the CPU.
    /// Pages past the old length read as zero. On failure the mapping is
    /// unchanged.
    ///
    /// `prepare(p, new_len)` is called with the place the mapping is about
    /// to have, before anything moves (possibly more than once, for
    /// different places): the caller readies its own records there (the
    /// pagemap's nodes), so that nothing can fail once the pages have moved.
    /// Returning false gives up the resize.
    ///
    /// # Safety
    /// `[ptr, ptr + old_len)` must be a whole mapping made by this `Os` (or
    /// returned by a previous `remap`) and never split since (no hint,
    /// protection change or partial unmap inside it), already aligned to
    /// `align` (a mapping resized in place stays where it is); on success it
    /// must no longer be used at its old address if it moved.
    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
        prepare: &mut dyn FnMut(NonNull<u8>, usize) -> bool,
    ) -> Result<NonNull<u8>, OsError>;

    /// A monotonic clock in milliseconds (coarse: a few ms of resolution is
    /// enough for decay).
    fn now_ms(&self) -> u64 {
        monotonic_ms()
    }

    /// Hints that a range should (or should not) be backed by huge pages.
    ///
    /// # Safety
    /// The range must be mapped by this `Os`.
    unsafe fn hint_huge_pages(&self, ptr: NonNull<u8>, len: usize, huge: bool) {
        let _ = (ptr, len, huge);
    }

    /// The counters of system calls made so far.
    fn counters(&self) -> &OsCounters;

    /// The memory the process may use, as its environment limits it (the
    /// cgroup's `memory.max` / `memory.high`), if any. Asked now and then,
    /// never on a fast path.
    fn memory_limit(&self) -> Option<usize> {
        None
    }

    /// The OS page size: the unit of [`Os::map`], [`Os::release`] and
    /// [`Os::remap`] (4, 16 or 64 KiB; at most [`MAX_OS_PAGE`]).
    fn page_size(&self) -> usize {
        os_page_size()
    }
}

/// Rounds `n` up to a multiple of `align` (a power of two), or `None` on overflow.
#[inline]
pub const fn align_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Rounds `n` down to a multiple of `align` (a power of two).
#[inline]
pub const fn align_down(n: usize, align: usize) -> usize {
    n & !(align - 1)
}
