//! The process-wide allocator: the one static stack of layers, its one-time
//! initialisation, `fork` handling, and the small and large paths.
//!
//! ```text
//!   HEAP: ThreadCaches ─▶ Central ─▶ PageHeap ─▶ SystemOs
//!   slot: this thread's cache state (crate::tls: initial-exec TLS word)
//! ```
//!
//! # Initialisation
//! Everything is const-initialised; the first thread to set up a cache (or
//! the first large allocation) checks the kernel's page size, reads the
//! configuration and registers the `fork` handlers, or, where strata is the
//! C allocator, leaves them until the process gets a second thread (see
//! "fork handlers" below). `pthread_atfork` may itself call `malloc`: the
//! state words are set before the call, so that nested call finds the work
//! claimed and goes on without waiting.

use core::ptr::NonNull;

use strata_central::Central;
use strata_os::{Os, SystemOs};
use strata_pageheap::{BadPointer, PageHeap};

use strata_threadcache::{ThreadCaches, ThreadSlot};

use crate::config::Config;
use crate::layers::{Heap, Pages};
use crate::sync::statics::{AtomicU8, Ordering};
use crate::tls::this_thread;
use core::sync::atomic::AtomicPtr;

/// The allocator. All zero bytes (every layer's defaults are stored as
/// zero), so it sits in `.bss`: its pages cost no memory until written.
pub(crate) static HEAP: Heap =
    ThreadCaches::with_hooks(Central::new(PageHeap::new(SystemOs::new())));

const NOT_STARTED: u8 = 0;
const STARTING: u8 = 1;
const READY: u8 = 2;
static INIT: AtomicU8 = AtomicU8::new(NOT_STARTED);

/// The page heap.
#[inline]
pub(crate) fn pages() -> &'static Pages {
    HEAP.backend().pages()
}

/// The central layer.
#[inline]
pub(crate) fn central() -> &'static Central<Pages> {
    HEAP.backend()
}

/// One-time set-up. Cheap once done; safe to re-enter.
#[inline]
pub(crate) fn ensure_init() {
    if INIT.load(Ordering::Acquire) == READY {
        return;
    }
    init_slow();
}

