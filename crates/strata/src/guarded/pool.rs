//! The guarded pool: [`SLOTS`] pages, each between two guard pages,
//! reserved (`PROT_NONE`) at the first guarded allocation:
//!
//! ```text
//!   [ guard | slot 0 | guard | slot 1 | guard | ... | slot S-1 | guard ]
//! ```
//!
//! # A slot's life
//! - Free slots wait in a FIFO ring: the slot taken is the one freed
//!   longest ago, so a freed block stays inaccessible for as long as
//!   possible (until `SLOTS - 1` other guarded blocks were freed after it).
//! - Taken: its page is made readable and writable, filled with
//!   [`PATTERN`], and the block placed on it, zeroed: on alternate
//!   allocations at the highest address the request's alignment allows
//!   before the guard page after it (an overflow faults; with the
//!   alignment's few slack bytes before the guard, a small overflow is
//!   found on free instead) or at the page's start, against the guard page
//!   before it (an underflow faults). The pattern's bytes around the block
//!   are checked on free, which catches an overflow of a block at the
//!   page's start and an underflow of one at its end.
//! - The placement follows the request ([`crate::request`]), not its size
//!   class: the bytes asked for, aligned to what the caller asked for and
//!   at least to what C's `malloc` promises (8 bytes, 16 from 16 bytes up).
//!   A 48-byte request aligned to 8 ends at the guard in either build,
//!   though the `checked` build serves it from the 64-byte class (its
//!   marks need 8 bytes more). The block's usable size is the size asked
//!   for: the slack after it is not the program's, and is checked.
//! - Freed: its page is made inaccessible again (`PROT_NONE`), so a use
//!   after free faults, and the slot goes to the back of the ring.
//!
//! The page of a freed slot stays resident (inaccessible) until it is
//! reused: the pool holds at most `SLOTS` pages of memory, 512 KiB with
//! 4 KiB pages, plus its metadata (a static table, about 70 KiB).
//!
//! # Metadata
//! Each slot's record (state, block, the stacks of its allocation and
//! free) is written only by the thread that owns the slot at that moment
//! (between taking it from the ring and giving it back), and published by
//! a release store of its state. The fault reporter reads records without
//! the lock: a report about a slot changing at that moment may mix two
//! blocks' facts, never read outside the table.
//!
//! # Invariants
//! - A slot is in the ring exactly when its state is not [`LIVE`]; its page
//!   is accessible exactly while it is live (and while it is being set up
//!   or torn down by its owner).
//! - The ring's lock is held for a few instructions, never across a system
//!   call or a stack capture; `fork` takes it (the child keeps the pool).

use core::cell::UnsafeCell;
use core::ptr::NonNull;

use strata_base::{ForkLock, Lock};
use strata_os::{os_page_size, protect, Protection};

use crate::bad_free::{report as bad_free, BadFreeKind};
use crate::sync::statics::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Slots in the pool.
pub const SLOTS: usize = 128;

/// Frames kept of each stack.
pub(super) const DEPTH: usize = 32;

/// The byte around a guarded block, checked on free.
pub(super) const PATTERN: u8 = 0xAC;

/// Never used since the pool was reserved.
pub(super) const UNUSED: u8 = 0;
/// Holds a live block.
pub(super) const LIVE: u8 = 1;
/// Held a block, now freed.
pub(super) const FREED: u8 = 2;

/// One slot's record.
pub(super) struct Meta {
    pub(super) state: AtomicU8,
    /// The block's address and the bytes asked for.
    pub(super) addr: usize,
    pub(super) size: usize,
    pub(super) alloc_tid: u32,
    pub(super) free_tid: u32,
    pub(super) alloc_depth: usize,
    pub(super) free_depth: usize,
    pub(super) alloc: [usize; DEPTH],
    pub(super) free: [usize; DEPTH],
}

impl Meta {
    // Only ever used to initialise the static table, element by element.
    #[allow(clippy::declare_interior_mutable_const)]
    const NEW: Meta = Meta {
        state: AtomicU8::new(UNUSED),
        addr: 0,
        size: 0,
        alloc_tid: 0,
        free_tid: 0,
        alloc_depth: 0,
        free_depth: 0,
        alloc: [0; DEPTH],
        free: [0; DEPTH],
    };
}

/// The records, one per slot.
struct Metas(UnsafeCell<[Meta; SLOTS]>);

// SAFETY: a record's plain fields are written only by the slot's owner
// (module docs), and published by its state's release store; other
// threads read them after an acquire load of the state (or, in the fault
// reporter, racily, documented above).
unsafe impl Sync for Metas {}

static METAS: Metas = Metas(UnsafeCell::new([Meta::NEW; SLOTS]));

/// The free slots, oldest first.
struct Ring {
    slots: [u8; SLOTS],
    head: usize,
    len: usize,
    /// Flips at every allocation: which end of its page a block goes to.
    at_end: bool,
    /// Guarded blocks a second at most.
    budget: super::budget::Budget,
}

