//! A stack walk that reads the DWARF call-frame tables itself: the fast
//! walker behind [`crate::stack::capture`].
//!
//! # How a frame is stepped
//! A frame is three registers: the instruction pointer, the stack pointer
//! and `rbp`. The rule for a frame comes from the `.eh_frame` entry (FDE)
//! covering its instruction, found by binary search in the
//! `.eh_frame_hdr` table of the object that contains it
//! (`dl_iterate_phdr`, under the loader's lock, as libgcc does). Its CIE's
//! and FDE's instructions are run up to the instruction to get the rule of
//! the common x86-64 shape: the caller's stack pointer (the CFA) is
//! `rsp` or `rbp` plus an offset, the return address and the saved `rbp`
//! lie at fixed offsets below it. Anything else (a DWARF expression, a
//! signal frame, a register saved in another register, a 64-bit or
//! unusual table) makes the walk give up, and the caller falls back to
//! libgcc's walker for the whole stack.
//!
//! # Cache
//! Decoded rules are kept in a fixed table of atomic words, direct-mapped
//! by instruction address, so a stack seen before costs a few loads per
//! frame. An entry packs the address's upper bits with the rule in one
//! word, so a reader sees a whole entry or none. When an object is
//! unloaded (`dl_iterate_phdr`'s count of removals changes, checked once
//! per walk) the table is cleared: a later object may be loaded at the
//! same addresses.
//!
//! # Memo
//! A profiler samples the same few stacks over and over. The last walk of
//! each of a few slots (by thread) is kept with the words of the stack it
//! read and the registers it started from; a walk that starts from the
//! same registers on a stack holding the same words at those addresses is
//! given the kept frames without a rule looked up (`memo`, which says why
//! that is exact). A repeat reads each return address and each saved
//! `rbp` a later rule used once: measured in docs/performance.md.
//!
//! # Invariants
//! - Nothing here allocates, takes a lock other than the loader's (the
//!   same `dl_iterate_phdr` libgcc's walker calls), or panics.
//! - Table reads stay inside the loaded segment that holds the object's
//!   `.eh_frame_hdr` (and must hold its `.eh_frame`), under the loader's
//!   lock. Stack reads stay between the walk's first stack pointer and
//!   the top of the thread's stack, and each frame's CFA is above the
//!   last: a wrong rule gives a wrong trace, never a read elsewhere.

mod cache;
mod cfa;
mod cursor;
mod eh_frame;
mod memo;

use core::ffi::c_void;

use cache::{forget_unloaded, rule_for};
pub(crate) use memo::MEMOS_IN_ALL;
use memo::{Observe, Start, Unobserved};

/// A frame's registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Regs {
    /// The instruction pointer.
    pub ip: usize,
    /// The stack pointer.
    pub sp: usize,
    /// `rbp`.
    pub bp: usize,
}

/// How to find a frame's caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    /// The CFA is `rbp` (true) or `rsp` (false) plus `cfa_off`.
    cfa_bp: bool,
    cfa_off: i64,
    /// Where the return address is, from the CFA; `None`: undefined, the
    /// outermost frame.
    ra: Option<i64>,
    /// Where the caller's `rbp` is saved, from the CFA; `None`: unchanged.
    bp: Option<i64>,
}

/// What a lookup found for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    Found(Rule),
    /// No object or no FDE covers it: the walk ends there, as libgcc's.
    NoFde,
    /// Something this walker does not handle.
    Unsupported,
}

/// DWARF register numbers of x86-64.
const RBP: u64 = 6;
const RSP: u64 = 7;
const RA: u64 = 16;

/// Largest distance from a stack pointer to the top of its thread's
/// stack this walker believes.
const MAX_STACK: usize = 1 << 30;

/// Walks from `r` (a frame whose instruction pointer is exact, not a
/// return address), writing instruction pointers into `out` after
/// leaving out `skip`; `None` if the walk met something it does not
/// handle. The walk is given again from a memo when nothing it would read
/// changed since it last ran (see `memo`). Returns the frames written and
/// a key, the same non-zero key only for the same frames (0: not
/// memoised). `me`: the calling thread's `pthread_self`.
pub(crate) fn walk_keyed(
    r: Regs,
    me: usize,
    out: &mut [usize],
    skip: usize,
) -> Option<(usize, u64)> {
    let top = stack_top(r.sp, me)?;
    let objects = forget_unloaded()?;
    let start = Start {
        ip: r.ip,
        sp: r.sp,
        bp: r.bp,
        top,
        objects,
        skip,
        room: out.len(),
    };
    memo::walk_memoised(start, me, out)
}