#[cold]
fn init_slow() {
    // A kernel whose pages strata cannot serve stops the program here, at
    // its first allocation, with one message, rather than in whichever OS
    // call would have asked first.
    strata_os::os_page_size();
    if INIT
        .compare_exchange(NOT_STARTED, STARTING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread (or this one, re-entering from pthread_atfork's own
        // allocation) is on it. Nothing below is needed for correctness of
        // an allocation, so go on.
        return;
    }
    let config = Config::from_env();
    crate::config::state::set(config);
    HEAP.set_max_cache_bytes(config.thread_cache_bytes);
    HEAP.set_total_cache_bytes(config.thread_caches_total);
    pages().set_decay_ms(config.decay_ms);
    pages().set_dirty_max(config.dirty_max);
    pages().set_memory_limit(Some(config.memory_limit).filter(|&b| b > 0));
    pages().set_huge_pages_after(config.huge_pages_after);
    crate::profile::init_from_env();
    crate::guarded::set_rate_at_start(config.guarded_rate);
    crate::guarded::set_max_per_sec(config.guarded_max_per_sec);
    // Now, unless calloc will tell when a second thread comes: it watches
    // glibc's byte from here on (the process has one thread, this one).
    match single_threaded_byte() {
        Some(b) if calloc_is_ours() && b.load(Ordering::Relaxed) != 0 => {
            WATCHED.store(b.as_ptr(), Ordering::Relaxed);
        }
        _ => register_fork_handlers(),
    }
    if config.show_stats {
        print_stats_at_exit_once();
    }
    if config.verbose {
        crate::config::warn_about_env();
    }
    INIT.store(READY, Ordering::Release);
    if config.background_release {
        crate::background::start(central());
    }
}

// ---- fork handlers ---------------------------------------------------------
//
// A `fork` needs strata's handlers only when another thread may be inside
// strata, holding a lock: the forking thread holds none (outside a signal
// handler that interrupted it in here, where the handlers would deadlock
// anyway), and with no other thread the child's clean-up has nothing to do
// (no other thread's cache, no background or profile thread). So where the
// process's `calloc` is strata's (the C ABI: `LD_PRELOAD`, the static
// library, the `override` feature), the handlers are registered when the
// process gets its second thread: glibc's `pthread_create` marks the
// process multi-threaded (`__libc_single_threaded`) and then allocates the
// new thread's TLS vector with `calloc`, which registers them
// (`crate::c_api::calloc`) before the new thread exists, so before it can
// fork, and not from inside another library's fork handler (where
// `pthread_atfork` would wait for the lock `fork` holds). A thread's first
// allocation checks too (`FacadeHooks::on_first_use`: a thread whose
// creation strata's `calloc` did not see), and strata registers them before starting threads of its own.
// Registered at the first allocation, `__register_atfork` made a
// single-threaded C program fault in two more 64 KiB windows of libc, its
// text and a constant of its `.rodata`, about 100 KiB of its peak
// (docs/performance.md, "A small program's footprint, mapping by
// mapping"). Elsewhere (strata as Rust's global allocator only, where
// `pthread_create` allocates through libc's `calloc`) they are registered
// at the first allocation, as before.

/// Set by the thread that registers the fork handlers, before it does.
static FORK_HANDLERS_CLAIMED: crate::sync::statics::AtomicBool =
    crate::sync::statics::AtomicBool::new(false);

/// Registers the fork handlers if the process has had a second thread
/// (or is getting one: glibc marks it before `pthread_create` allocates).
#[inline]
pub(crate) fn register_fork_handlers_if_threaded() {
    if fork_handlers_due() {
        register_fork_handlers_now();
    }
}

/// Whether the fork handlers are due: the process has had a second thread
/// and they are not registered yet. A load of [`WATCHED`], one of the byte
/// it points to, and a test, whether they are registered or not.
#[inline(always)]
pub(crate) fn fork_handlers_due() -> bool {
    let p = WATCHED.load(Ordering::Relaxed);
    // SAFETY: `p` is glibc's `__libc_single_threaded` or `STAYS_ONE`, both
    // bytes that live as long as the process ([`single_threaded_byte`]).
    unsafe { (*p.cast::<AtomicU8>()).load(Ordering::Relaxed) == 0 }
}

/// [`register_fork_handlers`], out of the callers' line.
#[cold]
#[inline(never)]
pub(crate) fn register_fork_handlers_now() {
    register_fork_handlers();
}

/// The byte [`fork_handlers_due`] reads, zero when the handlers are due:
/// `STAYS_ONE` until `init` finds strata is the C allocator of a process
/// that has one thread, then glibc's `__libc_single_threaded` until the
/// handlers are registered, then `STAYS_ONE` again.
static WATCHED: AtomicPtr<u8> = AtomicPtr::new((&raw const STAYS_ONE).cast_mut());
static STAYS_ONE: u8 = 1;

// The address of glibc's `__libc_single_threaded` (2.32 and later), or null
// where the C library has none: a weak reference, so that strata links
// against an older glibc or another C library, and loads under an older
// glibc than the one it was built with. A data word of its own, because
// Rust has no weak extern statics. Hidden: never exported.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
core::arch::global_asm!(
    ".pushsection .data.rel.ro.strata_single_threaded_at,\"aw\",%progbits",
    ".p2align 3",
    ".weak __libc_single_threaded",
    ".globl strata_single_threaded_at",
    ".hidden strata_single_threaded_at",
    ".type strata_single_threaded_at, %object",
    ".size strata_single_threaded_at, 8",
    "strata_single_threaded_at:",
    ".quad __libc_single_threaded",
    ".popsection",
);

/// glibc's byte that is non-zero while the process has never had a second
/// thread, if the C library has one.
fn single_threaded_byte() -> Option<&'static AtomicU8> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            static strata_single_threaded_at: *const u8;
        }
        // SAFETY: the word is written by the loader's relocation before
        // any code runs and never after; it holds null or the address of
        // a byte of glibc's that lives as long as the process, read as an
        // atomic since glibc writes it without one (only in
        // `pthread_create`, before the thread that could race with it
        // exists).
        unsafe { strata_single_threaded_at.cast::<AtomicU8>().as_ref() }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Registers the fork handlers, once per process. A thread that finds
/// another registering them goes on without waiting, as `init` does: the
/// registering thread may be waiting for libc's fork lock, held by a
/// thread whose fork handlers allocate.
pub(crate) fn register_fork_handlers() {
    if !FORK_HANDLERS_CLAIMED.swap(true, Ordering::AcqRel) {
        // SAFETY: the handlers are plain functions valid for the process
        // lifetime.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
        WATCHED.store((&raw const STAYS_ONE).cast_mut(), Ordering::Relaxed);
    }
}

