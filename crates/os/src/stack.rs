//! Stack traces captured and printed without allocating, for reports made
//! from inside the allocator (guarded sampling) and for sampled profiles.
//!
//! # Capture
//! [`capture`] walks the calling thread's stack by the DWARF call-frame
//! tables (`.eh_frame`), so it works without frame pointers, which neither
//! Rust's release builds nor glibc keep. Two walkers, chosen with
//! [`set_walker`]:
//!
//! - [`Walker::Fast`] (the default) reads the tables itself and keeps each
//!   instruction's decoded rule in a fixed cache (`crate::unwind`): a
//!   stack seen before costs a table probe and a few loads per frame, and
//!   a capture repeating the last one of its thread (the same start, the
//!   same stack words at the addresses that walk read) is given that
//!   walk's frames without decoding, with a key that names them
//!   ([`capture_keyed`]). On a frame it does not handle (a DWARF
//!   expression, a signal frame) or a stack it cannot bound (an alternate
//!   signal stack) it hands the whole capture to the system walker.
//! - [`Walker::System`]: libgcc's `_Unwind_Backtrace`, which every Rust
//!   program and glibc already carries, which searches and decodes the
//!   tables again at every frame (measured: docs/performance.md).
//!
//! Neither allocates on the paths taken here: `dl_iterate_phdr` finds each
//! object's `.eh_frame_hdr` table (a recursive lock in the dynamic loader,
//! no `malloc`).
//!
//! # Re-entry
//! A capture that reaches the allocator again on the same thread (an
//! unwinder that allocates, a signal arriving in the middle of one) must
//! not unwind again: the unwinder is not re-entrant. Each capturing thread
//! holds an entry of a small table of thread identities while it unwinds,
//! and a thread that finds itself in the table gets an empty trace. A
//! thread that finds the table full (more than [`MAX_CAPTURING`] threads
//! unwinding at once) gets an empty trace too: a report without a trace,
//! never a deadlock. A word of bits says which entries are held, so the
//! check reads those only (usually none): scanning all 64 entries was the
//! largest single cost of a capture repeated from the walker's memo.
//!
//! # Printing
//! [`write_trace`] writes one line per frame to stderr: the address, the
//! symbol `dladdr` finds for it (only exported symbols: a stripped or
//! non-exported function shows none) and the object it lies in with the
//! offset inside it, which `addr2line -e <object> <offset>` resolves to a
//! source line.
//!
//! # Invariants
//! - Nothing here allocates, panics, or formats with `core::fmt`.
//! - Both walkers give the same frames: the first is the caller's call of
//!   [`capture_with`] (the same function, another address), then the same
//!   return addresses.
//! - A thread's entry in the re-entry table is held only while it unwinds:
//!   its bit in `HELD` is set before its identity is written and the walk
//!   starts, and cleared after the walk and the entry's reset.

use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::{compiler_fence, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::report::{write_stderr, Dec, Hex};

/// The most threads that may unwind at the same moment; more get an empty
/// trace.
pub const MAX_CAPTURING: usize = 64;

/// Threads unwinding now, by `pthread_self` (0: a free entry).
static CAPTURING: [AtomicUsize; MAX_CAPTURING] = [const { AtomicUsize::new(0) }; MAX_CAPTURING];

const _: () = assert!(MAX_CAPTURING <= 64);

/// Bit `i`: entry `i` of [`CAPTURING`] is held.
static HELD: AtomicU64 = AtomicU64::new(0);

/// An opaque `_Unwind_Context`.
#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

/// `_URC_NO_REASON`: go on to the next frame.
const URC_NO_REASON: c_int = 0;
/// `_URC_NORMAL_STOP`: stop (any other value stops the walk).
const URC_NORMAL_STOP: c_int = 4;

extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

/// Where the walk writes.
struct Walk<'a> {
    out: &'a mut [usize],
    len: usize,
    skip: usize,
}

