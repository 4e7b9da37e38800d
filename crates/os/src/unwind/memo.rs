//! Walks repeated without decoding: the last walks of each of a few
//! slots, kept with everything they depended on, and given again when all
//! of that is unchanged.
//!
//! # Why a repeat is exact
//! The walk (`walk_into`) is a function of:
//! - its start registers: the instruction pointer (a fixed place in
//!   `capture_with`), the stack pointer, and `rbp` only if some frame's CFA
//!   is computed from the `rbp` the walk started with (before a rule loads
//!   it from the stack);
//! - the top of the thread's stack, which bounds every stack read;
//! - the words it reads from the stack (return-address and saved-`rbp`
//!   slots), each at an address that is a function of what came before;
//! - the rules of the code at the return addresses, a function of the
//!   objects loaded, which `dl_iterate_phdr`'s counts of objects added and
//!   removed track;
//! - `skip` and the room in the output.
//!
//! A memo keeps all of these with the frames the walk wrote. A capture
//! whose start, top, counts, `skip` and room are the memo's, and whose
//! stack holds the memo's value at every address the memo read, would
//! read the same words in the same order, apply the same rules and write
//! the same frames: the memo's frames are given instead. Anything else
//! walks (and records the walk in one of its slot's memos).
//!
//! # Slots
//! A thread uses the slot its `pthread_self` hashes to, claimed for the
//! capture with a flag (a thread that finds it claimed walks without a
//! memo). A thread never re-enters a capture (`stack::Capturing`), so
//! the flag is only ever contended between threads. A slot holds a few
//! memos (ways), replaced in turn: a thread sampling from two places (a
//! profiler's small and large blocks) keeps both. (A fork while another
//! thread holds a slot leaves it claimed in the child, whose threads of
//! that slot then walk every time.)
//!
//! # Invariants
//! - The addresses checked lie in `[sp, top)` of the recorded walk; a
//!   repeat requires the same `sp` and the `top` of the calling thread's
//!   stack, so every address checked is on the caller's own live stack.
//! - A slot's memo is read or written only by the thread that holds its
//!   flag. Nothing here allocates, waits, or panics.
//! - A memo's key is unique to its content: a new recording takes a new
//!   generation.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use super::{walk_into, Regs};

/// Slots (a power of two).
const SLOTS: usize = 8;

/// Memos per slot (a power of two).
const WAYS: usize = 4;

/// Memos in all; a key's low bits say which.
pub(crate) const MEMOS_IN_ALL: usize = SLOTS * WAYS;

/// The most frames a memoised walk writes (a larger output walks).
pub(crate) const MAX_FRAMES: usize = 64;

/// The most stack words a memoised walk reads: two per frame, `skip`
/// frames included (a walk reading more is not memoised).
const MAX_READS: usize = 2 * (MAX_FRAMES + 8);

/// What a walk reads, recorded as it goes.
pub(super) trait Observe {
    /// The walk read the return address `v` at `at`.
    fn read_ra(&mut self, at: usize, v: usize);
    /// The walk read the caller's `rbp`, `v`, at `at`: the `rbp` from now.
    fn read_bp(&mut self, at: usize, v: usize);
    /// The walk computed a CFA from the `rbp` of the moment.
    fn used_bp(&mut self);
}

/// A walk that records nothing.
pub(super) struct Unobserved;

impl Observe for Unobserved {
    #[inline(always)]
    fn read_ra(&mut self, _: usize, _: usize) {}
    #[inline(always)]
    fn read_bp(&mut self, _: usize, _: usize) {}
    #[inline(always)]
    fn used_bp(&mut self) {}
}

/// The stack words a walk's frames depend on, in order: every return
/// address it read, and each saved `rbp` a later CFA was computed from.
/// A saved `rbp` no rule used before the next was loaded changed nothing,
/// and its address alone decided whether the walk read it (a read is
/// refused by where it is, never by what it finds), so it is left out.
struct Reads {
    /// (address, value), one array so that a check reads one stream; an
    /// address with bit 0 set is an `rbp` not used (yet).
    words: [(usize, usize); MAX_READS],
    n: usize,
    /// More than [`MAX_READS`]: not a memo.
    overflow: bool,
    /// Where the `rbp` of the moment was read (`None`: the start `rbp`).
    bp_at: Option<usize>,
    /// A CFA was computed from the start `rbp`.
    bp_used: bool,
}

impl Reads {
    fn push(&mut self, w: (usize, usize)) {
        if self.n == MAX_READS {
            self.overflow = true;
            return;
        }
        self.words[self.n] = w;
        self.n += 1;
    }

    fn clear(&mut self) {
        self.n = 0;
        self.overflow = false;
        self.bp_at = None;
        self.bp_used = false;
    }

    /// Leaves out the `rbp` reads no rule used.
    fn keep_used(&mut self) {
        let mut kept = 0;
        for i in 0..self.n {
            let w = self.words[i];
            if w.0 & 1 == 0 {
                self.words[kept] = w;
                kept += 1;
            }
        }
        self.n = kept;
    }
}

impl Observe for Reads {
    #[inline(always)]
    fn read_ra(&mut self, at: usize, v: usize) {
        self.push((at, v));
    }
    #[inline(always)]
    fn read_bp(&mut self, at: usize, v: usize) {
        self.bp_at = Some(self.n);
        self.push((at | 1, v));
    }
    #[inline(always)]
    fn used_bp(&mut self) {
        match self.bp_at {
            None => self.bp_used = true,
            Some(i) => {
                if let Some(w) = self.words.get_mut(i) {
                    w.0 &= !1;
                }
            }
        }
    }
}