/// Whether the process's `calloc` is strata's own: the symbol `calloc`
/// resolves inside the module strata is linked into (the shared library
/// under `LD_PRELOAD`, or the program exporting the C ABI).
fn calloc_is_ours() -> bool {
    extern "C" {
        static __ehdr_start: u8;
        static _end: u8;
    }
    let f = libc::calloc as *const () as usize;
    // Linker-defined symbols: only their addresses are taken.
    let (lo, hi) = (&raw const __ehdr_start as usize, &raw const _end as usize);
    (lo..hi).contains(&f)
}

extern "C" fn fork_prepare() {
    crate::profile::fork_prepare();
    crate::guarded::fork_prepare();
    #[cfg(feature = "checked")]
    crate::checked::fork_prepare();
    HEAP.fork_prepare();
    central().fork_prepare();
    pages().fork_prepare();
}

extern "C" fn fork_parent() {
    // SAFETY: fork_prepare ran on this thread.
    unsafe {
        pages().fork_parent();
        central().fork_parent();
        HEAP.fork_parent();
        #[cfg(feature = "checked")]
        crate::checked::fork_parent();
    }
    crate::guarded::fork_parent();
    crate::profile::fork_parent();
}

extern "C" fn fork_child() {
    // SAFETY: in the child, after fork_prepare in the parent.
    unsafe {
        pages().fork_child();
        central().fork_child();
        HEAP.fork_child(this_thread().slot().cache());
        #[cfg(feature = "checked")]
        crate::checked::fork_child();
    }
    crate::background::forget_after_fork();
    crate::guarded::fork_child();
    crate::profile::fork_child();
}

/// Registers [`print_stats_at_exit`] with `atexit`, once per process.
fn print_stats_at_exit_once() {
    static REGISTERED: crate::sync::statics::AtomicBool =
        crate::sync::statics::AtomicBool::new(false);
    if !REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: a plain function valid for the process lifetime.
        unsafe { libc::atexit(print_stats_at_exit) };
    }
}

/// Prints the statistics, unless `STRATA_SHOW_STATS` was turned off since.
extern "C" fn print_stats_at_exit() {
    if crate::config::state::show_stats() {
        crate::stats::collect(&HEAP).write_to_stderr();
    }
}

// ---- small objects ---------------------------------------------------------

/// The size class serving `size` bytes aligned to `align`, or 0 for a large
/// block. (The `checked` build asks for room past the size:
/// [`crate::checked::class_of`].)
#[inline(always)]
pub(crate) fn class_of(size: usize, align: usize) -> u8 {
    #[cfg(feature = "checked")]
    return crate::checked::class_of(size, align);
    #[cfg(not(feature = "checked"))]
    strata_central::class_index(size, align)
}

/// A small object of `class` for a request described by `request`
/// ([`crate::request`]: its size and alignment, which the samplers and the
/// `checked` build's canaries read).
#[inline(always)]
pub(crate) fn alloc_small(class: u8, request: usize) -> *mut u8 {
    #[cfg(feature = "checked")]
    return crate::checked::alloc_small(class, request);
    #[cfg(not(feature = "checked"))]
    HEAP.alloc(this_thread(), class, request)
}

/// A block for `size` bytes aligned to `align` (above 8) through
/// `GlobalAlloc::alloc`, out of its line: the one path that tells the
/// samplers an alignment ([`crate::request`]).
#[inline(never)]
pub(crate) fn alloc_aligned(size: usize, align: usize) -> *mut u8 {
    match class_of(size, align) {
        0 => alloc_large(size, align, false),
        class => alloc_small(class, crate::request::new(size, align)),
    }
}

/// Frees a small object after a sized `dealloc`. The layout names the class,
/// so no lookup is needed for a pointer inside the heap's arena (a range
/// test of about 4 instructions; every small-object span is made there while
/// it has room). A pointer outside it is validated through the pagemap
/// ([`crate::validate::valid_small_free`]): a stack address or another
/// mapping's memory is reported, a span grown outside a full arena is freed.
/// A pagemap check on every free measured +28 instructions per malloc/free
/// pair (34%; docs/safety.md); the `checked` build pays it to catch double
/// frees and interior pointers inside the arena too.
///
/// # Safety
/// `p` is a live object of `class` from this allocator, or a pointer that is
/// not strata's at all (which is reported, not freed).
#[inline(always)]
pub(crate) unsafe fn free_small(p: *mut u8, class: u8) {
    if !pages().in_arena(p as usize) {
        // SAFETY: forwarded contract.
        return unsafe { free_small_outside(p, class) };
    }
    // SAFETY: forwarded contract.
    unsafe { free_small_known(p, class) }
}

