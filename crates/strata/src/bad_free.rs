//! Frees strata cannot take back: detected, reported with a clear message,
//! and never obeyed.
//!
//! # What the default build catches
//! - `free(p)` (the C ABI, `raw::free`) of a pointer strata never handed out
//!   (a stack address, memory of another mapping): its page has no size
//!   class in the pagemap and no large span. The lookup is the one `free`
//!   needs anyway to find the size class, so the check is free;
//! - a pointer inside a block, large or small (not at an object boundary of
//!   its span, or past the span's last object);
//! - through `free(p)`, a second free of a small object still in this
//!   thread's cache or its class's transfer cache (`freed_mark.rs`);
//! - a second free of a large block (its span is no longer in use), and a
//!   large free of a small object's address.
//!
//! A sized `dealloc(p, layout)` trusts its layout for small objects: looking
//! the pointer up costs 34% more instructions per malloc/free pair
//! (docs/safety.md), far above what a default build should pay. Small-object
//! double frees and interior pointers at aligned offsets are left to the
//! `checked` build. See `docs/safety.md`.
//!
//! # Reporting
//! By default the message goes to stderr, written without allocating, and
//! the process aborts:
//!
//! ```text
//! strata: free(0x7ffd5c1e0a10): pointer was never allocated by strata
//! ```
//!
//! Tests (and programs that prefer to log and carry on) can install a hook
//! with [`set_bad_free_hook`]; when it returns, the free is ignored, so
//! nothing is corrupted.

use crate::sync::statics::{AtomicUsize, Ordering};
use strata_os::Hex;
use strata_pageheap::BadPointer;

/// What was wrong with a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFreeKind {
    /// No block of strata's starts or lies at this address.
    NeverAllocated,
    /// The pointer lies inside a block, not at its start.
    Interior,
    /// The block was already freed.
    DoubleFree,
    /// The layout (size or alignment) given to `dealloc` does not match the
    /// block's.
    WrongLayout,
    /// A freed block was written while it was free (found when it is freed
    /// again, leaves the quarantine or is handed out again; `checked` build
    /// only). The pointer is the block's.
    WriteAfterFree,
    /// Bytes past the end of the block (past the size asked for) were
    /// written: a heap overflow (found when the block is freed or resized;
    /// `checked` build only).
    HeapOverflow,
}

/// A free that strata refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFree {
    /// The address passed to `free` / `dealloc`.
    pub ptr: usize,
    /// What was wrong.
    pub kind: BadFreeKind,
}

impl BadFreeKind {
    /// The message strata prints for this kind.
    pub fn message(self) -> &'static str {
        match self {
            BadFreeKind::NeverAllocated => "pointer was never allocated by strata",
            BadFreeKind::Interior => "pointer is inside a block, not at its start",
            BadFreeKind::DoubleFree => "block is not allocated (double free?)",
            BadFreeKind::WrongLayout => "layout does not match the block (wrong size or alignment)",
            BadFreeKind::WriteAfterFree => "freed memory was written (use after free)",
            BadFreeKind::HeapOverflow => {
                "bytes past the end of the block were written (heap overflow)"
            }
        }
    }
}

impl From<BadPointer> for BadFreeKind {
    fn from(b: BadPointer) -> Self {
        match b {
            BadPointer::NotOurs => BadFreeKind::NeverAllocated,
            BadPointer::Interior => BadFreeKind::Interior,
            BadPointer::NotInUse => BadFreeKind::DoubleFree,
            BadPointer::SmallObject => BadFreeKind::WrongLayout,
        }
    }
}

/// The installed hook, as a `fn(BadFree)` address; 0 for the default.
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs a function called on every refused free instead of printing and
/// aborting (`None` restores the default). When the hook returns, the free
/// is ignored: the block is neither freed nor touched.
///
/// The hook runs inside the allocator: it may allocate (strata's locks are
/// not held), but it should be short.
pub fn set_bad_free_hook(hook: Option<fn(BadFree)>) {
    HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// Reports a refused free: the hook if one is installed (then returns),
/// otherwise a message on stderr and abort.
#[cold]
#[inline(never)]
pub(crate) fn report(ptr: *const u8, kind: BadFreeKind) {
    let hook = HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: only `set_bad_free_hook` stores here, always a `fn(BadFree)`.
        let f: fn(BadFree) = unsafe { core::mem::transmute::<usize, fn(BadFree)>(hook) };
        f(BadFree {
            ptr: ptr as usize,
            kind,
        });
        return;
    }
    let addr = Hex::new(ptr as usize);
    strata_os::write_stderr(&[
        b"strata: free(",
        addr.as_bytes(),
        b"): ",
        kind.message().as_bytes(),
        b"\n",
    ]);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}
