//! The optional background release thread.
//!
//! Decay normally runs on the allocation paths ([`strata_pageheap::PageHeap::tick`]),
//! so a program that stops allocating keeps its free memory resident until
//! it allocates again. A program that wants its idle memory returned anyway
//! can start this thread (`STRATA_BACKGROUND_RELEASE=1` or
//! [`crate::start_background_release`]): it wakes every quarter of the decay
//! delay (at least every 10 ms, at most every second) and runs a decay pass.
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

use crate::layers::Pages;
use crate::sync::statics::{AtomicU8, Ordering};

const OFF: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(OFF);

/// Starts the thread, ticking `pages`, unless it runs. Returns whether it
/// runs.
pub(crate) fn start(pages: &'static Pages) -> bool {
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
    let arg = pages as *const Pages as *mut libc::c_void;
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
    // SAFETY: `start` passes the process-wide page heap, a 'static.
    let pages = unsafe { &*(arg as *const Pages) };
    // A name for ps, top and debuggers (15 bytes at most).
    // SAFETY: a NUL-terminated name for this thread.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"strata-release".as_ptr()) };
    loop {
        let ms = (pages.decay_ms() / 4).clamp(10, 1000);
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
        pages.tick();
    }
}