extern "C" fn on_frame(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed to
    // `_Unwind_Backtrace`, alive and borrowed by nobody else for the walk.
    let walk = unsafe { &mut *(arg as *mut Walk<'_>) };
    // SAFETY: `ctx` is the unwinder's context for this frame.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    if walk.skip > 0 {
        walk.skip -= 1;
        return URC_NO_REASON;
    }
    match walk.out.get_mut(walk.len) {
        Some(slot) => {
            *slot = ip;
            walk.len += 1;
            URC_NO_REASON
        }
        None => URC_NORMAL_STOP,
    }
}

/// Holds this thread's entry in [`CAPTURING`] while it unwinds.
struct Capturing(usize);

impl Capturing {
    /// Claims an entry for the calling thread, `me` (its `pthread_self`);
    /// `None` if it already holds one (re-entry) or none is free.
    fn enter(me: usize) -> Option<Capturing> {
        let mut held = HELD.load(Ordering::Relaxed);
        // Only this thread stores `me`, and it does so after setting its
        // bit and clears it before clearing the bit, so a scan of the
        // held entries that misses it means it holds none, whatever other
        // threads do meanwhile. (Between its bit and its identity it has
        // not started to walk: a handler walking then is not a re-entry.)
        let mut bits = held;
        while bits != 0 {
            if CAPTURING[bits.trailing_zeros() as usize].load(Ordering::Relaxed) == me {
                return None;
            }
            bits &= bits - 1;
        }
        loop {
            let i = (!held).trailing_zeros() as usize;
            if i >= MAX_CAPTURING {
                return None;
            }
            match HELD.compare_exchange_weak(
                held,
                held | 1 << i,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    CAPTURING[i].store(me, Ordering::Relaxed);
                    // A signal handler on this thread must see the entry
                    // before anything of the walk happens.
                    compiler_fence(Ordering::SeqCst);
                    return Some(Capturing(i));
                }
                Err(now) => held = now,
            }
        }
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURING[self.0].store(0, Ordering::Release);
        HELD.fetch_and(!(1 << self.0), Ordering::Release);
    }
}

/// The calling thread's `pthread_self`.
fn this_thread() -> usize {
    // SAFETY: pthread_self has no preconditions and never fails.
    unsafe { libc::pthread_self() as usize }
}

/// How [`capture`] walks the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walker {
    /// strata's own reading of the call-frame tables, with a cache of
    /// decoded rules; the system walker for what it does not handle.
    Fast,
    /// libgcc's `_Unwind_Backtrace`.
    System,
}

/// The walker [`capture`] uses (0: fast, 1: system).
static WALKER: AtomicU8 = AtomicU8::new(0);

/// Chooses the walker of later captures (`STRATA_STACK_WALKER=system` at
/// start for the system's).
pub fn set_walker(w: Walker) {
    WALKER.store(w as u8, Ordering::Relaxed);
}

/// Captures the fast walker handed to the system's.
static FALLBACKS: AtomicUsize = AtomicUsize::new(0);

/// How many captures the fast walker handed to the system's since the
/// start.
pub fn fast_walk_fallbacks() -> usize {
    FALLBACKS.load(Ordering::Relaxed)
}

/// The walker [`capture`] uses.
pub fn walker() -> Walker {
    if WALKER.load(Ordering::Relaxed) == Walker::System as u8 {
        Walker::System
    } else {
        Walker::Fast
    }
}

/// Writes the return addresses of the calling thread's stack into `out`,
/// innermost first, leaving out the first `skip` frames (`capture` itself
/// is the first); returns how many were written. Zero when the thread is
/// already capturing (re-entry from inside the unwinder or a signal
/// handler) or when too many threads capture at once.
#[inline(never)]
pub fn capture(out: &mut [usize], skip: usize) -> usize {
    // capture_with's own frame is left out: `capture` comes first.
    core::hint::black_box(capture_with(walker(), out, skip + 1))
}

/// The memos the fast walker keeps: the keys of [`capture_keyed`] taken
/// modulo this say which memo gave them, so a table of this many entries
/// indexed so keeps the latest key of every memo.
pub const CAPTURE_MEMOS: usize = crate::unwind::MEMOS_IN_ALL;

/// [`capture`], with a key for the frames written: two captures that
/// return the same non-zero key wrote the same frames (so a caller can
/// keep what it derived from them, such as an interned stack). The fast
/// walker gives a key when it repeats or records a walk of its memo
/// (`crate::unwind`); 0 otherwise.
#[inline(never)]
pub fn capture_keyed(out: &mut [usize], skip: usize) -> (usize, u64) {
    core::hint::black_box(capture_keyed_with(walker(), out, skip + 1))
}

/// [`capture`] with a given walker; its first frame is an address inside
/// `capture_with` itself.
#[inline(never)]
pub fn capture_with(walker: Walker, out: &mut [usize], skip: usize) -> usize {
    capture_from_here(walker, out, skip).0
}

/// [`capture_keyed`] with a given walker; its first frame is an address
/// inside `capture_keyed_with` itself.
#[inline(never)]
pub fn capture_keyed_with(walker: Walker, out: &mut [usize], skip: usize) -> (usize, u64) {
    capture_from_here(walker, out, skip)
}

