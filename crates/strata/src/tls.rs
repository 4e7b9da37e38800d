//! This thread's [`Slot`]: where the fast paths find the thread's cache.
//!
//! On x86-64 Linux the slot is one word of *initial-exec* thread-local
//! storage, defined in assembly: reaching it is a load of its offset and an
//! add of the thread pointer (`fs:0`), in an executable and in a shared
//! library alike. A Rust `thread_local!` in a shared library (strata-malloc
//! under `LD_PRELOAD`) is general-dynamic: every access called
//! `__tls_get_addr`, 22 of the 124 instructions of a `malloc`/`free` pair.
//! Initial-exec TLS in a shared object marks it `DF_STATIC_TLS`: the loader
//! gives it room in the static TLS block, always available at program start
//! (`LD_PRELOAD`, linked libraries) and taken from the small surplus glibc
//! keeps for `dlopen` otherwise; jemalloc and mimalloc build their shared
//! libraries the same way.
//!
//! Elsewhere the slot is a const-initialised `thread_local!` (no destructor).
//! Either way [`this_thread`] gives what the thread caches read it through
//! ([`strata_threadcache::ThreadSlot`]).
//!
//! # Invariants
//! - The word starts as the address of `strata_threadcache::SENTINELS`, the
//!   initial value of a [`Slot`] (`Slot::INITIAL_IS_SENTINELS` checks the
//!   layout at compile time; a test checks the value).
//! - The reference handed to the closure is used on this thread only.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use core::marker::PhantomData;

    use strata_threadcache::{Slot, ThreadCache, ThreadSlot};

    // The slot word: 8 bytes of .tdata, relocated to the sentinels' address
    // in the TLS image every thread is initialised from. Hidden: never
    // exported from a shared library.
    core::arch::global_asm!(
        ".pushsection .tdata.strata_thread_slot,\"awT\",@progbits",
        ".p2align 3",
        ".globl strata_thread_slot",
        ".hidden strata_thread_slot",
        ".type strata_thread_slot, @object",
        ".size strata_thread_slot, 8",
        "strata_thread_slot:",
        ".quad {sentinels}",
        ".popsection",
        sentinels = sym strata_threadcache::SENTINELS,
    );

    /// This thread's slot, as a token the thread caches read through.
    #[derive(Clone, Copy)]
    pub(crate) struct ThisThread(PhantomData<*const ()>);

    /// A token for this thread's slot (not `Send`: it names the calling
    /// thread's slot wherever it is used).
    #[inline(always)]
    pub(crate) fn this_thread() -> ThisThread {
        #[allow(clippy::let_unit_value)]
        let () = Slot::INITIAL_IS_SENTINELS;
        ThisThread(PhantomData)
    }

    // SAFETY: `word` reads the calling thread's slot word and `slot` returns
    // that same word as a Slot; the token is not Send, and `&Slot` is not
    // Send either (a Cell is not Sync), so neither leaves the thread.
    unsafe impl ThreadSlot<'static> for ThisThread {
        #[inline(always)]
        fn word(self) -> *mut ThreadCache {
            let w: usize;
            // SAFETY: the slot's offset from the thread pointer comes from
            // the GOT (initial-exec model; an executable's linker turns it
            // into a constant), and fs-relative addressing reads this
            // thread's word: the same two instructions as a thread_local!
            // in an executable. No stack, no writes.
            unsafe {
                core::arch::asm!(
                    "mov {w}, qword ptr [rip + strata_thread_slot@GOTTPOFF]",
                    "mov {w}, qword ptr fs:[{w}]",
                    w = out(reg) w,
                    options(readonly, nostack, preserves_flags),
                );
            }
            w as *mut ThreadCache
        }

        #[inline(always)]
        fn slot(self) -> &'static Slot {
            let addr: usize;
            // SAFETY: as above, plus the thread pointer, which x86-64 Linux
            // keeps at fs:0: the word's address.
            unsafe {
                core::arch::asm!(
                    "mov {a}, qword ptr [rip + strata_thread_slot@GOTTPOFF]",
                    "add {a}, qword ptr fs:[0]",
                    a = out(reg) addr,
                    options(pure, readonly, nostack),
                );
            }
            // SAFETY: this thread's slot word: live for the thread's
            // lifetime, 8-byte aligned, a valid Slot (repr(transparent)
            // cell of a pointer, initialised to the sentinels).
            unsafe { &*(addr as *const Slot) }
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use strata_threadcache::Slot;

    std::thread_local! {
        static SLOT: Slot = const { Slot::new() };
    }

    /// This thread's slot (the `thread_local!`'s, valid while the thread
    /// runs; `&Slot` is not `Send`).
    #[inline(always)]
    pub(crate) fn this_thread() -> &'static Slot {
        // SAFETY: a const-initialised thread-local without destructor stays
        // valid until the thread's end, and the reference cannot leave the
        // thread.
        SLOT.with(|s| unsafe { &*(s as *const Slot) })
    }
}

pub(crate) use imp::this_thread;

#[cfg(test)]
mod tests {
    use strata_threadcache::{Slot, ThreadSlot};

    use super::this_thread;

    fn word_of(s: &Slot) -> usize {
        // SAFETY: Slot is a repr(transparent) pointer-sized cell.
        unsafe { *(s as *const Slot as *const usize) }
    }

    #[test]
    fn a_new_thread_starts_with_the_initial_slot_value() {
        let expected = word_of(&Slot::new());
        let seen = std::thread::spawn(|| {
            let t = this_thread();
            (word_of(t.slot()), t.word() as usize)
        })
        .join()
        .unwrap();
        assert_eq!(seen, (expected, expected));
    }

    #[test]
    fn each_thread_has_its_own_slot() {
        let here = this_thread().slot() as *const Slot as usize;
        let there = std::thread::spawn(|| this_thread().slot() as *const Slot as usize)
            .join()
            .unwrap();
        assert_ne!(here, there);
    }
}
