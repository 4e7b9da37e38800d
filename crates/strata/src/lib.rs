//! # strata: a memory allocator whose `calloc` costs what the program touches
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: strata::Strata = strata::Strata;
//!
//! let v: Vec<u64> = (0..1000).collect();
//! assert_eq!(v.iter().sum::<u64>(), 999 * 1000 / 2);
//! ```
//!
//! strata is built like tcmalloc: per-thread caches ([`strata_threadcache`])
//! over central per-size-class free lists ([`strata_central`]) over a page
//! heap of spans ([`strata_pageheap`]) over the OS ([`strata_os`]). Requests
//! up to 256 KiB are served from size classes, with no lock and no atomic
//! read-modify-write on the common path; larger ones get spans of their own.
//! The page heap knows which free pages still read as zero, so
//! `alloc_zeroed` only clears memory that may be dirty, and only its resident
//! pages.
//!
//! # Guarantees
//! - Every alignment a `Layout` can express; impossible requests (sizes near
//!   `isize::MAX`, out of memory) return null.
//! - Nothing in the allocator allocates through the global allocator,
//!   panics, or formats on an allocation path.
//! - A free of a pointer strata cannot take back (never allocated, interior,
//!   double free of a large block) stops the program with a message on
//!   stderr instead of corrupting the heap.
//! - After `fork`, the child can allocate.
//!
//! # Introspection and control
//! [`stats`] and [`write_stats_json`] (JSON, written without allocating)
//! say where memory is; [`Stats::mallinfo`] and [`write_malloc_info`] give
//! glibc's views of the same figures. Every `STRATA_*` setting can be read
//! and changed by name at run time ([`set_option`], [`get_option`]), with
//! the parser the environment goes through at start-up.
//!
//! # C
//! [`c_api`] holds the C allocation functions (`malloc`, `free`, ...,
//! `mallinfo2`, `malloc_info`, `strata_stats_json`...) as plain Rust
//! functions; nothing is exported unless asked for. `strata-malloc`
//! exports them as `libstrata_malloc.so` / `.a` with [`export_c_abi!`];
//! the `override` feature has a Rust executable export them itself, so
//! that its C dependencies allocate from strata too. The [`c_api`] module
//! docs explain why the export is a macro rather than a feature that
//! `strata-malloc` turns on.

#![warn(missing_docs)]

mod background;
pub mod bad_free;
pub mod c_api;
#[cfg(feature = "checked")]
mod checked;
mod config;
#[cfg(not(feature = "checked"))]
mod freed_mark;
mod global;
pub mod guarded;
mod layers;
mod mallinfo;
mod options;
pub mod profile;
pub mod raw;
mod report;
mod request;
mod stats;
mod sync;
mod text;
mod tls;
mod validate;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use strata_central::class_size_of;

pub use bad_free::{set_bad_free_hook, BadFree, BadFreeKind};
pub use config::Config;
pub use mallinfo::{write_malloc_info, MallInfo};
pub use options::{OptionError, OptionText, OptionValue};
pub use report::MAX_LISTED_CACHES;
pub use stats::Stats;
pub use strata_central::ClassStats;
pub use text::SliceWriter;

use global::{alloc_large, alloc_small, class_of, free_large, free_small};

/// With the `override` feature, this crate's binary exports the C
/// allocation functions (`malloc`, `free`, ...: [`c_api`]), so that the C
/// code linked into a Rust program allocates from strata too.
#[cfg(feature = "override")]
mod exports {
    crate::export_c_abi!();
}

/// The strata allocator. Use it as the global allocator:
///
/// ```
/// #[global_allocator]
/// static GLOBAL: strata::Strata = strata::Strata;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Strata;