/// The capture, inlined into its caller, where its first frame is.
#[inline(always)]
fn capture_from_here(walker: Walker, out: &mut [usize], skip: usize) -> (usize, u64) {
    let me = this_thread();
    let Some(_entry) = Capturing::enter(me) else {
        return (0, 0);
    };
    #[cfg(target_arch = "x86_64")]
    if walker == Walker::Fast {
        let (ip, sp, bp): (usize, usize, usize);
        // SAFETY: copies three registers; reads and writes no memory.
        unsafe {
            core::arch::asm!(
                "lea {ip}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                ip = out(reg) ip,
                sp = out(reg) sp,
                bp = out(reg) bp,
                options(nomem, nostack, preserves_flags),
            )
        };
        let regs = crate::unwind::Regs { ip, sp, bp };
        if let Some(found) = crate::unwind::walk_keyed(regs, me, out, skip) {
            return found;
        }
        FALLBACKS.fetch_add(1, Ordering::Relaxed);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = walker;
    let mut walk = Walk { out, len: 0, skip };
    // SAFETY: the callback matches the unwinder's signature and reads only
    // the `Walk` passed with it, which outlives the call.
    unsafe { _Unwind_Backtrace(on_frame, &mut walk as *mut Walk<'_> as *mut c_void) };
    (walk.len, 0)
}

/// The stack of a frame a signal interrupted, from the registers its
/// context saved: `ip` (the faulting instruction, which becomes the first
/// frame, exact), `sp` and `bp`. Only the fast walker runs here, never
/// libgcc's, which was not made for a signal handler on a small stack;
/// where it meets a frame it does not handle the trace stops there, with
/// the frames before it. Empty on a platform without the fast walker,
/// when this thread was capturing already (the fault hit the walker), or
/// when the alternate signal stack it runs on has too little room left
/// for a walk.
pub fn capture_interrupted(ip: usize, sp: usize, bp: usize, out: &mut [usize]) -> usize {
    if signal_stack_room().is_some_and(|room| room < WALK_STACK) {
        return 0;
    }
    let me = this_thread();
    let Some(_entry) = Capturing::enter(me) else {
        return 0;
    };
    #[cfg(target_arch = "x86_64")]
    {
        crate::unwind::walk_partial(crate::unwind::Regs { ip, sp, bp }, me, out, 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ip, sp, bp, me, out);
        0
    }
}

/// Stack the fast walker may use: two to three times what a walk that
/// decodes its rules takes (measurements: docs/performance.md, "Stack
/// walker's room").
const WALK_STACK: usize = if cfg!(debug_assertions) {
    12 << 10
} else {
    4 << 10
};

/// Bytes left below this frame on the alternate signal stack, if the
/// thread runs on one (a handler's `SA_ONSTACK`); `None` on its own stack.
/// A walk that overran the alternate stack would fault inside the handler,
/// and the report would be lost with the program.
fn signal_stack_room() -> Option<usize> {
    // SAFETY: a zeroed stack_t is a valid out-parameter; a null `ss`
    // changes nothing.
    let mut ss: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaltstack(core::ptr::null(), &mut ss) } != 0
        || ss.ss_flags & libc::SS_ONSTACK == 0
    {
        return None;
    }
    let here = &ss as *const libc::stack_t as usize;
    Some(here.saturating_sub(ss.ss_sp as usize))
}

/// Writes `frames` (from [`capture`]) to stderr, one line each:
///
/// ```text
///     #0 0x55d0c0a1b2c3 main+0x53 (/usr/bin/prog+0x1b2c3)
/// ```
///
/// `indent` starts every line. The symbol is left out where `dladdr` knows
/// none; the object and offset are left out where it knows no object.
pub fn write_trace(indent: &[u8], frames: &[usize]) {
    write_frames(indent, frames, false);
}

/// [`write_trace`] for a trace whose first frame is the address of a
/// faulting instruction (from a signal's context), not a return address.
pub fn write_fault_trace(indent: &[u8], frames: &[usize]) {
    write_frames(indent, frames, true);
}

fn write_frames(indent: &[u8], frames: &[usize], first_exact: bool) {
    if frames.is_empty() {
        write_stderr(&[indent, b"(no stack trace)\n"]);
    }
    for (i, &pc) in frames.iter().enumerate() {
        let n = Dec::new(i as u64);
        let at = Hex::new(pc);
        write_stderr(&[indent, b"#", n.as_bytes(), b" ", at.as_bytes()]);
        // A return address may be one past the last instruction of its
        // function (a call to a function that does not return): the byte
        // before it is inside the call. A faulting instruction's address
        // is its own (it may be its function's first byte).
        write_symbol(
            pc,
            if i == 0 && first_exact {
                pc
            } else {
                pc.saturating_sub(1)
            },
        );
        write_stderr(&[b"\n"]);
    }
}

/// Writes ` symbol+0xoff (object+0xoff)` for `pc`, as far as `dladdr`
/// knows the code at `lookup`.
fn write_symbol(pc: usize, lookup: usize) {
    // SAFETY: a zeroed Dl_info is a valid value for dladdr to fill.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr reads the loader's tables and writes into `info`; it
    // does not allocate.
    if unsafe { libc::dladdr(lookup as *const c_void, &mut info) } == 0 {
        return;
    }
    if !info.dli_sname.is_null() && !info.dli_saddr.is_null() {
        // SAFETY: dladdr's names are NUL-terminated strings of the loaded
        // object, valid while it stays loaded.
        let name = unsafe { CStr::from_ptr(info.dli_sname) }.to_bytes();
        let off = Hex::new(pc.wrapping_sub(info.dli_saddr as usize));
        write_stderr(&[b" ", name, b"+", off.as_bytes()]);
    }
    if !info.dli_fname.is_null() {
        // SAFETY: as above.
        let file = unsafe { CStr::from_ptr(info.dli_fname) }.to_bytes();
        let off = Hex::new(pc.wrapping_sub(info.dli_fbase as usize));
        write_stderr(&[b" (", file, b"+", off.as_bytes(), b")"]);
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;

    #[inline(never)]
    fn inner(out: &mut [usize]) -> usize {
        core::hint::black_box(capture(out, 0))
    }

    #[test]
    fn captures_the_callers() {
        let mut frames = [0usize; 64];
        let n = inner(&mut frames);
        assert!(n >= 3, "only {n} frames");
        // Every frame is an address in some loaded object.
        for &pc in &frames[..n] {
            // SAFETY: a zeroed Dl_info is a valid value for dladdr to fill.
            let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
            // SAFETY: as in write_symbol.
            assert_ne!(unsafe { libc::dladdr(pc as *const c_void, &mut info) }, 0);
        }
        // This test's own function is among them.
        let me = captures_the_callers as *const () as usize;
        assert!(frames[..n].iter().any(|&pc| pc > me && pc < me + 4096));
    }

    #[test]
    fn skips_and_truncates() {
        let mut all = [0usize; 64];
        let n = capture(&mut all, 0);
        let mut few = [0usize; 2];
        assert_eq!(capture(&mut few, 0), 2.min(n));
        let mut skipped = [0usize; 64];
        let m = capture(&mut skipped, 1);
        assert_eq!(m + 1, n);
    }

    #[test]
    fn a_thread_already_capturing_gets_nothing() {
        let held = Capturing::enter(this_thread()).expect("an entry");
        let mut frames = [0usize; 8];
        assert_eq!(capture(&mut frames, 0), 0);
        drop(held);
        assert!(capture(&mut frames, 0) > 0);
    }

    #[inline(never)]
    fn leaf(w: Walker, out: &mut [usize]) -> usize {
        core::hint::black_box(capture_with(w, out, 0))
    }

    #[inline(never)]
    fn middle(w: Walker, out: &mut [usize]) -> usize {
        core::hint::black_box(leaf(w, out)) + core::hint::black_box(0)
    }

    #[inline(never)]
    fn outer(w: Walker, out: &mut [usize]) -> usize {
        core::hint::black_box(middle(w, out)) + core::hint::black_box(0)
    }

    /// The two walkers' frames of one call chain: the first (inside
    /// capture_with, at different places) left out.
    fn both(f: fn(Walker, &mut [usize]) -> usize) -> (std::vec::Vec<usize>, std::vec::Vec<usize>) {
        let mut fast = [0usize; 64];
        let mut system = [0usize; 64];
        let before = fast_walk_fallbacks();
        let n = f(Walker::Fast, &mut fast);
        let m = f(Walker::System, &mut system);
        assert_eq!(fast_walk_fallbacks(), before, "the fast walk gave up");
        (fast[1..n].to_vec(), system[1..m].to_vec())
    }

    #[test]
    fn walkers_agree() {
        // Twice: the second from the cache.
        for _ in 0..2 {
            let (fast, system) = both(outer);
            assert!(fast.len() >= 5, "only {} frames", fast.len());
            assert_eq!(fast.len(), system.len());
            // leaf, middle, outer, then `both`, which calls them from two
            // places, then the same callers.
            assert_eq!(fast[..3], system[..3]);
            assert_eq!(fast[4..], system[4..]);
        }
    }

    #[inline(never)]
    fn recurse(depth: usize, w: Walker, out: &mut [usize]) -> usize {
        if depth == 0 {
            return core::hint::black_box(capture_with(w, out, 0));
        }
        core::hint::black_box(recurse(core::hint::black_box(depth - 1), w, out))
            + core::hint::black_box(0)
    }

    #[test]
    fn a_deep_stack_stops_at_the_buffer() {
        let deep = |w: Walker, out: &mut [usize]| recurse(200, w, out);
        let mut fast = [0usize; 64];
        let mut system = [0usize; 64];
        assert_eq!(deep(Walker::Fast, &mut fast), 64);
        assert_eq!(deep(Walker::System, &mut system), 64);
        assert_eq!(fast[1..], system[1..]);
    }

    #[test]
    fn threads_capture_at_once() {
        let handles: std::vec::Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut frames = [0usize; 32];
                    (0..200).all(|_| capture(&mut frames, 0) > 0)
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    }
}