/// The walk of [`walk_keyed`], never memoised, keeping what was written
/// before it met something it does not handle: the frames it is sure of,
/// innermost first. `me`: the calling thread's `pthread_self`.
pub(crate) fn walk_partial(r: Regs, me: usize, out: &mut [usize], skip: usize) -> usize {
    let mut len = 0;
    if let Some(top) = stack_top(r.sp, me) {
        forget_unloaded();
        let _ = walk_into(r, top, out, skip, &mut len, &mut Unobserved);
    }
    len
}

/// The walk below `top`: `len` counts the frames written so far, also
/// when it gives up (`None`); `obs` sees every stack word read.
fn walk_into<O: Observe + ?Sized>(
    mut r: Regs,
    top: usize,
    out: &mut [usize],
    mut skip: usize,
    len: &mut usize,
    obs: &mut O,
) -> Option<()> {
    let mut exact = true;
    loop {
        if r.ip == 0 {
            return Some(());
        }
        if skip > 0 {
            skip -= 1;
        } else {
            let Some(slot) = out.get_mut(*len) else {
                return Some(());
            };
            *slot = r.ip;
            *len += 1;
        }
        // A return address may be one past its function's end: look up
        // the call instruction before it.
        let pc = if exact { r.ip } else { r.ip - 1 };
        exact = false;
        let rule = match rule_for(pc) {
            Lookup::Found(rule) => rule,
            Lookup::NoFde => return Some(()),
            Lookup::Unsupported => return None,
        };
        let Some(ra_off) = rule.ra else {
            return Some(());
        };
        if rule.cfa_bp {
            obs.used_bp();
        }
        let base = if rule.cfa_bp { r.bp } else { r.sp };
        let cfa = base.checked_add_signed(rule.cfa_off as isize)?;
        if cfa <= r.sp || cfa > top || cfa % 8 != 0 {
            return None;
        }
        let (at, ra) = read_stack(cfa, ra_off, r.sp, top)?;
        obs.read_ra(at, ra);
        let bp = match rule.bp {
            None => r.bp,
            Some(off) => {
                let (at, bp) = read_stack(cfa, off, r.sp, top)?;
                obs.read_bp(at, bp);
                bp
            }
        };
        r = Regs {
            ip: ra,
            sp: cfa,
            bp,
        };
    }
}

/// The address `cfa + off` and the word there, if it lies within
/// `[lo, top)`.
fn read_stack(cfa: usize, off: i64, lo: usize, top: usize) -> Option<(usize, usize)> {
    let at = cfa.checked_add_signed(off as isize)?;
    if at < lo || at.checked_add(8)? > top || at % 8 != 0 {
        return None;
    }
    // SAFETY: `[lo, top)` is the calling thread's stack from a live stack
    // pointer up to its top (stack_top), all mapped; the word is aligned.
    Some((at, unsafe { core::ptr::read_volatile(at as *const usize) }))
}

extern "C" {
    /// The main thread's stack pointer at the program's entry (glibc's
    /// dynamic loader): `argc`, with `argv` above it.
    static __libc_stack_end: *const c_void;
}

/// The top of the calling thread's stack, if `sp` is on it: glibc puts a
/// thread's descriptor (`pthread_self`) at the top of the stack it runs
/// on; the main thread's ends at `__libc_stack_end` (plus `argc` and
/// `argv[0]`, mapped above it). `None` on any other stack (a signal's
/// alternate stack, a coroutine's). `me`: the thread's `pthread_self`.
fn stack_top(sp: usize, me: usize) -> Option<usize> {
    if me > sp && me - sp < MAX_STACK {
        return Some(me);
    }
    // SAFETY: the loader sets it before any user code runs; read-only.
    let end = unsafe { __libc_stack_end } as usize;
    if end > sp && end - sp < MAX_STACK {
        return Some(end + 16);
    }
    None
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::cache::{pack, unpack};
    use super::eh_frame::decode;
    use super::*;

    #[test]
    fn rules_pack_and_unpack() {
        let pc = 0x5555_1234_5678;
        let r = Rule {
            cfa_bp: true,
            cfa_off: 16,
            ra: Some(-8),
            bp: Some(-16),
        };
        let w = pack(pc, &r).unwrap();
        assert_eq!(unpack(pc, w), Some(r));
        assert_eq!(unpack(pc + 4096, w), None);
        let end = Rule {
            cfa_bp: false,
            cfa_off: 8 * 4000,
            ra: None,
            bp: None,
        };
        assert_eq!(unpack(pc, pack(pc, &end).unwrap()), Some(end));
        assert_eq!(pack(pc, &Rule { cfa_off: 12, ..r }), None);
        assert_eq!(pack(pc, &Rule { ra: Some(-16), ..r }), None);
    }

    #[test]
    fn this_function_has_a_rule() {
        let here = this_function_has_a_rule as *const () as usize;
        assert!(matches!(decode(here + 1), Lookup::Found(_)));
        assert_eq!(decode(8), Lookup::NoFde);
    }
}
