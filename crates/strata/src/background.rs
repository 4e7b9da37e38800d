//! The optional background release thread.
//!
//! Decay normally runs on the allocation paths ([`strata_pageheap::PageHeap::tick`]),
//! so a program that stops allocating keeps its free memory resident until
//! it allocates again. A program that wants its idle memory returned anyway
//! can start this thread (`STRATA_BACKGROUND_RELEASE=1` or
//! [`crate::start_background_release`]): it wakes every quarter of the decay
//! delay (at least every 10 ms, at most every second) and ticks the central
//! layer ([`strata_central::Central::tick`]) as an allocation would: a decay
//! pass over the page heap and, on the same beat, the transfer caches give
//! back the batches that sat unused since the previous pass, so that the
//! spans those batches pinned return to the page heap and decay with it.
//! Without the second half, a program that freed a burst and then made no
//! call at all kept what its transfer caches parked, and the spans under it,
//! for as long as it stayed quiet.
//!
//! On the same beat it gives back the caches that exited threads left for
//! the threads to come (`strata_threadcache`'s retired caches) once none
//! took them within the idle interval.
//!
//! What the thread cannot reach: a live thread cache belongs to its thread,
//! which alone gives back what it holds (at its own periodic check or its
//! exit).
//!
//! # Locks
//! A tick takes what an allocation's tick takes, one lock at a time and
//! never one across a system call: a class's transfer-cache lock to read
//! what sat idle and to pop one batch, its central-list lock to put that
//! batch back into its spans, the page heap's lock for each emptied span
//! and for each batch of spans a release takes out (`madvise` runs outside
//! it). So an allocation that meets the thread here waits at most for one
//! batch to move, never for the whole pass.
//!
//! It is a raw pthread, not a `std::thread`: creating it must not allocate
//! through the global allocator (this code may run inside `malloc`), and it
//! never allocates itself. It runs with every signal blocked, so it never
//! takes a signal meant for the program. A `fork` child has no such thread;
//! it may start one with [`crate::start_background_release`].
//!
//! # Stopping
//! [`crate::stop_background_release`] asks the thread to end; it does at
//! its next wake-up. One word says where things stand:
//!
//! ```text
//!   OFF ──start──▶ RUNNING ──stop──▶ STOPPING ──thread wakes──▶ OFF (thread ends)
//!                     ▲                  │
//!                     └──────start───────┘  (the thread sees RUNNING and goes on)
//! ```
//!
//! # Invariants
//! - At most one thread runs the loop: one is created only on the move from
//!   OFF, and a thread ends only on its own move from STOPPING to OFF.

use strata_central::Central;

use crate::layers::Pages;
use crate::sync::statics::{AtomicU8, Ordering};

const OFF: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(OFF);

/// Starts the thread, ticking `central` (and the page heap under it),
/// unless it runs. Returns whether it runs.
pub(crate) fn start(central: &'static Central<Pages>) -> bool {
    loop {
        match STATE.compare_exchange(OFF, RUNNING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(RUNNING) => return true,
            // The thread has not seen the stop yet: it goes on.
            Err(_) => {
                if STATE
                    .compare_exchange(STOPPING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    crate::config::state::set_background(true);
                    return true;
                }
            }
        }
    }
    let arg = central as *const Central<Pages> as *mut libc::c_void;
    if !spawn_quiet(run, arg, 64 * 1024) {
        STATE.store(OFF, Ordering::Release);
        crate::config::state::set_background(false);
        return false;
    }
    crate::config::state::set_background(true);
    true
}

/// Starts a detached raw pthread running `run(arg)` with a stack of
/// `stack` bytes and every signal blocked (so it never takes a signal
/// meant for the program: one that blocks a signal and waits for it with
/// `sigwait` would otherwise see it delivered here). Creating it does not
/// allocate through the global allocator. Returns whether it runs.
pub(crate) fn spawn_quiet(
    run: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
    arg: *mut libc::c_void,
    stack: usize,
) -> bool {
    // The thread will take strata's locks.
    crate::global::register_fork_handlers();
    // SAFETY: pthread_create with a valid start routine; the attributes
    // object is initialised and destroyed here; the signal mask is
    // restored after the thread inherited the full one.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, stack);
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut tid: libc::pthread_t = core::mem::zeroed();
        let rc = libc::pthread_create(&mut tid, &attr, run, arg);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        rc == 0
    }
}

/// Asks the thread to end at its next wake-up.
pub(crate) fn stop() {
    let _ = STATE.compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire);
    crate::config::state::set_background(false);
}

/// In the child of a `fork` the thread does not exist: allow
/// [`crate::start_background_release`] to start a new one there.
pub(crate) fn forget_after_fork() {
    STATE.store(OFF, Ordering::Release);
    crate::config::state::set_background(false);
}

extern "C" fn run(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `start` passes the process-wide central layer, a 'static.
    let central = unsafe { &*(arg as *const Central<Pages>) };
    // A name for ps, top and debuggers (15 bytes at most).
    // SAFETY: a NUL-terminated name for this thread.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"strata-release".as_ptr()) };
    loop {
        let ms = (central.pages().decay_ms() / 4).clamp(10, 1000);
        let ts = libc::timespec {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: nanosleep reads the request and may write the remainder.
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
        if STATE
            .compare_exchange(STOPPING, OFF, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return core::ptr::null_mut();
        }
        central.tick();
        crate::global::HEAP.reap_retired();
    }
}
