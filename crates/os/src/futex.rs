//! Sleeping on a 32-bit word until another thread wakes it (`FUTEX_WAIT`,
//! `FUTEX_WAKE`, process-private): what a lock needs from the kernel to
//! wait without spinning. Spurious returns are allowed; callers loop.

use core::sync::atomic::AtomicU32;

/// Sleeps while `word` holds `expected` (may return spuriously).
pub fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT reads the 32-bit word at a valid, aligned address
    // and sleeps only while it still equals `expected`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one thread sleeping on `word`.
pub fn wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}
