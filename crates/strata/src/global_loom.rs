//! The facade under `--cfg loom`: **under `--cfg loom` the facade is not the
//! allocator; only the layer models run.**
//!
//! The real facade (`global.rs`) is one process-wide `static` stack of
//! layers, and under loom the layers hold loom's atomics, which are not
//! `const` and exist only inside one model run. So this stand-in, with the
//! same functions, gives every block a mapping of its own from the OS
//! (strata-os's `SystemOs`, whose atomics are plain statistics): test
//! binaries that install `strata::Strata` as their global allocator, and
//! the crates built on the public API (`strata-malloc`, the benches, the
//! stress suite), still compile and run under `--cfg loom`. Not the C
//! allocator, as `std::alloc::System` would be: `strata-malloc` exports
//! `malloc` and `free`, so a test binary of it would call itself. Slow, and
//! statistics are zero; release, decay and background release do nothing.
//! The loom models themselves are in the layer crates
//! (docs/concurrency.md).

use core::ptr::{self, NonNull};

use strata_central::class_size_of;
use strata_os::{align_up, os_page_size, Os, SystemOs};
use strata_pageheap::{BadPointer, PAGE_SIZE};

use crate::config::Config;
use crate::stats::Stats;
use crate::sync::statics::{AtomicU8, Ordering};

static INIT: AtomicU8 = AtomicU8::new(0);

/// Reads the configuration once, so that [`crate::config`] reports it.
pub(crate) fn ensure_init() {
    if INIT.swap(1, Ordering::AcqRel) == 0 {
        crate::config::state::set(Config::from_env());
    }
}

/// The size class a block of `size` bytes aligned to `align` would get (so
/// that `usable_size(layout)` stays what it is in the real build).
#[inline]
pub(crate) fn class_of(size: usize, align: usize) -> u8 {
    strata_central::class_index(size, align)
}

static OS: SystemOs = SystemOs::new();

/// A block of `size` bytes aligned to `align`, in a mapping of its own that
/// starts one alignment unit (at least a page) before it: room for the
/// header, the mapping's start and length in the two words just before the
/// block. Reads as zero.
fn map_block(size: usize, align: usize) -> *mut u8 {
    let unit = align.max(os_page_size());
    let Some(len) = size
        .checked_add(unit)
        .and_then(|n| align_up(n, os_page_size()))
    else {
        return ptr::null_mut();
    };
    let Ok(map) = OS.map(len, unit) else {
        return ptr::null_mut();
    };
    // SAFETY: the mapping is `len >= unit + size` bytes long, and the
    // header lies in its first unit, which the block does not use.
    unsafe {
        let block = map.as_ptr().add(unit);
        block.cast::<usize>().sub(2).write(map.as_ptr() as usize);
        block.cast::<usize>().sub(1).write(len);
        block
    }
}

/// The mapping holding a block from [`map_block`]: (start, length).
///
/// # Safety
/// `p` came from [`map_block`] and is not unmapped.
unsafe fn mapping_of(p: *const u8) -> (usize, usize) {
    // SAFETY: the caller's contract: the header precedes the block.
    unsafe {
        (
            p.cast::<usize>().sub(2).read(),
            p.cast::<usize>().sub(1).read(),
        )
    }
}

/// Unmaps a block from [`map_block`].
///
/// # Safety
/// `p` came from [`map_block`] and is no longer used.
unsafe fn unmap_block(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe {
        let (map, len) = mapping_of(p);
        OS.unmap(NonNull::new_unchecked(map as *mut u8), len);
    }
}

/// A block of the class's size, aligned as the class's objects are (the
/// largest power of two dividing the size, up to a page).
pub(crate) fn alloc_small(class: u8) -> *mut u8 {
    let size = class_size_of(class);
    map_block(size, (size & size.wrapping_neg()).min(PAGE_SIZE))
}

/// # Safety
/// `p` came from [`alloc_small`] or [`alloc_large`] and is no longer used.
pub(crate) unsafe fn free_small(p: *mut u8, _class: u8) {
    // SAFETY: forwarded contract.
    unsafe { unmap_block(p) }
}

/// # Safety
/// As [`free_small`].
pub(crate) unsafe fn free_small_known(p: *mut u8, class: u8) {
    // SAFETY: forwarded contract.
    unsafe { free_small(p, class) }
}

/// A block of `size` bytes aligned to `align`; it reads as zero whatever
/// `zero` says.
pub(crate) fn alloc_large(size: usize, align: usize, _zero: bool) -> *mut u8 {
    map_block(size, align)
}

/// # Safety
/// `p` came from [`alloc_small`] or [`alloc_large`] and is no longer used.
pub(crate) unsafe fn free_large(p: *mut u8) {
    // SAFETY: forwarded contract.
    unsafe { unmap_block(p) }
}

/// No block is in a size-class span: the unsized paths free every block as
/// a large one and size it from its mapping.
#[inline]
pub(crate) fn size_class_of(_addr: usize) -> u8 {
    0
}

/// No block is in a size-class span.
pub(crate) fn small_object_at(_addr: usize) -> (u8, bool) {
    (0, false)
}

pub(crate) fn large_size(addr: usize) -> Result<usize, BadPointer> {
    // SAFETY: the caller passes a live block, which came from `map_block`.
    let (map, len) = unsafe { mapping_of(addr as *const u8) };
    Ok(map + len - addr)
}

/// Never in place: the callers move the block.
///
/// # Safety
/// None needed; nothing is touched.
pub(crate) unsafe fn resize_large(
    _addr: usize,
    _new_size: usize,
    _align: usize,
) -> Option<NonNull<u8>> {
    None
}

pub(crate) fn release_free_memory() -> usize {
    0
}

pub(crate) fn set_decay_ms(ms: u64) {
    ensure_init();
    crate::config::state::set_decay_ms(ms);
}

/// No heap growth in the model: only the setting is kept.
pub(crate) fn set_huge_pages_after(bytes: usize) {
    ensure_init();
    crate::config::state::set_huge_pages_after(bytes);
}

/// No background thread: there is nothing for it to do.
pub(crate) fn start_background_release() -> bool {
    ensure_init();
    crate::config::state::set_background(false);
    false
}

pub(crate) fn stats() -> Stats {
    Stats {
        decay_ms: crate::config::state::get().decay_ms,
        ..Stats::default()
    }
}

/// Statistics are zero here.
pub(crate) fn class_stats(_class: u8) -> strata_central::ClassStats {
    strata_central::ClassStats::default()
}

pub(crate) fn populate(ptr: NonNull<u8>, len: usize) -> bool {
    // SAFETY: the caller of the public API promises the range is an
    // allocation of theirs, which is a mapping of `OS`'s.
    unsafe { OS.populate(ptr, len) }.is_ok()
}