impl Ring {
    fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let i = self.slots[self.head] as usize;
        self.head = (self.head + 1) % SLOTS;
        self.len -= 1;
        Some(i)
    }

    fn push(&mut self, i: usize) {
        self.slots[(self.head + self.len) % SLOTS] = i as u8;
        self.len += 1;
    }
}

const fn all_slots() -> [u8; SLOTS] {
    let mut s = [0u8; SLOTS];
    let mut i = 0;
    while i < SLOTS {
        s[i] = i as u8;
        i += 1;
    }
    s
}

static RING: Lock<Ring> = Lock::new(Ring {
    slots: all_slots(),
    head: 0,
    len: SLOTS,
    at_end: false,
    budget: super::budget::Budget::new(),
});

/// The reservation's start (0 before it exists) and length.
static BASE: AtomicUsize = AtomicUsize::new(0);
static LEN: AtomicUsize = AtomicUsize::new(0);

const NOT_RESERVED: u8 = 0;
const RESERVING: u8 = 1;
const RESERVED: u8 = 2;
const FAILED: u8 = 3;
static RESERVE: AtomicU8 = AtomicU8::new(NOT_RESERVED);

static LIVE_COUNT: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
/// Allocations the sampler picked that the time budget turned away.
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// The record of slot `i` (< SLOTS).
pub(super) fn meta(i: usize) -> *mut Meta {
    // In bounds: callers pass i < SLOTS.
    METAS.0.get().cast::<Meta>().wrapping_add(i)
}

/// The pool's start, length and OS page size, if it exists.
pub(super) fn pool() -> Option<(usize, usize, usize)> {
    let base = BASE.load(Ordering::Acquire);
    (base != 0).then(|| (base, LEN.load(Ordering::Relaxed), os_page_size()))
}

#[inline]
pub(super) fn owns(p: usize) -> bool {
    p.wrapping_sub(BASE.load(Ordering::Relaxed)) < LEN.load(Ordering::Relaxed)
}

/// The pool's start, reserving it (and installing the fault reporter) on
/// first use; `None` if the OS refused, or another thread is reserving it
/// right now.
fn base() -> Option<usize> {
    match RESERVE.load(Ordering::Acquire) {
        RESERVED => return Some(BASE.load(Ordering::Relaxed)),
        NOT_RESERVED => {}
        _ => return None,
    }
    if RESERVE
        .compare_exchange(NOT_RESERVED, RESERVING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return None;
    }
    let len = (2 * SLOTS + 1) * os_page_size();
    let Ok(m) = strata_os::map_anonymous(len, strata_os::Protection::None) else {
        RESERVE.store(FAILED, Ordering::Release);
        return None;
    };
    let m = m.as_ptr();
    LEN.store(len, Ordering::Relaxed);
    BASE.store(m as usize, Ordering::Release);
    super::report::install();
    RESERVE.store(RESERVED, Ordering::Release);
    Some(m as usize)
}

/// A guarded block for `request` ([`crate::request`]; 0: the class's
/// size and alignment) of `class`, or `None`: the class is larger than a
/// page, every slot is live, or the OS refused.
pub(super) fn alloc(class: u8, request: usize) -> Option<NonNull<u8>> {
    let class_size = strata_central::class_size_of(class);
    let page = os_page_size();
    if class == 0 || class_size > page {
        return None;
    }
    let size = match crate::request::size(request) {
        0 => class_size,
        n => n,
    };
    // Every object of the class is aligned to the lowest set bit of its
    // size (spans start on pages), which meets whatever alignment the
    // request had: the alignment to use when the request does not say.
    let align = match crate::request::align(request) {
        0 => class_size & class_size.wrapping_neg(),
        a => a,
    }
    .min(page);
    let base = base()?;
    let (i, at_end) = {
        let now = strata_os::monotonic_ms();
        let mut r = RING.lock();
        // A pool with no free slot spends no token of the budget.
        if r.len == 0 {
            return None;
        }
        if !r.budget.take(now, super::max_per_sec()) {
            drop(r);
            SKIPPED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let i = r.pop()?;
        r.at_end = !r.at_end;
        (i, r.at_end)
    };
    let mut frames = [0usize; DEPTH];
    let depth = strata_os::stack::capture(&mut frames, 2);
    let slot = base + (2 * i + 1) * page;
    // SAFETY: slot i's page, ours until it goes back to the ring.
    if unsafe {
        protect(
            NonNull::new_unchecked(slot as *mut u8),
            page,
            Protection::ReadWrite,
        )
    }
    .is_err()
    {
        RING.lock().push(i);
        return None;
    }
    let addr = if at_end {
        (slot + page - size) & !(align - 1)
    } else {
        slot
    };
    // SAFETY: the page is ours and accessible; [addr, addr + size) lies in
    // it (size <= class_size <= page).
    unsafe {
        core::ptr::write_bytes(slot as *mut u8, PATTERN, page);
        core::ptr::write_bytes(addr as *mut u8, 0, size);
    }
    // SAFETY: slot i's record, written only by its owner (us, now).
    unsafe {
        let m = &mut *meta(i);
        m.addr = addr;
        m.size = size;
        m.alloc_tid = strata_os::thread_id();
        m.alloc_depth = depth;
        m.alloc = frames;
        m.free_depth = 0;
        m.free_tid = 0;
        m.state.store(LIVE, Ordering::Release);
    }
    LIVE_COUNT.fetch_add(1, Ordering::Relaxed);
    ALLOCATED.fetch_add(1, Ordering::Relaxed);
    NonNull::new(addr as *mut u8)
}

/// The slot whose page holds `p`, if `p` lies in a slot page (not a guard).
fn slot_of(p: usize) -> Option<usize> {
    let (base, len, page) = pool()?;
    let off = p.wrapping_sub(base);
    if off >= len {
        return None;
    }
    let n = off / page;
    (n % 2 == 1).then_some(n / 2)
}

/// Checks that `p` is the start of a live block: its slot, or the report
/// made (with the stacks known) and `None`.
fn live_slot(p: usize) -> Option<usize> {
    let Some(i) = slot_of(p) else {
        bad_free(p as *const u8, BadFreeKind::NeverAllocated);
        return None;
    };
    // SAFETY: slot i's record; its fields are read after the state's
    // acquire load that published them.
    let m = unsafe { &*meta(i) };
    let kind = match m.state.load(Ordering::Acquire) {
        LIVE if m.addr == p => return Some(i),
        LIVE => BadFreeKind::Interior,
        FREED => BadFreeKind::DoubleFree,
        _ => BadFreeKind::NeverAllocated,
    };
    if kind != BadFreeKind::NeverAllocated {
        super::report::bad_use(p, i, kind.message().as_bytes());
    }
    bad_free(p as *const u8, kind);
    None
}

/// The size asked for of the live block at `p`; reported otherwise.
pub(super) fn live_size(p: usize) -> Option<usize> {
    // SAFETY: live_slot returned a live slot's index.
    live_slot(p).map(|i| unsafe { (*meta(i)).size })
}

/// Whether every byte is [`PATTERN`]. A fold with no early exit, which
/// the compiler turns into vector code: a page checked at a few hundred
/// instructions rather than a branch a byte.
fn all_pattern(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &b| acc | (b ^ PATTERN)) == 0
}

