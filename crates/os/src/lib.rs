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
//! - Lengths and addresses passed in are multiples of [`os_page_size`] unless a
//!   method says otherwise.
//! - Nothing here allocates through the global allocator, panics, or formats;
//!   every failure is an [`OsError`] that the caller turns into a null pointer.
//! - Implementations count their system calls in [`OsCounters`].
//!
//! A [`FakeOs`] (feature `fake`) backs the layers above in their own tests.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "fake"))]
extern crate std;

mod counters;
#[cfg(any(test, feature = "fake"))]
mod fake;
pub mod link;
mod list;
mod lock;
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model;
#[cfg(all(test, loom))]
mod loom_tests;
mod meta;
mod report;
#[cfg(feature = "checked")]
pub mod secret;
#[cfg(any(test, feature = "fake"))]
pub mod smaps;
mod sync;
mod system;

pub use counters::{OsCounters, OsStats};
#[cfg(any(test, feature = "fake"))]
pub use fake::FakeOs;
pub use list::{Iter as ListIter, Linked, List};
pub use lock::{Lock, LockGuard};
pub use meta::{ForkLock, MetaPool};
pub use report::{fatal, write_stderr, Dec, Hex};
pub use system::{address_space_limit, monotonic_ms, os_page_size, SystemOs};

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
    /// `len` is a non-zero multiple of [`os_page_size`]; `align` is a power of
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

    /// Unmaps a range returned by [`Os::map`] (or a page-aligned part of one).
    ///
    /// # Safety
    /// The range must be mapped by this `Os` and no longer used.
    unsafe fn unmap(&self, ptr: NonNull<u8>, len: usize);

    /// Gives the physical pages of a range back to the kernel. The range stays
    /// mapped and reads as zero afterwards.
    ///
    /// # Safety
    /// The range must be mapped by this `Os`, and its contents are lost.
    unsafe fn release(&self, ptr: NonNull<u8>, len: usize) -> Result<(), OsError>;

    /// Makes a range read as zero, paying only for the pages that are resident.
    /// Returns the number of bytes it had to write (for statistics).
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
    /// Pages past the old length read as zero.
    ///
    /// # Safety
    /// `[ptr, ptr + old_len)` must be a whole mapping made by this `Os`,
    /// already aligned to `align` (a mapping resized in place stays where it
    /// is); on success it must no longer be used at its old address if it
    /// moved.
    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        align: usize,
    ) -> Result<NonNull<u8>, OsError>;

    /// Moves the pages of `[from, from + len)` to `[to, to + len)` without
    /// copying them through the CPU (Linux: `mremap` with
    /// `MREMAP_DONTUNMAP`): `to` then holds what `from` held, and `from`
    /// stays mapped, reads as zero and holds no memory. Implementations
    /// without it keep the default, and callers copy.
    ///
    /// # Safety
    /// Both ranges are page-aligned, disjoint, inside mappings of this `Os`
    /// (each inside one mapping), and owned by the caller: the contents of
    /// `to` are lost.
    unsafe fn move_pages(
        &self,
        from: NonNull<u8>,
        to: NonNull<u8>,
        len: usize,
    ) -> Result<(), OsError> {
        let _ = (from, to, len);
        Err(OsError::Unsupported)
    }

    /// Whether [`Os::move_pages`] is implemented (it may still fail, on an
    /// old kernel): callers check before preparing a move.
    fn moves_pages(&self) -> bool {
        false
    }

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
