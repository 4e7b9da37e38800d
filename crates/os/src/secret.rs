//! A per-process random value (free-list link encoding and free tags in the
//! checked build), read once from the 16 random bytes the kernel gives every
//! process (`AT_RANDOM` in the auxiliary vector): no system call, no
//! allocation.

use core::sync::atomic::{AtomicUsize, Ordering};

static SECRET: AtomicUsize = AtomicUsize::new(0);

/// The process's secret (never zero).
#[inline(always)]
pub fn process_secret() -> usize {
    let s = SECRET.load(Ordering::Relaxed);
    if s != 0 {
        return s;
    }
    init()
}

#[cold]
fn init() -> usize {
    // SAFETY: getauxval has no preconditions; AT_RANDOM, when present, points
    // to 16 readable bytes for the life of the process.
    let r = unsafe {
        let p = libc::getauxval(libc::AT_RANDOM) as *const usize;
        if p.is_null() {
            0
        } else {
            p.read_unaligned() ^ p.add(1).read_unaligned().rotate_left(17)
        }
    };
    // Never zero (zero means "not read yet"); mixed with a constant in case
    // the auxiliary vector has no AT_RANDOM. The top bit is always set, so
    // that a plain address written over an encoded link (any user-space
    // address has it clear) always decodes to an impossible one.
    let s = (r ^ 0x5bd1_e995_9e37_79b9) | 1 | (1 << (usize::BITS - 1));
    SECRET.store(s, Ordering::Relaxed);
    s
}
