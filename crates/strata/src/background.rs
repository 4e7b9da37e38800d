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
//! never allocates itself.

use crate::global::pages;
use crate::sync::{AtomicBool, Ordering};

static STARTED: AtomicBool = AtomicBool::new(false);

/// Starts the thread once. Returns whether it runs.
pub(crate) fn start() -> bool {
    if STARTED.swap(true, Ordering::AcqRel) {
        return true;
    }
    // SAFETY: pthread_create with a valid start routine and no argument; the
    // attributes object is initialised and destroyed here.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        // A small stack: the loop needs almost none.
        libc::pthread_attr_setstacksize(&mut attr, 64 * 1024);
        let mut tid: libc::pthread_t = core::mem::zeroed();
        let rc = libc::pthread_create(&mut tid, &attr, run, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            STARTED.store(false, Ordering::Release);
            return false;
        }
    }
    crate::config::state::set_background(true);
    true
}

extern "C" fn run(_: *mut libc::c_void) -> *mut libc::c_void {
    loop {
        let ms = (pages().decay_ms() / 4).clamp(10, 1000);
        let ts = libc::timespec {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: nanosleep reads the request and may write the remainder.
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
        pages().tick();
    }
}