#[cold]
#[inline(never)]
unsafe fn free_small_outside(p: *mut u8, class: u8) {
    // A guarded block (its own pool, outside the arena).
    if crate::guarded::owns(p) {
        // SAFETY: forwarded contract; a bad pointer is reported.
        return unsafe { crate::guarded::free(p) };
    }
    // A sampled block of the profiler's pool lies outside the arena too.
    if crate::profile::tracking(p) && crate::profile::release(p) {
        return;
    }
    if crate::validate::valid_small_free(pages(), p, class) {
        // SAFETY: the pagemap says p is an object of `class` in a live span.
        unsafe { free_small_known(p, class) }
    }
}

/// Frees a small object already known to lie in a span of `class` (through
/// the arena test or a pagemap lookup). The `checked` build validates it
/// again, checks its marks and quarantines it ([`crate::checked`]).
///
/// # Safety
/// `p` is a live object of `class` from this allocator.
#[inline(always)]
pub(crate) unsafe fn free_small_known(p: *mut u8, class: u8) {
    // SAFETY: forwarded contract; bad pointers are reported, not freed.
    #[cfg(feature = "checked")]
    return unsafe { crate::checked::free_small(p, class, None) };
    // SAFETY: forwarded contract.
    #[cfg(not(feature = "checked"))]
    unsafe {
        HEAP.free(this_thread(), p, class)
    }
}

// ---- large allocations -----------------------------------------------------

/// A large block of `size` bytes aligned to `align`; with `zero`, reading
/// as zero. (The `checked` build always zeroes, and guards the block:
/// [`crate::checked`].)
#[inline(never)]
pub(crate) fn alloc_large(size: usize, align: usize, zero: bool) -> *mut u8 {
    #[cfg(feature = "checked")]
    {
        let _ = zero;
        crate::checked::alloc_large(size, align)
    }
    #[cfg(not(feature = "checked"))]
    alloc_large_span(size, align, zero)
}

/// A span of its own from the page heap for `size` bytes.
pub(crate) fn alloc_large_span(size: usize, align: usize, zero: bool) -> *mut u8 {
    ensure_init();
    match pages().alloc_large(size, align, zero) {
        Some(p) => {
            crate::profile::sample_large(p.as_ptr(), size);
            p.as_ptr()
        }
        None => core::ptr::null_mut(),
    }
}

/// # Safety
/// `p` was returned by [`alloc_large`] and is no longer used.
#[inline(never)]
pub(crate) unsafe fn free_large(p: *mut u8) {
    // The record goes first: once the block is back, another thread may
    // get (and sample) the same address.
    if crate::profile::tracking(p) {
        crate::profile::release(p);
    }
    // SAFETY: forwarded contract; a bad pointer is refused, not obeyed.
    #[cfg(feature = "checked")]
    return unsafe { crate::checked::free_large(p, None) };
    // SAFETY: forwarded contract; a bad pointer is refused, not obeyed.
    #[cfg(not(feature = "checked"))]
    if let Err(why) = unsafe { pages().free_large(p as usize) } {
        crate::bad_free::report(p, why.into());
    }
}

/// The size class of the small-object span holding `addr`, or 0.
#[inline(always)]
pub(crate) fn size_class_of(addr: usize) -> u8 {
    pages().size_class_of(addr)
}

/// The usable size of the large block at `addr`, or why it is not one.
#[inline]
pub(crate) fn large_size(addr: usize) -> Result<usize, BadPointer> {
    pages().large_size(addr)
}

/// Whether the large block at `addr` keeps its pages at `new_size` (a
/// step of a block grown a little at a time): one pagemap lookup, no lock,
/// nothing written. Guarded and sampled blocks answer `false` (they go
/// through [`resize_large`] or their own path, which keep their records).
///
/// # Safety
/// `addr` is the caller's live block, or a bad pointer (answered `false`,
/// for the caller's full path to report).
#[cfg(not(feature = "checked"))]
#[inline(always)]
pub(crate) unsafe fn large_keeps_pages(addr: usize, new_size: usize) -> bool {
    !crate::guarded::owns(addr as *const u8)
        && !crate::profile::tracking(addr as *const u8)
        // SAFETY: forwarded contract.
        && unsafe { pages().resize_large_keeps_pages(addr, new_size) }
}

