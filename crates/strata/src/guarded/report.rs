//! Reports about guarded blocks: a bad free or overwritten bytes found on
//! free ([`bad_use`]), and faults in the pool ([`on_fault`], shown every
//! `SIGSEGV`/`SIGBUS` first by `strata_os::fault`).
//!
//! A report names strata, the address, what went wrong, the block (its
//! address and size) and the stacks that allocated and freed it, captured
//! when that happened. The fault reporter also shows the faulting
//! thread's stack, walked from the registers the signal's context saved
//! by strata's own walker only (`strata_os::stack::capture_interrupted`):
//! it runs on whatever signal stack the thread has (Rust's are a few KiB),
//! where libgcc's walker could call into the dynamic loader for the first
//! time (lazy binding of its calls saves the whole vector state). Where
//! the walk cannot go on, the trace stops; the faulting instruction is
//! always its first frame.
//!
//! # Invariants
//! - Nothing here allocates, takes a lock or formats with `core::fmt`.

use strata_os::fault::{install_fault_reporter, Fault};
use strata_os::stack::{capture_interrupted, write_fault_trace, write_trace};
use strata_os::{write_stderr, Dec, Hex};

use super::pool::{meta, pool, Meta, FREED, LIVE, SLOTS};
use crate::sync::statics::Ordering;

/// Installs the fault reporter (with the pool's reservation).
pub(super) fn install() {
    install_fault_reporter(on_fault);
}

/// A bad use of slot `i`'s block found outside a fault (a free): `what`
/// at `p`, then the block and its stacks.
pub(super) fn bad_use(p: usize, i: usize, what: &[u8]) {
    let at = Hex::new(p);
    write_stderr(&[
        b"strata: guarded block: ",
        what,
        b" at ",
        at.as_bytes(),
        b"\n",
    ]);
    // SAFETY: i < SLOTS; a record of the static table.
    describe(unsafe { &*meta(i) });
}

/// The block, then the stacks of its allocation and (if freed) its free.
fn describe(m: &Meta) {
    let addr = Hex::new(m.addr);
    let size = Dec::new(m.size as u64);
    let state: &[u8] = match m.state.load(Ordering::Acquire) {
        LIVE => b"live",
        FREED => b"freed",
        _ => b"never used",
    };
    write_stderr(&[
        b"strata: the block: ",
        size.as_bytes(),
        b" bytes at ",
        addr.as_bytes(),
        b", ",
        state,
        b"\n",
    ]);
    let tid = Dec::new(u64::from(m.alloc_tid));
    write_stderr(&[b"strata: allocated by thread ", tid.as_bytes(), b" at:\n"]);
    write_trace(b"    ", &m.alloc[..m.alloc_depth.min(m.alloc.len())]);
    if m.state.load(Ordering::Acquire) == FREED {
        let tid = Dec::new(u64::from(m.free_tid));
        write_stderr(&[b"strata: freed by thread ", tid.as_bytes(), b" at:\n"]);
        write_trace(b"    ", &m.free[..m.free_depth.min(m.free.len())]);
    }
}

/// A fault at `addr`: whether it is the pool's (and reported).
fn on_fault(f: &Fault) -> bool {
    let Some((base, len, page)) = pool() else {
        return false;
    };
    let off = f.addr.wrapping_sub(base);
    if off >= len {
        return false;
    }
    let n = off / page;
    let (i, what): (usize, &[u8]) = if n % 2 == 1 {
        // A slot's own page faults only while it is inaccessible: freed
        // (or never used).
        (n / 2, b"use after free")
    } else {
        // A guard page: the block nearest to it on either side.
        let left = (n / 2).checked_sub(1);
        let right = (n / 2 < SLOTS).then_some(n / 2);
        let distance = |i: Option<usize>| {
            i.and_then(|i| {
                // SAFETY: i < SLOTS; read without the lock (module docs).
                let m = unsafe { &*meta(i) };
                if m.state.load(Ordering::Acquire) == super::pool::UNUSED {
                    return None;
                }
                Some((
                    i,
                    m.addr
                        .abs_diff(f.addr)
                        .min((m.addr + m.size).abs_diff(f.addr)),
                ))
            })
        };
        match (distance(left), distance(right)) {
            (Some((l, dl)), Some((_, dr))) if dl <= dr => (l, b"heap overflow"),
            (_, Some((r, _))) => (r, b"heap underflow"),
            (Some((l, _)), None) => (l, b"heap overflow"),
            (None, None) => (n / 2, b"access to a guard page"),
        }
    };
    let i = i.min(SLOTS - 1);
    // SAFETY: i < SLOTS.
    let m = unsafe { &*meta(i) };
    let what = if m.state.load(Ordering::Acquire) == FREED && n % 2 == 0 {
        // Past a freed block, into the guard: still a use after free.
        &b"use after free (past the end of a freed block)"[..]
    } else {
        what
    };
    let at = Hex::new(f.addr);
    let (rel, dist): (&[u8], usize) = if f.addr >= m.addr + m.size {
        (b" bytes past the end of", f.addr - (m.addr + m.size))
    } else if f.addr < m.addr {
        (b" bytes before the start of", m.addr - f.addr)
    } else {
        (b" bytes into", f.addr - m.addr)
    };
    let dist = Dec::new(dist as u64);
    write_stderr(&[
        b"strata: guarded block: ",
        what,
        b": ",
        f.access.word(),
        b" at ",
        at.as_bytes(),
        b", ",
        dist.as_bytes(),
        rel,
        b" the block\n",
    ]);
    describe(m);
    if f.pc != 0 {
        // Walked from the registers the kernel saved, by strata's own
        // walker only (module docs); at least the faulting instruction.
        let mut frames = [0usize; FAULT_FRAMES];
        let n = capture_interrupted(f.pc, f.sp, f.bp, &mut frames).max(1);
        frames[0] = f.pc;
        write_stderr(&[b"strata: the faulting access:\n"]);
        write_fault_trace(b"    ", &frames[..n]);
    }
    true
}

/// Frames of the faulting thread's stack a fault report shows at most.
const FAULT_FRAMES: usize = 32;