/// Frees the guarded block at `p`: checks the bytes around it, records the
/// stack, makes its page inaccessible and puts the slot at the back of
/// the ring.
///
/// # Safety
/// `p` is a pointer the caller gives up.
pub(super) unsafe fn free(p: *mut u8) {
    let Some(i) = live_slot(p as usize) else {
        return;
    };
    let page = os_page_size();
    // SAFETY: a live slot: its record is published, its page accessible.
    let (addr, size) = unsafe { ((*meta(i)).addr, (*meta(i)).size) };
    let start = addr & !(page - 1);
    // SAFETY: the slot's page, accessible while the block is live.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, page) };
    let (before, rest) = bytes.split_at(addr - start);
    let after = &rest[size..];
    let broken = if !all_pattern(after) {
        Some(&b"bytes past the end of the block were written (heap overflow)"[..])
    } else if !all_pattern(before) {
        Some(&b"bytes before the start of the block were written (heap underflow)"[..])
    } else {
        None
    };
    if let Some(what) = broken {
        super::report::bad_use(addr, i, what);
        bad_free(p, BadFreeKind::HeapOverflow);
        return;
    }
    let mut frames = [0usize; DEPTH];
    let depth = strata_os::stack::capture(&mut frames, 2);
    // SAFETY: the slot is ours until it goes back to the ring.
    unsafe {
        let m = &mut *meta(i);
        m.free = frames;
        m.free_depth = depth;
        m.free_tid = strata_os::thread_id();
        m.state.store(FREED, Ordering::Release);
    }
    // SAFETY: slot i's page; nobody may touch the freed block any more.
    if unsafe {
        protect(
            NonNull::new_unchecked(start as *mut u8),
            page,
            Protection::None,
        )
    }
    .is_err()
    {
        // The kernel refused (out of mappings): the slot stays out of the
        // ring, its page accessible, rather than be reused while readable.
        LIVE_COUNT.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    LIVE_COUNT.fetch_sub(1, Ordering::Relaxed);
    RING.lock().push(i);
}

pub(super) fn stats() -> super::GuardedStats {
    let reserved = LEN.load(Ordering::Relaxed);
    super::GuardedStats {
        live: LIVE_COUNT.load(Ordering::Relaxed),
        allocated: ALLOCATED.load(Ordering::Relaxed),
        skipped: SKIPPED.load(Ordering::Relaxed),
        reserved_bytes: reserved,
        max_resident_bytes: if reserved == 0 {
            0
        } else {
            SLOTS * os_page_size()
        },
    }
}

pub(super) fn fork_prepare() {
    RING.fork_prepare();
}

pub(super) fn fork_parent() {
    // SAFETY: fork_prepare ran on this thread.
    unsafe { RING.fork_parent() };
}

pub(super) fn fork_child() {
    // SAFETY: in the child, after fork_prepare in the parent.
    unsafe { RING.fork_child() };
}