/// What a walk depended on besides the stack's words.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Start {
    pub(super) ip: usize,
    pub(super) sp: usize,
    /// The start `rbp` if the walk used it, else 0.
    pub(super) bp: usize,
    pub(super) top: usize,
    /// `dl_iterate_phdr`'s counts of objects added and removed.
    pub(super) objects: (u64, u64),
    pub(super) skip: usize,
    pub(super) room: usize,
}

struct Memo {
    /// 0: empty; else the key captures that repeat it return.
    key: u64,
    start: Start,
    reads: Reads,
    frames: [usize; MAX_FRAMES],
    len: usize,
    /// Recordings made in this memo (keys' generations).
    recorded: u64,
}

struct Slot {
    busy: AtomicBool,
    memos: UnsafeCell<Ways>,
}

struct Ways {
    memo: [Memo; WAYS],
    /// The way the next recording replaces.
    next: usize,
    /// The way last repeated or recorded, checked first: a check that
    /// fails late (another path from the same stack pointer) costs as
    /// much as one that succeeds.
    last: usize,
}

// SAFETY: `memos` is touched only by the thread that set `busy`
// (Acquire) until it clears it (Release).
unsafe impl Sync for Slot {}

const EMPTY: Start = Start {
    ip: 0,
    sp: 0,
    bp: 0,
    top: 0,
    objects: (0, 0),
    skip: 0,
    room: 0,
};

const EMPTY_MEMO: Memo = Memo {
    key: 0,
    start: EMPTY,
    reads: Reads {
        words: [(0, 0); MAX_READS],
        n: 0,
        overflow: false,
        bp_at: None,
        bp_used: false,
    },
    frames: [0; MAX_FRAMES],
    len: 0,
    recorded: 0,
};

static MEMOS: [Slot; SLOTS] = [const {
    Slot {
        busy: AtomicBool::new(false),
        memos: UnsafeCell::new(Ways {
            memo: [EMPTY_MEMO; WAYS],
            next: 0,
            last: 0,
        }),
    }
}; SLOTS];

/// Holds a slot for one capture.
struct Claim {
    slot: &'static Slot,
    index: usize,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.slot.busy.store(false, Ordering::Release);
    }
}

/// Claims the slot of the thread `me` (its `pthread_self`).
fn claim(me: usize) -> Option<Claim> {
    let index =
        ((me as u64 >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize & (SLOTS - 1);
    let slot = &MEMOS[index];
    slot.busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| Claim { slot, index })
}

/// [`walk_into`] from `start` (whose `bp` is the start `rbp`, used or
/// not), repeated from a memo where it would give the same frames, else
/// walked and recorded. Returns the frames written and a key: two
/// captures with the same non-zero key wrote the same frames (0: not
/// memoised). `None`: the walk gave up.
pub(super) fn walk_memoised(start: Start, me: usize, out: &mut [usize]) -> Option<(usize, u64)> {
    let regs = Regs {
        ip: start.ip,
        sp: start.sp,
        bp: start.bp,
    };
    let mut len = 0;
    let Some(claim) = (out.len() <= MAX_FRAMES).then(|| claim(me)).flatten() else {
        walk_into(regs, start.top, out, start.skip, &mut len, &mut Unobserved)?;
        return Some((len, 0));
    };
    // SAFETY: this thread holds the slot's flag (Slot's invariant).
    let ways = unsafe { &mut *claim.slot.memos.get() };
    let first = ways.last;
    let mut order = (0..WAYS).map(|i| (first + i) % WAYS);
    if let Some(way) = order.find(|&w| {
        let m = &ways.memo[w];
        m.key != 0 && repeats(m, &start)
    }) {
        ways.last = way;
        let m = &ways.memo[way];
        out[..m.len].copy_from_slice(&m.frames[..m.len]);
        return Some((m.len, m.key));
    }
    let way = ways.next;
    ways.next = (way + 1) % WAYS;
    ways.last = way;
    let m = &mut ways.memo[way];
    m.key = 0;
    m.reads.clear();
    walk_into(regs, start.top, out, start.skip, &mut len, &mut m.reads)?;
    if m.reads.overflow {
        return Some((len, 0));
    }
    m.reads.keep_used();
    m.start = Start {
        bp: if m.reads.bp_used { start.bp } else { 0 },
        ..start
    };
    m.frames[..len].copy_from_slice(&out[..len]);
    m.len = len;
    m.recorded += 1;
    m.key = m.recorded * MEMOS_IN_ALL as u64 + (claim.index * WAYS + way) as u64;
    Some((len, m.key))
}

/// Whether a walk from `start` would repeat `m`.
fn repeats(m: &Memo, start: &Start) -> bool {
    let want = Start {
        bp: if m.reads.bp_used { start.bp } else { 0 },
        ..*start
    };
    if m.start != want {
        return false;
    }
    // No early exit: a repeat reads them all anyway, and the loop has one
    // branch.
    let mut diff = 0;
    for &(at, v) in &m.reads.words[..m.reads.n] {
        // SAFETY: `at` was read by a walk from the same stack pointer on
        // a stack with the same top, so it lies in `[sp, top)` of the
        // calling thread's live stack (module invariants); aligned.
        diff |= unsafe { (at as *const usize).read() } ^ v;
    }
    diff == 0
}