/// Resizes the large block at `addr` in place (or by moving its mapping).
///
/// # Safety
/// As [`PageHeap::resize_large`].
#[inline]
pub(crate) unsafe fn resize_large(
    addr: usize,
    new_size: usize,
    align: usize,
) -> Option<NonNull<u8>> {
    // A sampled block's record is keyed by its address: out of the table
    // while the block may move (its old address may be handed out and
    // sampled meanwhile), back under the new address and size after.
    let rec = if crate::profile::tracking(addr as *const u8) {
        crate::profile::take(addr as *const u8)
    } else {
        None
    };
    // SAFETY: forwarded contract.
    let q = unsafe { pages().resize_large(addr, new_size, align) };
    if let Some(rec) = rec {
        let at = q.map_or(addr, |q| q.as_ptr() as usize);
        crate::profile::put_back(rec, at, if q.is_some() { new_size } else { rec.size() });
    }
    q
}

/// Re-arms the calling thread's countdown ([`crate::profile::start`]).
pub(crate) fn rearm_this_thread() {
    HEAP.rearm_current(this_thread().slot());
}

/// [`crate::release_free_memory`].
pub(crate) fn release_free_memory() -> usize {
    #[cfg(feature = "checked")]
    crate::checked::drain_quarantine();
    HEAP.flush_current(this_thread().slot());
    // The caches exited threads left for the next ones.
    HEAP.release_retired();
    central().drain_transfer_caches();
    pages().release_free_memory()
}

/// [`crate::set_decay_ms`].
pub(crate) fn set_decay_ms(ms: u64) {
    ensure_init();
    pages().set_decay_ms(ms);
    crate::config::state::set_decay_ms(ms);
}

/// [`crate::set_memory_limit`].
pub(crate) fn set_memory_limit(bytes: Option<usize>) {
    ensure_init();
    pages().set_memory_limit(bytes);
    crate::config::state::set_memory_limit(bytes.unwrap_or(0));
}

/// [`crate::memory_limit`].
pub(crate) fn memory_limit() -> Option<usize> {
    ensure_init();
    pages().memory_limit()
}

/// [`crate::set_dirty_max`].
pub(crate) fn set_dirty_max(bytes: usize) {
    ensure_init();
    pages().set_dirty_max(bytes);
    crate::config::state::set_dirty_max(bytes);
}

/// [`crate::set_huge_pages_after`].
pub(crate) fn set_huge_pages_after(bytes: usize) {
    ensure_init();
    pages().set_huge_pages_after(bytes);
    crate::config::state::set_huge_pages_after(bytes);
}

/// [`crate::start_background_release`].
pub(crate) fn start_background_release() -> bool {
    ensure_init();
    crate::background::start(central())
}

/// [`crate::stop_background_release`].
pub(crate) fn stop_background_release() {
    ensure_init();
    crate::background::stop();
}

/// [`crate::set_thread_cache_bytes`].
pub(crate) fn set_thread_cache_bytes(bytes: usize) {
    ensure_init();
    HEAP.set_max_cache_bytes(bytes);
    crate::config::state::set_thread_cache_bytes(bytes);
}

/// [`crate::set_thread_caches_total`].
pub(crate) fn set_thread_caches_total(bytes: usize) {
    ensure_init();
    HEAP.set_total_cache_bytes(bytes);
    crate::config::state::set_thread_caches_total(bytes);
}

/// [`crate::set_show_stats`].
pub(crate) fn set_show_stats(on: bool) {
    ensure_init();
    crate::config::state::set_show_stats(on);
    if on {
        print_stats_at_exit_once();
    }
}

/// Reads every layer's accounting ([`crate::stats`]).
pub(crate) fn stats() -> crate::Stats {
    crate::stats::collect(&HEAP)
}

/// Accounting for one size class (1..NUM_CLASSES).
pub(crate) fn class_stats(class: u8) -> strata_central::ClassStats {
    central().class_stats(class)
}

/// Adds the objects of each class all thread caches hold into
/// `out[class]`.
pub(crate) fn add_thread_cache_objects(out: &mut [usize]) {
    HEAP.add_cached_objects(out);
}

/// Calls `f` with the bytes each live thread cache holds, under
/// the registry's lock: `f` must only copy them.
pub(crate) fn for_each_thread_cache(f: impl FnMut(usize)) {
    HEAP.for_each_cache(f);
}

/// Makes `[ptr, ptr + len)` resident now.
pub(crate) fn populate(ptr: NonNull<u8>, len: usize) -> bool {
    // SAFETY: the caller of the public API promises the range is an
    // allocation of theirs.
    unsafe { pages().os().populate(ptr, len) }.is_ok()
}