unsafe impl GlobalAlloc for Strata {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // An alignment above 8 goes its own way, which tells the samplers
        // (`request`): here the request's word is the size alone, with no
        // instruction to make it (a select of the two measured 6 more per
        // pair on a layout not known at compile time). Up to 8, every
        // class meets the alignment: the class of `size` is the one.
        if layout.align() > 8 {
            return global::alloc_aligned(layout.size(), layout.align());
        }
        let class = class_of(layout.size(), 8);
        if class != 0 {
            alloc_small(class, layout.size())
        } else {
            alloc_large(layout.size(), layout.align(), false)
        }
    }

    #[inline]
    // The checked build returns early: the rest is the default build's.
    #[cfg_attr(feature = "checked", allow(unreachable_code))]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as below; the checked build also holds the layout's size
        // against the size the block was asked for.
        #[cfg(feature = "checked")]
        return unsafe { checked::dealloc(ptr, layout.size(), layout.align()) };
        // Sized free: the layout names the class, no lookup needed.
        let class = class_of(layout.size(), layout.align());
        if class != 0 {
            // SAFETY: the caller frees a block allocated with this layout.
            unsafe { free_small(ptr, class) }
        } else {
            // SAFETY: as above; bad pointers are detected and reported.
            unsafe { free_large(ptr) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout.size(), layout.align()) {
            0 => alloc_large(layout.size(), layout.align(), true),
            class => {
                let p = alloc_small(class, request::new(layout.size(), layout.align()));
                if !p.is_null() {
                    // Small objects are recycled through free lists, so they
                    // are cleared; only the requested bytes need it.
                    // SAFETY: a fresh block of at least layout.size() bytes.
                    unsafe { ptr::write_bytes(p, 0, layout.size()) };
                }
                p
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // In place when the class or the span allows. A block grown a little
        // at a time asks at every step and nearly always stays, so the body
        // here makes tail calls only (and saves no registers); the rest is
        // out of line. The checked build always moves a block (see
        // `checked`).
        #[cfg(not(feature = "checked"))]
        if layout.size() > strata_central::MAX_SMALL && new_size > strata_central::MAX_SMALL {
            // SAFETY: forwarded contract; both sizes are large.
            return unsafe { self.realloc_large(ptr, layout, new_size) };
        } else if layout.align() <= 8 && new_size <= strata_central::MAX_SMALL {
            let class = strata_central::small_class(layout.size());
            // (A guarded block has no room past its size: it moves.)
            if class != 0 && class == strata_central::small_class(new_size) && !guarded::owns(ptr) {
                return ptr;
            }
        }
        // SAFETY: forwarded contract.
        unsafe { self.resize_or_move(ptr, layout, new_size) }
    }
}

impl Strata {
    /// [`GlobalAlloc::realloc`] from a large size to a large size (no class
    /// whatever the alignment): one pagemap lookup says whether the block's
    /// pages hold the new size, as for C's `realloc`; otherwise the page
    /// heap resizes it or it moves.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`], with both sizes past the largest class.
    #[cfg(not(feature = "checked"))]
    #[inline(never)]
    unsafe fn realloc_large(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: ptr is a live large block of the caller's.
        if unsafe { global::large_keeps_pages(ptr as usize, new_size) } {
            return ptr;
        }
        // SAFETY: forwarded contract.
        unsafe { self.resize_or_move(ptr, layout, new_size) }
    }

    /// The rest of [`GlobalAlloc::realloc`]: a block whose class still
    /// serves (requests aligned past 8 bytes are looked at here), a large
    /// block the page heap resizes (in place, or by moving its pages),
    /// otherwise a new block, the copy and the free.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    #[inline(never)]
    unsafe fn resize_or_move(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        #[cfg(not(feature = "checked"))]
        match (class_of(layout.size(), align), class_of(new_size, align)) {
            // (A guarded block has no room past its size: it moves.)
            (a, b) if a == b && a != 0 && !guarded::owns(ptr) => return ptr,
            (0, 0) => {
                // SAFETY: ptr is a live large block of the caller's.
                if let Some(p) = unsafe { global::resize_large(ptr as usize, new_size, align) } {
                    return p.as_ptr();
                }
            }
            _ => {}
        }
        // SAFETY: the caller guarantees new_size rounded up to align does not
        // overflow isize, which is what Layout requires.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: a valid non-zero layout (GlobalAlloc::realloc's contract).
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct; the copy is within
            // both sizes.
            unsafe {
                ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        q
    }
}

/// Reads every layer's accounting.
pub fn stats() -> Stats {
    global::stats()
}

/// The object size and accounting of size class `class` (1 up to the number
/// of classes), or `None` past the last class: where a class's free objects
/// sit (partly used spans, transfer cache).
pub fn class_stats(class: u8) -> Option<(usize, ClassStats)> {
    if class == 0 || class as usize >= strata_central::NUM_CLASSES {
        return None;
    }
    Some((class_size_of(class), global::class_stats(class)))
}

/// Returns every free page strata holds to the OS now: flushes the calling
/// thread's cache, moves the objects parked in transfer caches back to their
/// spans (so empty spans return to the page heap), then releases every free
/// page. Returns the bytes released.
pub fn release_free_memory() -> usize {
    global::release_free_memory()
}

/// Makes `[ptr, ptr + len)` resident now, so that writing it later does not
/// page-fault (and cannot fail for lack of memory later). Returns false if the
/// kernel refused.
///
/// # Safety
/// The range must lie inside one live allocation of the caller's.
pub unsafe fn populate(ptr: NonNull<u8>, len: usize) -> bool {
    global::populate(ptr, len)
}

/// The usable size of a block allocated with `layout`: the size class (or
/// page-rounded span) it actually received.
pub fn usable_size(layout: Layout) -> usize {
    // The bytes past the size asked for hold the checked build's marks.
    #[cfg(feature = "checked")]
    return layout.size();
    #[cfg(not(feature = "checked"))]
    match class_of(layout.size(), layout.align()) {
        0 => layout.size().next_multiple_of(strata_pageheap::PAGE_SIZE),
        class => class_size_of(class),
    }
}

/// Sets how long freed memory stays resident before it goes back to the OS
/// (`STRATA_DECAY_MS`). Memory freed and reused within the delay never
/// page-faults again; memory idle for longer is released. `0` releases at
/// once (at the next allocator call); `u64::MAX` never releases on its own.
pub fn set_decay_ms(ms: u64) {
    global::set_decay_ms(ms);
}

/// Sets how much the heap grows before all its new memory is hinted for
/// transparent huge pages (`STRATA_HUGE_PAGES_AFTER`): `0` from the start,
/// `usize::MAX` never (the default). Huge pages cut page faults and TLB
/// misses for a big heap, but each is resident whole from its first touch,
/// and on a VM whose host reclaims free guest memory that first touch costs
/// more than 4 KiB faults for the same bytes (docs/memory.md). Growth for a
/// plain request of 4 MiB or more, while the heap is under 64 MiB, is
/// hinted whatever this says. Applies to
/// growth from now on.
pub fn set_huge_pages_after(bytes: usize) {
    global::set_huge_pages_after(bytes);
}

/// Sets a soft limit on the memory strata holds (`STRATA_MEMORY_LIMIT`;
/// `None`: only the cgroup's). Near it (seven eighths), and near the
/// cgroup's `memory.max` or `memory.high`, which strata reads on its own,
/// strata gives free memory back to the OS and has the thread and transfer
/// caches give back what they hold, before the heap grows: a program in a
/// container returns what it does not use before the OOM killer acts. A
/// request that does not fit is still served if the kernel allows it.
pub fn set_memory_limit(bytes: Option<usize>) {
    global::set_memory_limit(bytes);
}

/// The memory limit in force: the one set, or the cgroup's, whichever is
/// lower (the cgroup's as last read, every few seconds of activity).
pub fn memory_limit() -> Option<usize> {
    global::memory_limit()
}

/// Sets the most free memory strata keeps resident for reuse
/// (`STRATA_DIRTY_MAX`, 16 MiB by default), unless a quarter of the memory
/// in use, or the large blocks in use, hold more: a free that takes the
/// heap past it gives the excess back at once, so a program that frees a burst and then goes idle does not keep
/// it until its next call. Memory given back that way and then taken again
/// raises it, by at most twice the setting, until decay passes find
/// nothing taken back. `usize::MAX` leaves it all to decay.
pub fn set_dirty_max(bytes: usize) {
    global::set_dirty_max(bytes);
}

/// Starts a background thread that runs decay, and gives back what the
/// transfer caches held unused, even while the program does not allocate
/// (`STRATA_BACKGROUND_RELEASE=1`). Returns whether it runs.
pub fn start_background_release() -> bool {
    global::start_background_release()
}

/// Stops the background release thread, if it runs: it ends at its next
/// wake-up (within a second).
pub fn stop_background_release() {
    global::stop_background_release();
}

/// Sets the largest byte budget of one thread's cache
/// (`STRATA_THREAD_CACHE_BYTES`; at least 64 KiB is used). Caches refit
/// to it at their next periodic check.
pub fn set_thread_cache_bytes(bytes: usize) {
    global::set_thread_cache_bytes(bytes);
}

/// Sets the bytes all threads' caches may hold together
/// (`STRATA_THREAD_CACHES_TOTAL`; at least 64 KiB is used). Caches refit
/// to their new share at their next periodic check.
pub fn set_thread_caches_total(bytes: usize) {
    global::set_thread_caches_total(bytes);
}

/// Sets whether statistics are printed to stderr at exit
/// (`STRATA_SHOW_STATS`).
pub fn set_show_stats(on: bool) {
    global::set_show_stats(on);
}

/// Sets a setting by name, with the same names and value syntax as the
/// `STRATA_*` environment variables: `name` is the variable
/// (`STRATA_DECAY_MS`) or its short name (`decay_ms`); `value` is parsed
/// as the variable's would be (`64k`, `2g`, `4096`, `never`...).
///
/// ```
/// strata::set_option("decay_ms", "250").unwrap();
/// assert_eq!(strata::config().decay_ms, 250);
/// assert!(strata::set_option("STRATA_DIRTY_MAX", "8m").is_ok());
/// assert_eq!(strata::set_option("decay_ms", "soon"),
///            Err(strata::OptionError::Malformed { expected: "milliseconds (a number) or `never`" }));
/// assert_eq!(strata::set_option("no_such", "1"), Err(strata::OptionError::Unknown));
/// # strata::set_option("decay_ms", "1000").unwrap();
/// ```
///
/// Every setting takes effect at once except `STRATA_VERBOSE`, which only
/// matters at start-up ([`OptionError::StartupOnly`]). The heap profiler's
/// are settings too: `STRATA_PROFILE` (a path prefix: profiling on, a dump
/// at exit; `off`), `STRATA_PROFILE_INTERVAL`, `STRATA_PROFILE_SIGNAL`
/// (strata's handler moves to the new signal; `off`) and
/// `STRATA_STACK_WALKER` (`docs/profiling.md`).
pub fn set_option(name: &str, value: &str) -> Result<(), OptionError> {
    options::set(name.as_bytes(), value.as_bytes())
}

/// The value of a setting, named as for [`set_option`]; its `Display` text
/// is what [`set_option`] accepts (`"1000"`, `"never"`, `"0"`/`"1"` for
/// flags).
pub fn get_option(name: &str) -> Result<OptionValue, OptionError> {
    options::get(name.as_bytes())
}

/// The names of every setting (their environment variables).
pub fn option_names() -> impl Iterator<Item = &'static str> {
    options::OPTIONS.iter().map(|o| o.var)
}

/// Writes every statistic as one JSON document: the [`Stats`] fields, the
/// settings, each size class in use and each thread cache (see
/// [`MAX_LISTED_CACHES`]). Allocates nothing itself and holds no lock
/// while `w` runs, so it may be called anywhere, with a writer into a
/// stack buffer ([`SliceWriter`]) or one that allocates.
///
/// ```
/// let mut json = String::new();
/// strata::write_stats_json(&mut json).unwrap();
/// assert!(json.starts_with("{\"version\":1,\"stats\":{\"mapped_bytes\":"));
/// ```
pub fn write_stats_json(w: &mut impl core::fmt::Write) -> core::fmt::Result {
    report::write_stats_json(w)
}

/// The configuration in force (defaults overridden by `STRATA_*` variables).
pub fn config() -> Config {
    global::ensure_init();
    config::state::get()
}
